"""Alerts: redaction, delivery recorded in alerts.jsonl, webhook down or hanging, Slack/Teams
bodies, a data home that cannot take the alert (fallback outside it)."""

from __future__ import annotations

import errno
import http.server
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from clv_pipeline.config import load_config
from clv_pipeline.paths import Layout
from clv_pipeline.redact import redact
from clv_pipeline.runs import alerts
from clv_pipeline.runs.alerts import Alert, Delivery, emergency_alert, send_alert

TOKEN = "s3cr3tT0ken"  # noqa: S105 - the fake token the tests look for
SLACK_PATH = f"/services/T0FAKE/B0FAKE/{TOKEN}"


@dataclass
class Webhook:
    """A local webhook: answers ``status`` after ``delay`` seconds, keeps the bodies."""

    port: int
    status: int = 200
    delay: float = 0.0
    bodies: list[dict[str, object]] = field(default_factory=list)

    def url(self, path: str = SLACK_PATH) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(port=0)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook.bodies.append(json.loads(body))
            time.sleep(hook.delay)
            try:
                self.send_response(hook.status)
                self.end_headers()
            except OSError:  # the client gave up (timeout)
                pass

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    hook.port = server.server_port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield hook
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fallback alerts go under the test's own folders, never the real /tmp or ~/.local/state."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    (tmp_path / "tmp").mkdir(exist_ok=True)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return tmp_path / "tmp" / "clv-logs" / "alerts.jsonl"


def _alert(run_id: str = "r1") -> Alert:
    return Alert.for_run(
        run_id=run_id,
        job="clv_daily_job",
        partition="2026-11-29",
        failures=[("raw_transactions", "orders.csv: missing required column amount")],
    )


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _no_secret(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"https://hooks.slack.com{SLACK_PATH} failed",
            "https://hooks.slack.com/services/***/***/*** failed",
        ),
        ("https://user:pass@example.com/hook", "https://***@example.com/hook"),
        ("https://example.com/hook?token=abc&sig=x1", "https://example.com/hook?token=***&sig=***"),
        ("postgresql://clv:hunter2@db:5432/clv", "postgresql://***@db:5432/clv"),
        ("password=hunter2 api_key=XYZ", "password=*** api_key=***"),
        ("Authorization: Bearer abcdef123456", "Authorization: Bearer ***"),
        ("https://example.com/alerts/2026-11-29.", "https://example.com/alerts/2026-11-29."),
        (
            "/data/landing/date=2026-11-29/a.csv: missing",
            "/data/landing/date=2026-11-29/a.csv: missing",
        ),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_delivered_alert_is_recorded_sent_with_text_host_and_home(
    layout: Layout, webhook: Webhook
) -> None:
    path = send_alert(_alert(), layout, delivery=Delivery(webhook.url(), "json", 5))
    assert path == layout.alerts / "alerts.jsonl"
    (line,) = _lines(path)
    assert line["delivery"] == "sent" and line["delivered_at"] and not line["delivery_error"]
    assert line["host"] and line["data_home"] == str(layout.home)
    text = str(line["text"])
    assert len(text.splitlines()) == 2
    assert "clv_daily_job, day 2026-11-29" in text and str(layout.home) in text
    assert text.splitlines()[1].startswith("Fix: clv rerun r1")
    (body,) = webhook.bodies
    assert body["text"] == text and body["error"] == line["error"]  # json: the whole alert
    assert "delivery" not in body


