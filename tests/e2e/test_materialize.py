"""Materialize partitions with Dagster on a temp data home (small synthetic history)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from clv_pipeline.config import ClvConfig, load_config
from clv_pipeline.defs.assets import CATALOG_CHECK, DAY_FAILURE, REPORT_CHECK, build_assets
from clv_pipeline.defs.partitions import build_partitions
from clv_pipeline.paths import Layout
from clv_pipeline.publish.warehouse import read_published
from clv_pipeline.runs.execute import execute
from clv_pipeline.schema import TABLES
from tests.conftest import land_demo_history

END = date(2024, 6, 30)


@pytest.fixture
def history(layout: Layout, tmp_path: Path) -> pl.DataFrame:
    return land_demo_history(layout, tmp_path, n_customers=400, days=60, end=END, seed=7)


@pytest.fixture
def config(layout: Layout) -> ClvConfig:
    return load_config(layout.home)


def test_range_ingest_then_daily_partition(
    config: ClvConfig, layout: Layout, history: pl.DataFrame
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    days = layout.landing_days()
    ingest = execute(
        config,
        "clv_ingest_job",
        partition_range=(days[0], END - timedelta(days=1)),
        instance=instance,
    )
    assert ingest.success, ingest.failures
    assert len(ingest.materialized) == 2 * (len(days) - 1)
    daily = execute(config, "clv_daily_job", partition=END, instance=instance)
    assert daily.success, daily.failures
    features = read_published(layout, "customer_features", END)
    assert features is not None
    purchases = (pl.col("amount") > 0) & (pl.col("status") != "cancelled")
    expected_customers = history.filter(purchases)["customer_id"].n_unique()
    assert features.height == expected_customers
    clv = read_published(layout, "customer_clv", END)
    assert clv is not None and clv.height == features.height
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        latest = con.execute("SELECT count(*), max(as_of) FROM customer_clv_latest").fetchone()
    assert latest == (features.height, END)
    # Dagster's metadata conventions: row count, column schema from the contract, markdown
    for table in ("customer_clv", "model_params", "validated_transactions"):
        event = instance.get_latest_materialization_event(dg.AssetKey(table))
        assert event is not None and event.asset_materialization is not None
        meta = event.asset_materialization.metadata
        rows = read_published(layout, table, END)
        assert rows is not None and meta["dagster/row_count"].value == rows.height
        schema = meta["dagster/column_schema"].value
        assert [c.name for c in schema.columns] == TABLES[table].names
        assert isinstance(meta["path"], dg.PathMetadataValue)
    clv_meta = instance.get_latest_materialization_event(dg.AssetKey("customer_clv"))
    assert clv_meta is not None and clv_meta.asset_materialization is not None
    assert isinstance(clv_meta.asset_materialization.metadata["preview"], dg.MarkdownMetadataValue)
    for asset, check in (("clv_snapshot", CATALOG_CHECK), ("report", REPORT_CHECK)):
        key = dg.AssetCheckKey(dg.AssetKey(asset), check)
        (record,) = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
        assert record.evaluation is not None and record.evaluation.passed, (asset, record)


def test_materialize_one_partition_with_dagster_api(
    config: ClvConfig, layout: Layout, history: pl.DataFrame
) -> None:
    day = END - timedelta(days=3)
    assets = build_assets(build_partitions(config))
    result = dg.materialize(assets, partition_key=day.isoformat(), resources={"clv": config})
    assert result.success
    features = read_published(layout, "customer_features", day)
    assert features is not None
    # the run caught up every landed day before it: features cover the whole history to `day`
    purchases = (pl.col("amount") > 0) & (pl.col("status") != "cancelled")
    upto = history.filter(purchases & (pl.col("occurred_at").dt.date() <= day))
    assert features.height == upto["customer_id"].n_unique()
    assert features.get_column("T").max() == (day - layout.landing_days()[0]).days
    assert read_published(layout, "customer_segments", day) is not None


def test_failed_step_reports_error_and_keeps_published(
    config: ClvConfig, layout: Layout, history: pl.DataFrame
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    day = END
    assert execute(config, "clv_daily_job", partition=day, instance=instance).success
    before = layout.partition_file("validated_transactions", "date", day).read_bytes()
    (layout.landing_day(day) / "zz-broken.parquet").write_bytes(b"garbage")
    outcome = execute(config, "clv_daily_job", partition=day, instance=instance)
    assert not outcome.success
    (step, message), *_ = outcome.failures
    assert step == "raw_transactions" and "zz-broken.parquet: cannot read as parquet" in message
    assert layout.partition_file("validated_transactions", "date", day).read_bytes() == before


def test_rerun_is_idempotent(config: ClvConfig, layout: Layout, history: pl.DataFrame) -> None:
    instance = dg.DagsterInstance.ephemeral()
    for _ in range(2):
        assert execute(config, "clv_daily_job", partition=END, instance=instance).success
        first = {
            t: layout.partition_file(t, "as_of", END).read_bytes()
            for t in ("customer_features", "customer_clv", "customer_segments", "customer_churn")
        }
        if _ == 0:
            snapshot = first
    assert first == snapshot


def test_bad_day_fails_validation_check_and_keeps_views(
    config: ClvConfig, layout: Layout, history: pl.DataFrame
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    assert execute(config, "clv_daily_job", partition=END, instance=instance).success
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        before = con.execute("SELECT count(*) FROM customer_features_latest").fetchone()
    folder = layout.landing_day(END)
    garbage = "transaction_id,customer_id,occurred_at,amount\n" + "".join(
        f"bad{i},c{i},{END}T10:00:00Z,n/a\n" for i in range(500)
    )
    (folder / "zz-garbage.csv").write_text(garbage)
    outcome = execute(config, "clv_daily_job", partition=END, instance=instance)
    assert not outcome.success
    (step, message), *_ = outcome.failures
    assert step == "validated_transactions"
    assert (
        "failed validation, more than both CLV_MAX_BAD_ROW_SHARE=5% and CLV_MAX_BAD_ROWS=10"
        in message
    )
    assert "amount not a number x500" in message
    check = dg.AssetCheckKey(dg.AssetKey("validated_transactions"), "gx_expectations")
    (record,) = instance.event_log_storage.get_asset_check_execution_history(check, limit=1)
    assert record.evaluation is not None and record.evaluation.passed is False
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM customer_features_latest").fetchone() == before
    quarantine = pl.read_parquet(layout.quarantine_file("transactions", END))
    assert quarantine.height == 500


def _materializations(instance: dg.DagsterInstance, asset: str) -> list[dg.AssetMaterialization]:
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=10_000).records
    return [r.asset_materialization for r in records if r.asset_materialization is not None]


def test_caught_up_days_are_recorded_once_each(
    config: ClvConfig, layout: Layout, history: pl.DataFrame
) -> None:
    """A first run on the last day catches up every earlier landed day; each one is recorded as
    a (lean) materialization of its own partition exactly once, and the run's own day in full."""
    instance = dg.DagsterInstance.ephemeral()
    assert execute(config, "clv_daily_job", partition=END, instance=instance).success
    days = [d.isoformat() for d in layout.landing_days()]
    for asset in ("raw_transactions", "validated_transactions"):
        events = _materializations(instance, asset)
        assert sorted(e.partition for e in events) == sorted(days), asset
        for event in events:
            caught_up = event.partition != END.isoformat()
            assert ("caught_up_by_run_for" in event.metadata) is caught_up
            assert ("dagster/column_schema" in event.metadata) is not caught_up
            assert event.metadata["dagster/row_count"].value > 0


def test_a_failed_day_in_a_catch_up_records_each_other_day_once(
    config: ClvConfig, layout: Layout, history: pl.DataFrame
) -> None:
    """A day that cannot be read fails the catch-up: every other day is still published and
    recorded once (not once while caught up and again by the failure), and the bad day's own
    error is recorded on its partition."""
    instance = dg.DagsterInstance.ephemeral()
    bad = END - timedelta(days=20)
    (layout.landing_day(bad) / "zz-broken.parquet").write_bytes(b"garbage")
    outcome = execute(config, "clv_daily_job", partition=END, instance=instance)
    assert not outcome.success
    (step, message), *_ = outcome.failures
    assert step == "raw_transactions" and "zz-broken.parquet" in message
    events = _materializations(instance, "raw_transactions")
    expected = sorted(d.isoformat() for d in layout.landing_days() if d != bad)
    assert sorted(e.partition for e in events) == expected
    observations = instance.fetch_observations(dg.AssetKey("raw_transactions"), limit=10).records
    (observed,) = [r.asset_observation for r in observations if r.asset_observation is not None]
    assert observed.partition == bad.isoformat()
    assert "zz-broken.parquet" in str(observed.metadata[DAY_FAILURE].value)
