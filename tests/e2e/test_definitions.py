"""The Dagster definitions load from a data home's config and keep their shape."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from clv_pipeline.config import ClvConfig, load_config, save_settings
from clv_pipeline.defs import build_defs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def defs(tmp_path: Path) -> dg.Definitions:
    return build_defs(load_config(tmp_path, environ={}))


def test_asset_graph_snapshot(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    assert sorted(k.to_user_string() for k in graph.get_all_asset_keys()) == [
        "backtest_calibration",
        "backtest_deciles",
        "clv_snapshot",
        "cohorts",
        "customer_churn",
        "customer_clv",
        "customer_features",
        "customer_segments",
        "customer_state",
        "kpis",
        "model_backtest",
        "model_diagnostics",
        "model_params",
        "raw_transactions",
        "report",
        "segment_migration",
        "unit_economics",
        "validated_transactions",
    ]
    upstream = {
        k.to_user_string(): sorted(p.to_user_string() for p in graph.get(k).parent_keys)
        for k in graph.get_all_asset_keys()
    }
    assert upstream["customer_state"] == ["validated_transactions"]
    assert upstream["customer_features"] == ["customer_state"]
    assert upstream["customer_churn"] == ["customer_clv", "customer_features", "model_backtest"]
    assert len(upstream["clv_snapshot"]) == 14
    for table in ("model_params", "model_diagnostics", "customer_clv"):
        assert upstream[table] == ["customer_features", "validated_transactions"], table
    assert upstream["report"] == ["clv_snapshot"]
    # alive_customers counts customer_churn's probability, the one the stages are banded on
    assert upstream["kpis"] == [
        "customer_churn",
        "customer_clv",
        "customer_features",
        "customer_segments",
    ]
    assert "model_backtest" in upstream["customer_segments"]
    # every snapshot asset is downstream of customer_state and its history_complete check
    state = dg.AssetKey("customer_state")
    for key in graph.get_all_asset_keys():
        if graph.get(key).group_name == "snapshot" and key != state:
            assert state in graph.get_ancestor_asset_keys(key), key
    checks = {c.name for c in defs.resolve_assets_def("customer_state").check_specs}
    assert "history_complete" in checks


def test_jobs_schedule_and_in_process_executor(defs: dg.Definitions) -> None:
    daily = defs.resolve_job_def("clv_daily_job")
    assert daily.executor_def is dg.in_process_executor
    assert defs.resolve_job_def("clv_ingest_job").executor_def is dg.in_process_executor
    schedule = defs.resolve_schedule_def("clv_daily_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    for key in ("raw_transactions", "validated_transactions"):
        assert defs.resolve_assets_def(key).backfill_policy == dg.BackfillPolicy.single_run()


def test_partitions_and_resource_come_from_the_config(tmp_path: Path) -> None:
    save_settings(
        tmp_path,
        {"start_date": date(1997, 1, 1), "end_date": date(1998, 6, 30), "timezone": "Asia/Tokyo"},
    )
    config = load_config(tmp_path, environ={})
    defs = build_defs(config)
    for key in ("raw_transactions", "customer_clv", "report"):
        partitions = defs.resolve_assets_def(key).partitions_def
        assert isinstance(partitions, dg.DailyPartitionsDefinition)
        assert partitions.timezone == "Asia/Tokyo"
        keys = partitions.get_partition_keys()
        assert (keys[0], keys[-1], len(keys)) == ("1997-01-01", "1998-06-30", 546)
    schedule = defs.resolve_schedule_def("clv_daily_schedule")
    assert schedule.execution_timezone == "Asia/Tokyo"
    bound = defs.resources["clv"] if isinstance(defs.resources, dict) else None
    assert isinstance(bound, ClvConfig) and bound.home == tmp_path.resolve()


def test_definitions_module_and_dg_check_need_no_env_var(tmp_path: Path) -> None:
    """`dg check defs` from the checkout with no CLV_* / DAGSTER_HOME set (a new user's shell)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLV_", "DAGSTER_"))}
    dg_cli = Path(sys.executable).with_name("dg")
    before = sorted(p.name for p in ROOT.iterdir())
    result = subprocess.run(
        [str(dg_cli), "check", "defs"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert sorted(p.name for p in ROOT.iterdir()) == before  # nothing written into the checkout
