"""Drill: the alerts a lock refusal and an empty day raise through `clv run`, with the webhook
token kept out of every output."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clv_pipeline import cli
from clv_pipeline.locks import partition_lock
from clv_pipeline.paths import Layout
from clv_pipeline.runs.execute import WAREHOUSE_LOCK
from tests.conftest import land_demo_history

END = date(2024, 5, 31)
TOKEN = "s3cr3tT0ken"  # noqa: S105 - the fake token the tests look for
# nothing listens on port 1: every delivery fails fast, and its error must not show the token
WEBHOOK = f"http://127.0.0.1:1/services/T0FAKE/B0FAKE/{TOKEN}"


@pytest.fixture
def drilled(layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Layout:
    land_demo_history(layout, tmp_path, n_customers=120, days=20, end=END, seed=5)
    monkeypatch.setenv("CLV_ALERT_WEBHOOK_URL", WEBHOOK)
    monkeypatch.setenv("CLV_ALERT_TIMEOUT_SECONDS", "2")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    (tmp_path / "tmp").mkdir(exist_ok=True)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setattr(cli.console, "width", 300)
    monkeypatch.setattr(cli.err, "width", 300)
    return layout


def _alerts(layout: Layout) -> list[dict[str, object]]:
    path = layout.alerts / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_refused_run_alerts_once_per_holder(
    drilled: Layout, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    runner = CliRunner()
    with partition_lock(drilled, WAREHOUSE_LOCK):
        first = runner.invoke(cli.app, ["run", "--date", str(END)])
        second = runner.invoke(cli.app, ["run", "--date", str(END)])
    assert first.exit_code == 1 and "locked by another clv run" in first.output
    assert second.exit_code == 1
    (alert,) = _alerts(drilled)  # the cron retrying behind the same holder alerts once
    assert alert["kind"] == "lock_refused"
    assert "another clv run holds the lock" in str(alert["text"])
    assert f"clv status --home {drilled.home}" in str(alert["rerun_command"])
    assert f"clv run --date {END} --home {drilled.home}" in str(alert["rerun_command"])
    assert alert["host"] and alert["data_home"] == str(drilled.home)
    assert alert["delivery"] == "failed" and alert["delivery_error"]
    out, err = capfd.readouterr()
    everything = [first.output, second.output, caplog.text, out, err]
    everything.append((drilled.alerts / "alerts.jsonl").read_text())
    for text in everything:
        assert TOKEN not in text


def test_an_empty_day_warns_on_the_cli_and_alerts(
    drilled: Layout, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    shutil.rmtree(drilled.landing_day(END))  # nothing delivered for the day
    drilled.landing_day(END).mkdir()
    result = CliRunner().invoke(cli.app, ["run", "--date", str(END)])
    assert result.exit_code == 0, result.output
    assert f"warning: {END}: no rows delivered" in result.output
    assert "CLV_ON_EMPTY_DAY=warn" in result.output
    (alert,) = [a for a in _alerts(drilled) if a["kind"] == "empty_day"]
    assert alert["partition"] == str(END)
    assert alert["rerun_command"] == f"clv run --date {END} --home {drilled.home}"
    assert f"day {END}" in str(alert["text"]) and alert["delivery"] == "failed"
    # the same day run again: warned again, not alerted again
    again = CliRunner().invoke(cli.app, ["run", "--date", str(END)])
    assert again.exit_code == 0 and "no rows delivered" in again.output
    assert len([a for a in _alerts(drilled) if a["kind"] == "empty_day"]) == 1
    out, err = capfd.readouterr()
    for text in [result.output, again.output, caplog.text, out, err]:
        assert TOKEN not in text
