"""The Dagster definitions load and keep their shape (asset graph snapshot)."""

from __future__ import annotations

import dagster as dg

from clv_pipeline.definitions import defs


def test_asset_graph_snapshot() -> None:
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
    assert upstream["customer_churn"] == ["customer_clv", "customer_features"]
    assert len(upstream["clv_snapshot"]) == 13
    assert upstream["report"] == ["clv_snapshot"]
    assert upstream["kpis"] == ["customer_clv", "customer_features", "customer_segments"]


def test_jobs_schedule_and_in_process_executor() -> None:
    daily = defs.resolve_job_def("clv_daily_job")
    assert daily.executor_def is dg.in_process_executor
    assert defs.resolve_job_def("clv_ingest_job").executor_def is dg.in_process_executor
    schedule = defs.resolve_schedule_def("clv_daily_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    for key in ("raw_transactions", "validated_transactions"):
        assert defs.resolve_assets_def(key).backfill_policy == dg.BackfillPolicy.single_run()
