"""The pipeline with Dagster run/event/schedule storage in a real PostgreSQL server."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from clv_pipeline.config import load_config
from clv_pipeline.paths import Layout
from clv_pipeline.runs import operations
from clv_pipeline.runs.instance import get_instance
from clv_pipeline.runs.status import partition_status
from tests.conftest import land_demo_history

DAY = date(2024, 2, 29)


def test_pipeline_on_postgres_storage(
    postgres_url: str, layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLV_DAGSTER_POSTGRES_URL", postgres_url)
    land_demo_history(layout, tmp_path, n_customers=150, days=14, end=DAY, seed=2)
    config = load_config()
    outcome = operations.run_partition(config, DAY)
    assert outcome.success
    instance = get_instance(config)
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert not (layout.dagster / "runs.db").exists()  # nothing went to SQLite
    run = instance.get_run_by_id(outcome.run_id)
    assert run is not None and run.tags["dagster/partition"] == DAY.isoformat()
    rows = {r.asset: r for r in partition_status(config, instance)}
    assert rows["customer_clv"].latest == DAY and rows["raw_transactions"].materialized == 14
    # a failure and its rerun are recorded in PostgreSQL too
    bad = layout.landing_day(DAY) / "zz.csv"
    bad.write_text("nope\n1\n")
    with pytest.raises(operations.RunFailed) as failed:
        operations.run_partition(config, DAY)
    bad.unlink()
    assert operations.rerun_run(config, failed.value.outcome.run_id).success
    assert operations.failed_days(config) == []
