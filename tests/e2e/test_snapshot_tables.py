"""Every snapshot table is published daily, visible in DuckDB, and reruns are byte-identical."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from clv_pipeline.config import ClvConfig, load_config
from clv_pipeline.defs.sensors import build_failure_sensor
from clv_pipeline.paths import Layout
from clv_pipeline.runs import operations
from clv_pipeline.runs.instance import get_instance
from clv_pipeline.schema import SNAPSHOT_TABLES, TABLES
from tests.conftest import land_demo_history

END = date(2024, 8, 31)


@pytest.fixture
def config(layout: Layout, tmp_path: Path) -> ClvConfig:
    history = land_demo_history(layout, tmp_path, n_customers=300, days=90, end=END, seed=4)
    first = (
        history.filter(pl.col("amount") > 0)
        .group_by("customer_id")
        .agg(pl.col("occurred_at").min().dt.date().alias("acquired_at"), pl.col("channel").first())
        .rename({"channel": "acquisition_channel"})
    )
    customers = layout.landing.parent / "customers"
    customers.mkdir(parents=True)
    first.write_csv(customers / "crm.csv")
    spend = layout.landing.parent / "acquisition_spend"
    spend.mkdir(parents=True)
    spend.joinpath("spend.csv").write_text(
        "month,channel,spend\n"
        + "".join(
            f"2024-{m:02d},{ch},{1000 + 100 * m}\n"
            for m in (6, 7, 8)
            for ch in ("web", "app", "store")
        )
    )
    return load_config(layout.home)


def _files(layout: Layout) -> dict[str, bytes]:
    return {
        str(p.relative_to(layout.warehouse)): p.read_bytes()
        for p in sorted(layout.warehouse.rglob("part-0.parquet"))
    }


def test_all_tables_daily_and_idempotent(config: ClvConfig, layout: Layout) -> None:
    days = [END - timedelta(days=1), END]
    for day in days:
        operations.run_partition(config, day)
    for table in SNAPSHOT_TABLES:
        frame = pl.read_parquet(layout.partition_file(table, "as_of", END))
        assert frame.schema == TABLES[table].schema, table
    kpis = pl.read_parquet(layout.partition_file("kpis", "as_of", END))
    assert kpis.height == 1 and kpis["previous_as_of"][0] == days[0]
    migration = pl.read_parquet(layout.partition_file("segment_migration", "as_of", END))
    customers = pl.read_parquet(layout.partition_file("customer_segments", "as_of", END)).height
    for dimension in ("rfm_segment", "value_tier", "lifecycle_stage"):
        assert migration.filter(pl.col("dimension") == dimension)["customers"].sum() == customers
    economics = pl.read_parquet(layout.partition_file("unit_economics", "as_of", END))
    assert economics.height > 0 and economics["cac"].drop_nulls().min() > 0  # type: ignore[operator]
    cohorts = pl.read_parquet(layout.partition_file("cohorts", "as_of", END))
    assert cohorts["retention_rate"].is_between(0, 1).all()
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        for table in SNAPSHOT_TABLES:
            latest = con.execute(f"SELECT max(as_of), count(*) FROM {table}_latest").fetchone()  # noqa: S608
            # the backtest needs more history than the 90-day holdout: empty deciles here
            assert latest is not None and (latest[0] == END or table.startswith("backtest")), table
        assert con.execute("SELECT count(DISTINCT as_of) FROM kpis").fetchone() == (2,)
    # the full history again gives byte-identical tables
    before = _files(layout)
    for day in days:
        operations.run_partition(config, day)
    assert _files(layout) == before


def test_failure_sensor_writes_the_alert(config: ClvConfig, layout: Layout) -> None:
    (layout.landing_day(END) / "broken.parquet").write_bytes(b"nope")
    with pytest.raises(operations.RunFailed) as failed:
        operations.run_partition(config, END)
    # as if the run had failed outside the CLI (schedule, UI): no alert sent yet
    alerts = layout.alerts / "alerts.jsonl"
    alerts.unlink()
    shutil.rmtree(layout.alerts / ".sent")
    instance = get_instance(config)
    run = instance.get_run_by_id(failed.value.outcome.run_id)
    assert run is not None
    event = next(
        r.dagster_event
        for r in instance.all_logs(run.run_id)
        if r.dagster_event and r.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE
    )
    context = dg.build_run_status_sensor_context(
        sensor_name="clv_failure_alert",
        dagster_event=event,
        dagster_instance=instance,
        dagster_run=run,
    ).for_run_failure()
    sensor = build_failure_sensor(config)
    sensor(context)  # type: ignore[operator]
    sensor(context)  # type: ignore[operator]  # a second evaluation does not alert again
    assert len(alerts.read_text().splitlines()) == 1
    alert = pl.read_ndjson(alerts).row(0, named=True)
    assert alert["partition"] == END.isoformat() and alert["failed_steps"] == ["raw_transactions"]
    assert "broken.parquet: cannot read as parquet" in alert["error"]
    assert alert["rerun_command"].startswith(f"clv rerun {run.run_id}")
