"""Raw transactions from an S3-compatible object store (AWS S3, MinIO, ...), one day at a time.

Two layouts:

* **folders** (default): every ``*.csv`` / ``*.parquet`` object under ``<prefix>/date=YYYY-MM-DD/``;
* **pattern**: keys matching a template with ``{date}`` (``YYYY-MM-DD``; ``{date:%Y%m%d}`` for other
  spellings) and optional ``*`` / ``?`` wildcards, e.g. ``exports/orders_{date}.csv``, relative to
  ``prefix``.

Each object is streamed to a temporary file and parsed by
:func:`clv_pipeline.sources.landing.read_delivered_file`, so CSV / parquet handling and error
messages are the same as for local drops. Credentials come only from the environment (the standard
boto3 chain: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``,
``AWS_PROFILE``, instance roles); the region from ``AWS_DEFAULT_REGION`` / the profile.
"""

from __future__ import annotations

import logging
import posixpath
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import polars as pl

from clv_pipeline.errors import InputError
from clv_pipeline.schema import RAW_TRANSACTIONS, conform
from clv_pipeline.sources.base import empty_raw
from clv_pipeline.sources.landing import read_delivered_file
from clv_pipeline.sources.shape import ReadOptions

log = logging.getLogger(__name__)

_SUFFIXES = (".csv", ".parquet")
_GLOB = "*?["
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "InvalidClientTokenId",
    "AccessDenied",
    "AllAccessDisabled",
    "403",
    "Forbidden",
}