def test_webhook_error_is_recorded_failed_and_no_secret_anywhere(
    layout: Layout,
    webhook: Webhook,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    webhook.status = 500
    caplog.set_level(logging.DEBUG)
    path = send_alert(_alert(), layout, delivery=Delivery(webhook.url(), "json", 5))
    assert path is not None
    (line,) = _lines(path)
    assert line["delivery"] == "failed" and "HTTP 500" in str(line["delivery_error"])
    assert line["delivered_at"] is None
    assert "alert webhook http://127.0.0.1" in caplog.text and "/services/***" in caplog.text
    out, err = capfd.readouterr()
    _no_secret(caplog.text, out, err, path.read_text())


def test_hanging_webhook_times_out_without_blocking_the_run(
    layout: Layout, webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    webhook.delay = 5.0
    t0 = time.monotonic()
    path = send_alert(_alert(), layout, delivery=Delivery(webhook.url(), "json", 0.5))
    assert time.monotonic() - t0 < 3.0
    assert path is not None
    (line,) = _lines(path)
    assert line["delivery"] == "failed" and "timed out after 0.5s" in str(line["delivery_error"])
    _no_secret(caplog.text, path.read_text())


@pytest.mark.parametrize(
    "url",
    [
        f"http://user:{TOKEN}@127.0.0.1:1/hook",  # credentials in the URL (http.client refuses)
        f"http://127.0.0.1:1/hook?token={TOKEN}",  # nothing listens: connection refused
    ],
)
def test_webhook_down_is_recorded_failed_without_the_secret(
    layout: Layout, url: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    path = send_alert(_alert(), layout, delivery=Delivery(url, "json", 2))
    assert path is not None
    (line,) = _lines(path)
    assert line["delivery"] == "failed" and line["delivery_error"]
    out, err = capfd.readouterr()
    _no_secret(caplog.text, out, err, path.read_text())


def test_no_webhook_is_recorded_not_configured(layout: Layout) -> None:
    path = send_alert(_alert(), layout, delivery=Delivery())
    assert path is not None
    assert _lines(path)[0]["delivery"] == "not configured"


def test_a_secret_in_the_error_is_not_stored(layout: Layout) -> None:
    alert = Alert.for_run(
        run_id="r2",
        job="clv_daily_job",
        partition="2026-11-29",
        failures=[("raw_transactions", f"cannot connect to postgresql://clv:{TOKEN}@db/clv")],
    )
    path = send_alert(alert, layout, delivery=Delivery())
    assert path is not None
    _no_secret(path.read_text())
    assert "postgresql://***@db/clv" in path.read_text()


def test_slack_and_teams_bodies(home: Path, webhook: Webhook) -> None:
    for i, fmt in enumerate(["slack", "teams"]):
        config = load_config(
            home,
            environ={"CLV_ALERT_WEBHOOK_URL": webhook.url(), "CLV_ALERT_FORMAT": fmt},
        )
        assert config.operations.alert_format == fmt
        path = send_alert(_alert(f"r{i}"), config.layout, delivery=Delivery.of(config))
        assert path is not None and _lines(path)[-1]["delivery"] == "sent"
    slack, teams = webhook.bodies
    assert set(slack) == {"text"} and "day 2026-11-29" in str(slack["text"])
    assert teams["@type"] == "MessageCard" and teams["@context"] == "https://schema.org/extensions"
    assert "Fix: clv rerun r1" in str(teams["text"]) and teams["summary"]


def test_alert_settings_from_the_environment(home: Path) -> None:
    config = load_config(
        home, environ={"CLV_ALERT_FORMAT": "teams", "CLV_ALERT_TIMEOUT_SECONDS": "2.5"}
    )
    assert Delivery.of(config) == Delivery("", "teams", 2.5)
    assert load_config(home, environ={}).operations.alert_timeout_seconds == 10.0


def _full_home(monkeypatch: pytest.MonkeyPatch, layout: Layout) -> None:
    """Writing anything under the data home's alerts folder fails: disk full."""
    real = alerts._append  # noqa: SLF001

    def append(path: Path, line: str) -> None:
        if layout.home in path.parents:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, line)

    monkeypatch.setattr(alerts, "_append", append)


def test_full_data_home_falls_back_to_stderr_and_a_file_outside_it(
    layout: Layout,
    webhook: Webhook,
    fallback: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    _full_home(monkeypatch, layout)
    path = send_alert(_alert(), layout, delivery=Delivery(webhook.url(), "slack", 5))
    assert path == fallback
    (line,) = _lines(path)
    assert line["run_id"] == "r1" and line["delivery"] == "sent"  # the webhook was still tried
    assert len(webhook.bodies) == 1
    _, err = capfd.readouterr()
    assert "No space left on device" in err and '"run_id": "r1"' in err
    assert str(path) in err
    _no_secret(err, path.read_text())


def test_emergency_alert_when_the_home_cannot_be_written(
    layout: Layout,
    webhook: Webhook,
    fallback: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    _full_home(monkeypatch, layout)
    monkeypatch.setenv("CLV_ALERT_WEBHOOK_URL", webhook.url())
    where = emergency_alert(
        error=f"disk full: {layout.home}/dagster/runs.db; free space, then `clv run`",
        home=layout.home,
        command="run --date 2026-11-29",
        kind="disk_full",
        path=str(layout.home / "dagster" / "runs.db"),
    )
    assert where == fallback
    (line,) = _lines(where)
    assert line["kind"] == "command_failed" and line["cause"] == "disk_full"
    assert line["delivery"] == "sent" and line["data_home"] == str(layout.home)
    assert "CLV command failed" in str(line["text"]) and "disk full" in str(line["text"])
    assert line["rerun_command"] == f"clv run --date 2026-11-29 --home {layout.home}"
    assert webhook.bodies and webhook.bodies[0]["text"] == line["text"]
    _, err = capfd.readouterr()
    _no_secret(err, where.read_text())


def test_emergency_alert_with_a_writable_home_goes_to_alerts_jsonl(layout: Layout) -> None:
    where = emergency_alert(error="boom", home=layout.home, command="status")
    assert where == layout.alerts / "alerts.jsonl"
    assert _lines(where)[0]["delivery"] == "not configured"


def test_an_alert_already_sent_is_not_sent_again(layout: Layout, webhook: Webhook) -> None:
    delivery = Delivery(webhook.url(), "json", 5)
    assert send_alert(_alert(), layout, delivery=delivery) is not None
    assert send_alert(_alert(), layout, delivery=delivery) is None
    assert len(webhook.bodies) == 1


def test_fallback_to_the_state_folder_when_the_temp_folder_is_full_too(
    layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = alerts._append  # noqa: SLF001

    def append(path: Path, line: str) -> None:
        if "state" not in path.parts:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        real(path, line)

    monkeypatch.setattr(alerts, "_append", append)
    path = send_alert(_alert(), layout, delivery=Delivery())
    assert path == tmp_path / "state" / "clv" / "alerts-fallback.jsonl"
    assert _lines(path)[0]["run_id"] == "r1"
