"""On-call operations: rerun from failure, rerun --failed, backfill, status, alerts, locks, I/O errors."""

from __future__ import annotations

import http.server
import json
import threading
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from clv_pipeline import cli
from clv_pipeline.config import ClvConfig, load_config
from clv_pipeline.errors import ClvError
from clv_pipeline.locks import partition_lock
from clv_pipeline.paths import Layout
from clv_pipeline.runs import operations
from clv_pipeline.runs.alerts import Alert, alert_failed_run, send_alert
from clv_pipeline.runs.execute import WAREHOUSE_LOCK
from clv_pipeline.runs.instance import get_instance
from clv_pipeline.runs.status import partition_status
from tests.conftest import land_demo_history

END = date(2024, 5, 31)
BROKEN = "zz-broken.csv"


@pytest.fixture
def config(layout: Layout, tmp_path: Path) -> ClvConfig:
    land_demo_history(layout, tmp_path, n_customers=250, days=30, end=END, seed=11)
    return load_config(layout.home)


def _break(layout: Layout, day: date) -> Path:
    bad = layout.landing_day(day) / BROKEN
    bad.write_text("id;customer\n1;2\n")
    return bad


def test_rerun_from_failure_and_status(
    config: ClvConfig, layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = _break(layout, END)
    with pytest.raises(operations.RunFailed) as failure:
        operations.run_partition(config, END)
    run_id = failure.value.outcome.run_id
    assert "zz-broken.csv: missing required column" in str(failure.value)
    rows = {r.asset: r for r in partition_status(config, get_instance(config))}
    assert rows["raw_transactions"].failed == [END]
    assert rows["raw_transactions"].errors[END][0] == run_id
    assert "missing required column" in rows["raw_transactions"].errors[END][1]
    instance = get_instance(config)
    failed_run = instance.get_run_by_id(run_id)
    assert failed_run is not None
    # the daemon's failure sensor sees the same run: no second alert
    assert alert_failed_run(instance, failed_run, config) is None
    alerts = (layout.home / "alerts" / "alerts.jsonl").read_text().splitlines()
    assert len(alerts) == 1
    alert = json.loads(alerts[-1])
    assert alert["partition"] == str(END) and alert["rerun_command"].startswith(
        f"clv rerun {run_id}"
    )
    monkeypatch.setattr(cli.console, "width", 200)
    shown = CliRunner().invoke(cli.app, ["status", "--since", str(END)])
    assert shown.exit_code == 1  # a failed partition: cron monitoring sees it
    assert run_id in shown.output and "clv rerun --failed" in shown.output
    bad.unlink()
    outcome = operations.rerun_run(config, run_id)
    assert outcome.success and outcome.run_id != run_id
    run = get_instance(config).get_run_by_id(outcome.run_id)
    assert run is not None and run.parent_run_id == run_id  # re-executed from the failed run
    assert layout.partition_file("customer_clv", "as_of", END).exists()
    assert operations.failed_days(config) == []


def test_rerun_failed_and_backfill(config: ClvConfig, layout: Layout) -> None:
    day = END - timedelta(days=2)
    bad = _break(layout, day)
    with pytest.raises(operations.RunFailed):
        operations.run_partition(config, day)
    assert operations.failed_days(config) == [day]
    bad.unlink()
    result = CliRunner().invoke(cli.app, ["rerun", "--failed"])
    assert result.exit_code == 0, result.output
    assert operations.failed_days(config) == []
    results = operations.backfill(config, END - timedelta(days=1), END)
    assert [r.ok for r in results] == [True, True]
    assert layout.published_days("customer_clv", "as_of") == [day, END - timedelta(days=1), END]
    with pytest.raises(ClvError, match="before --start"):
        operations.backfill(config, END, END - timedelta(days=1))


def test_backfill_cli_summary(config: ClvConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.console, "width", 200)
    result = CliRunner().invoke(
        cli.app, ["backfill", "--start", str(END - timedelta(days=1)), "--end", str(END)]
    )
    assert result.exit_code == 0, result.output
    assert "2 ok, 0 failed" in result.output


def test_lock_blocks_a_second_run(config: ClvConfig, layout: Layout) -> None:
    with partition_lock(layout, WAREHOUSE_LOCK):
        with pytest.raises(ClvError, match="locked by another clv run"):
            operations.run_partition(config, END)


def test_disk_full_fails_cleanly_and_rerun_recovers(
    config: ClvConfig, layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    operations.run_partition(config, END)
    before = layout.partition_file("customer_clv", "as_of", END).read_bytes()
    (layout.landing_day(END) / "late.csv").write_text(
        f"transaction_id,customer_id,occurred_at,amount\nlate1,newcomer,{END}T09:00:00Z,99.5\n"
    )
    monkeypatch.setenv("CLV_FAILPOINT", "oserror:publish:customer_clv:staged")
    with pytest.raises(operations.RunFailed, match="No space left on device"):
        operations.run_partition(config, END)
    assert layout.partition_file("customer_clv", "as_of", END).read_bytes() == before
    assert not any(layout.staging.rglob("*.parquet"))
    monkeypatch.delenv("CLV_FAILPOINT")
    operations.run_partition(config, END)
    clv = pl.read_parquet(layout.partition_file("customer_clv", "as_of", END))
    assert "newcomer" in clv.get_column("customer_id").to_list()


def test_alert_webhook_receives_the_alert(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[dict[str, object]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    alert = Alert.for_run(
        run_id="r1",
        job="clv_daily_job",
        partition="2024-05-31",
        failures=[("customer_clv", "boom")],
    )
    assert send_alert(alert, layout, webhook_url=f"http://127.0.0.1:{server.server_port}/hook")
    # the same run is alerted once, whoever notices the failure second (CLI or sensor)
    assert send_alert(alert, layout, webhook_url="http://127.0.0.1:1/never") is None
    thread.join(5)
    server.server_close()
    assert received and received[0]["error"] == "boom"
    assert received[0]["rerun_command"] == "clv rerun r1   # or: clv run --date 2024-05-31"