@dataclass(frozen=True)
class ObjectStoreSource:
    """One bucket (and prefix) of daily transaction exports.

    Parameters
    ----------
    bucket
        Bucket name.
    prefix
        Key prefix (no leading / trailing ``/`` needed), e.g. ``"shop/transactions"``.
    pattern
        Key template relative to ``prefix`` containing ``{date}``; ``None`` means the folders layout
        ``<prefix>/date=YYYY-MM-DD/``.
    endpoint_url
        For S3-compatible stores (MinIO, moto, ...); ``None`` means AWS.
    column_map
        Renames ``source_name -> contract_name`` applied to every object.
    options
        The data home's read options (delimiter, dates, amount expression, order lines, ...).
    max_attempts
        Total attempts per request (botocore "standard" retry mode) when the endpoint is
        unreachable, throttles or returns 5xx.
    connect_timeout
        Seconds to wait for a connection to the endpoint.
    """

    bucket: str
    prefix: str = ""
    pattern: str | None = None
    endpoint_url: str | None = None
    column_map: Mapping[str, str] = field(default_factory=dict)
    options: ReadOptions = field(default_factory=ReadOptions)
    max_attempts: int = 3
    connect_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not self.bucket:
            raise InputError("object store source: bucket is empty (set CLV_S3_BUCKET)")
        if self.pattern is not None and "{date" not in self.pattern:
            raise InputError(
                f"object store source: pattern {self.pattern!r} has no {{date}} placeholder"
            )

    # ------------------------------------------------------------------ public API
    def describe(self) -> str:
        """``s3://bucket/prefix[/pattern]`` plus the endpoint when not AWS (no credentials)."""
        where = f"s3://{self.bucket}/{self._join(self.pattern or '')}".rstrip("/")
        return f"{where} (endpoint {self.endpoint_url})" if self.endpoint_url else where

    def pull_day(self, day: date, *, timezone: str = "UTC") -> pl.DataFrame:
        """The objects of ``day`` as raw rows, ordered by key then row number.

        ``timezone`` is unused: the day is chosen by folder or file name. No object gives an
        empty frame (the pipeline decides whether that is a warning or a failure).

        Raises
        ------
        clv_pipeline.errors.InputError
            Endpoint unreachable, credentials rejected, bucket missing, or an object unreadable.
        """
        client = self._client()
        keys = self.day_keys(day, client=client)
        log.info("%s: %d object(s) for %s", self.describe(), len(keys), day.isoformat())
        frames = []
        with tempfile.TemporaryDirectory(prefix="clv-s3-") as tmp:
            for index, key in enumerate(keys):
                frame = self._read_object(client, key, Path(tmp) / f"{index}{_suffix(key)}")
                frames.append(frame.with_columns(pl.lit(key).alias("_source_file")))
        if not frames:
            return empty_raw()
        return conform(pl.concat(frames, how="vertical"), RAW_TRANSACTIONS)

    def day_keys(self, day: date, *, client: Any = None) -> list[str]:
        """Keys of ``day``'s data objects, sorted (visible ``*.csv`` / ``*.parquet`` only)."""
        client = client or self._client()
        if self.pattern is None:
            folder = self._join(f"date={day.isoformat()}") + "/"
            listed = self._list(client, folder)
            keys = [k for k in listed if _is_data_key(k) and "/" not in k[len(folder) :]]
        else:
            wanted = self._join(self.pattern.format(date=day))
            cut = min((i for i, ch in enumerate(wanted) if ch in _GLOB), default=len(wanted))
            keys = [k for k in self._list(client, wanted[:cut]) if fnmatchcase(k, wanted)]
            keys = [k for k in keys if _suffix(k) in _SUFFIXES]
        return sorted(keys)

    # ------------------------------------------------------------------ internals
    def _join(self, tail: str) -> str:
        prefix = self.prefix.strip("/")
        return f"{prefix}/{tail}" if prefix and tail else prefix or tail

    def _client(self) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            retries={"max_attempts": self.max_attempts, "mode": "standard"},
            connect_timeout=self.connect_timeout,
            read_timeout=60,
        )
        try:
            return boto3.session.Session().client(
                "s3", endpoint_url=self.endpoint_url or None, config=config
            )
        except Exception as exc:  # botocore: bad profile, bad endpoint URL, no region, ...
            raise InputError(f"{self.describe()}: cannot create an S3 client: {exc}") from exc

    def _list(self, client: Any, prefix: str) -> Iterator[str]:
        try:
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                for item in page.get("Contents", []):
                    yield item["Key"]
        except Exception as exc:
            raise self._error(exc, f"listing s3://{self.bucket}/{prefix}") from exc

    def _read_object(self, client: Any, key: str, target: Path) -> pl.DataFrame:
        where = f"s3://{self.bucket}/{key}"
        try:
            # managed transfer: streamed to disk in chunks, memory stays bounded
            client.download_file(self.bucket, key, str(target))
        except Exception as exc:
            raise self._error(exc, f"downloading {where}") from exc
        try:
            return read_delivered_file(target, column_map=self.column_map, options=self.options)
        except InputError as exc:
            raise InputError(str(exc).replace(str(target), where)) from exc
        finally:
            target.unlink(missing_ok=True)

    def _error(self, exc: Exception, doing: str) -> InputError:
        """Translate a boto error into a message for the person on call."""
        from botocore.exceptions import (
            ClientError,
            ConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        if isinstance(exc, ConnectionError):
            return InputError(
                f"{doing}: endpoint {self.endpoint_url or 'AWS S3'} unreachable after "
                f"{self.max_attempts} attempt(s): {exc}"
            )
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return InputError(
                f"{doing}: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                f"(or AWS_PROFILE) in the environment ({exc})"
            )
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = error.get("Message", "") or str(exc)
            if code == "NoSuchBucket":
                return InputError(f"{doing}: bucket {self.bucket!r} does not exist")
            if code in ("NoSuchKey", "404"):
                return InputError(f"{doing}: object disappeared while reading ({code})")
            if code in _CREDENTIAL_CODES:
                return InputError(
                    f"{doing}: access denied ({code}: {message}); check AWS_ACCESS_KEY_ID / "
                    "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and the bucket policy"
                )
            return InputError(f"{doing}: S3 error {code}: {message}")
        return InputError(f"{doing}: {type(exc).__name__}: {exc}")


def _suffix(key: str) -> str:
    return posixpath.splitext(key)[1].lower()


def _is_data_key(key: str) -> bool:
    name = posixpath.basename(key)
    return bool(name) and not name.startswith((".", "_")) and _suffix(key) in _SUFFIXES
