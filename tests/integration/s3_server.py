"""A real S3-compatible HTTP server for tests: moto in server mode on 127.0.0.1.

Import the fixtures into a test module::

    from tests.integration.s3_server import moto_endpoint, s3  # noqa: F401

``moto_endpoint`` (module scope) starts one server per test module; ``s3`` (function scope) sets
fake credentials in the environment with ``monkeypatch`` (nothing from the developer's
``~/.aws`` is read), empties the server and yields an :class:`S3` handle.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # noqa: S105 - moto accepts any key
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}
UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class S3:
    """The running server: its endpoint and a client with the fake credentials."""

    endpoint_url: str
    client: Any

    def put(self, bucket: str, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=body)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """Start moto's threaded server on a free localhost port; yields its URL."""
    server_mod = pytest.importorskip("moto.server", reason="moto[server] not installed")
    port = free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    """Fake AWS credentials in the environment and an empty moto server."""
    import boto3
    import requests

    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10)
    client = boto3.session.Session().client("s3", endpoint_url=moto_endpoint)
    yield S3(moto_endpoint, client)
