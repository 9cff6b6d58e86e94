"""Dagster conventions: owners and code references on every asset, freshness checks on the daily
assets with a late-day alert, and CLI runs that never promise a retry."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import MAX_RETRIES_TAG, PARTITION_NAME_TAG, WILL_RETRY_TAG
from dagster._core.test_utils import freeze_time

from clv_pipeline.config import ClvConfig, load_config, save_settings
from clv_pipeline.defs import build_defs
from clv_pipeline.defs.checks import FRESHNESS_ASSETS
from clv_pipeline.defs.jobs import DAILY_JOB, INGEST_JOB, SNAPSHOT_JOB
from clv_pipeline.defs.sensors import FRESHNESS_SENSOR, LATE_ALERT_SENSOR
from clv_pipeline.paths import Layout
from clv_pipeline.runs import operations
from clv_pipeline.runs.instance import get_instance
from tests.conftest import land_demo_history

ROOT = Path(__file__).resolve().parents[2]
LATE = date(2024, 6, 3)
NOW = datetime(2024, 6, 4, 7, 0, tzinfo=UTC)  # after the 06:00 deadline for 2024-06-03


@pytest.fixture
def config(tmp_path: Path) -> ClvConfig:
    return load_config(tmp_path, environ={})


def _specs(defs: dg.Definitions) -> list[dg.AssetSpec]:
    return [spec for asset in defs.assets or [] for spec in asset.specs]  # type: ignore[union-attr]


def test_every_asset_has_owners_and_a_code_reference(config: ClvConfig) -> None:
    specs = _specs(build_defs(config))
    assert len(specs) == 18  # the 16 tables (model_diagnostics included), clv_snapshot, report
    for spec in specs:
        assert spec.owners == ["team:data"], spec.key
        references = spec.metadata["dagster/code_references"].code_references
        assert references, spec.key
        for reference in references:
            path = Path(reference.file_path)
            assert path == ROOT / "clv_pipeline" / "defs" / "assets.py", reference
            line = path.read_text().splitlines()[reference.line_number - 1]
            assert line.lstrip().startswith(("@dg.asset", "@dg.multi_asset")), (spec.key, line)


def test_owners_and_deadline_come_from_the_config(tmp_path: Path) -> None:
    config = load_config(
        tmp_path,
        environ={
            "CLV_OWNERS": "team:growth,ana@example.com",
            "CLV_FRESHNESS_DEADLINE_HOUR": "9",
            "CLV_TIMEZONE": "Europe/Berlin",
        },
    )
    defs = build_defs(config)
    assert {tuple(spec.owners) for spec in _specs(defs)} == {("team:growth", "ana@example.com")}
    sensor = defs.resolve_sensor_def(LATE_ALERT_SENSOR)
    assert "09:00 Europe/Berlin" in (sensor.description or "")


def test_definitions_build_without_warnings(config: ClvConfig) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # known and filtered where they are raised (defs/assets.py, defs/jobs.py, pyproject)
        warnings.filterwarnings("ignore", message=".*(backfill_policy|varying BackfillPolicies).*")
        defs = build_defs(config)
        defs.resolve_all_job_defs()
        defs.resolve_asset_graph()


def test_freshness_checks_on_the_daily_assets_run_with_the_jobs(config: ClvConfig) -> None:
    defs = build_defs(config)
    graph = defs.resolve_asset_graph()
    fresh = {
        k.asset_key.to_user_string() for k in graph.asset_check_keys if k.name == "freshness_check"
    }
    assert fresh == set(FRESHNESS_ASSETS)
    for name in (DAILY_JOB, SNAPSHOT_JOB):
        keys = defs.resolve_job_def(name).asset_layer.asset_graph.asset_check_keys
        assert {k.asset_key.to_user_string() for k in keys if k.name == "freshness_check"} == fresh
    ingest = defs.resolve_job_def(INGEST_JOB).asset_layer.asset_graph.asset_check_keys
    assert not any(k.name == "freshness_check" for k in ingest)
    for name in (FRESHNESS_SENSOR, LATE_ALERT_SENSOR):
        sensor = defs.resolve_sensor_def(name)
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def _materialize(instance: dg.DagsterInstance, day: date) -> None:
    for asset in FRESHNESS_ASSETS:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=asset, partition=day.isoformat())
        )


def _evaluate_freshness(defs: dg.Definitions, instance: dg.DagsterInstance) -> dict[str, bool]:
    """What the freshness sensor does: request its checks, run them (as the daemon would)."""
    sensor = defs.resolve_sensor_def(FRESHNESS_SENSOR)
    request = sensor(dg.build_sensor_context(instance=instance, definitions=defs))
    assert isinstance(request, dg.RunRequest), request
    job = dg.define_asset_job(
        "freshness", selection=dg.AssetSelection.checks(*request.asset_check_keys)
    )
    merged = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
    result = merged.resolve_job_def("freshness").execute_in_process(instance=instance)
    return {e.asset_key.to_user_string(): e.passed for e in result.get_asset_check_evaluations()}


def test_a_late_day_fails_freshness_and_alerts_once(config: ClvConfig) -> None:
    defs = build_defs(config)
    layout = config.layout
    with dg.DagsterInstance.ephemeral() as instance, freeze_time(NOW):
        _materialize(instance, date(2024, 6, 2))  # the day before is there, 2024-06-03 is not
        assert _evaluate_freshness(defs, instance) == dict.fromkeys(FRESHNESS_ASSETS, False)
        alert_sensor = defs.resolve_sensor_def(LATE_ALERT_SENSOR)
        for _ in range(2):  # the second tick sends nothing again
            alert_sensor(dg.build_sensor_context(instance=instance, definitions=defs))
        lines = (layout.alerts / "alerts.jsonl").read_text().splitlines()
        assert len(lines) == 1
        alert = json.loads(lines[0])
        assert alert["kind"] == "late" and alert["partition"] == str(LATE)
        assert alert["failed_steps"] == [f"{a}:freshness_check" for a in sorted(FRESHNESS_ASSETS)]
        assert alert["rerun_command"] == f"clv run --date {LATE}"
        assert "not published by 2024-06-04 06:00 UTC" in alert["error"]

    # published later: the checks pass again (the run that publishes the day runs them too)
    with dg.DagsterInstance.ephemeral() as instance, freeze_time(NOW):
        _materialize(instance, LATE)
        assert _evaluate_freshness(defs, instance) == dict.fromkeys(FRESHNESS_ASSETS, True)
        defs.resolve_sensor_def(LATE_ALERT_SENSOR)(dg.build_sensor_context(instance=instance))
    assert len((layout.alerts / "alerts.jsonl").read_text().splitlines()) == 1


END = date(2024, 5, 31)


def test_a_failed_cli_run_promises_no_retry(layout: Layout, tmp_path: Path) -> None:
    land_demo_history(layout, tmp_path, n_customers=120, days=20, end=END, seed=5)
    save_settings(layout.home, {"end_date": END})  # a closed history: END is the last day due
    config = load_config(layout.home)
    bad = layout.landing_day(END) / "zz-broken.csv"
    bad.write_text("id;customer\n1;2\n")
    with pytest.raises(operations.RunFailed) as failure:
        operations.run_partition(config, END)
    instance = get_instance(config)
    assert instance.run_retries_enabled  # the daemon retries its own runs (dagster.yaml) ...
    run = instance.get_run_by_id(failure.value.outcome.run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.FAILURE
    assert run.tags[MAX_RETRIES_TAG] == "0"  # ... never a CLI run: nothing would relaunch it
    assert run.tags[WILL_RETRY_TAG] == "false"
    daily = build_defs(config).resolve_job_def(DAILY_JOB)
    assert MAX_RETRIES_TAG not in daily.tags  # scheduled runs keep the instance's 2 retries

    bad.unlink()
    outcome = operations.rerun_run(config, run.run_id)
    assert outcome.success
    rerun = instance.get_run_by_id(outcome.run_id)
    assert rerun is not None and rerun.parent_run_id == run.run_id
    assert rerun.tags[PARTITION_NAME_TAG] == str(END) and rerun.tags[MAX_RETRIES_TAG] == "0"
    assert WILL_RETRY_TAG not in rerun.tags and "dagster/failure_reason" not in rerun.tags
    # the daily run evaluated the freshness checks: the history's last day is published
    key = dg.AssetCheckKey(dg.AssetKey("clv_snapshot"), "freshness_check")
    summary = instance.event_log_storage.get_asset_check_summary_records([key])[key]
    record = summary.last_completed_check_execution_record
    assert record is not None and record.run_id == rerun.run_id
    evaluation = record.event.dagster_event.asset_check_evaluation_data  # type: ignore[union-attr]
    assert record.status.value == "SUCCEEDED", (evaluation.description, evaluation.metadata)
