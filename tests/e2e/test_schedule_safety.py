"""No launch path publishes a snapshot whose history misses a landed day.

The daemon's path is exercised as the daemon runs it: the schedule's own run request
(``build_schedule_context`` + ``evaluate_tick``) executed with the job it targets; the UI's path
as ``dg.materialize`` of one partition. Published features are compared with a run over the
complete history (``clv run``, which catches up first).
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import dagster as dg
import pytest

from clv_pipeline.config import ClvConfig, load_config
from clv_pipeline.defs import assets as assets_module
from clv_pipeline.defs import build_defs
from clv_pipeline.defs.assets import build_assets
from clv_pipeline.defs.partitions import build_partitions
from clv_pipeline.locks import partition_lock
from clv_pipeline.paths import Layout
from clv_pipeline.runs import operations
from clv_pipeline.runs.alerts import alert_failed_run
from clv_pipeline.runs.execute import execute
from clv_pipeline.runs.instance import get_instance
from clv_pipeline.runs.records import root_message
from clv_pipeline.runs.status import partition_status
from tests.conftest import land_demo_history

END = date(2024, 3, 20)
SKIPPED = END - timedelta(days=1)
LATE_DAY = END - timedelta(days=6)
LATE = f"transaction_id,customer_id,occurred_at,amount\nlate-1,late-customer,{LATE_DAY}T11:00:00Z,42.5\n"


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data home with 21 landed days and nothing ingested."""
    root = tmp_path_factory.mktemp("seed")
    home = root / "home"
    land_demo_history(Layout(home), root, n_customers=200, days=21, end=END, seed=8)
    return home


@pytest.fixture(scope="module")
def reference(seed: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """customer_features of END and END - 1 over the complete history (with and without the
    late file), built by `clv run`, which catches up every day first."""
    out = {}
    for name, late in (("plain", False), ("late", True)):
        home = tmp_path_factory.mktemp(name) / "home"
        shutil.copytree(seed, home)
        if late:
            (Layout(home).landing_day(LATE_DAY) / "late.csv").write_text(LATE)
        operations.run_partition(load_config(home, environ={}), END)
        out[name] = _features(Layout(home), END)
    return out


@pytest.fixture
def home(seed: Path, tmp_path: Path) -> Path:
    target = tmp_path / "home"
    shutil.copytree(seed, target)
    return target


def _features(layout: Layout, day: date) -> bytes:
    return layout.partition_file("customer_features", "as_of", day).read_bytes()


def _ingest_until(config: ClvConfig, last: date, instance: dg.DagsterInstance) -> None:
    """Ingest the landed days up to ``last`` only (as if the daemon was down afterwards)."""
    first = config.layout.landing_days()[0]
    assert execute(config, "clv_ingest_job", partition_range=(first, last), instance=instance)


def _scheduled_run(
    config: ClvConfig, instance: dg.DagsterInstance, day: date
) -> dg.ExecuteInProcessResult:
    """What the daemon does at 02:00 the day after ``day``: evaluate the schedule's tick and
    execute the run request it returns with the job it targets."""
    defs = build_defs(config)
    schedule = defs.resolve_schedule_def("clv_daily_schedule")
    tick_at = datetime.combine(day + timedelta(days=1), time(2, 0), tzinfo=UTC)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick_at)
    (request,) = schedule.evaluate_tick(context).run_requests or []
    assert request.partition_key == day.isoformat()
    job = defs.resolve_job_def(request.job_name or schedule.job_name)
    return job.execute_in_process(
        partition_key=request.partition_key,
        tags=request.tags,
        instance=instance,
        raise_on_error=False,
    )


def _snapshot_only(
    config: ClvConfig, instance: dg.DagsterInstance, day: date
) -> dg.ExecuteInProcessResult:
    """The UI's "Materialize" of the snapshot assets only, for partition ``day``."""
    return dg.materialize(
        build_assets(build_partitions(config)),
        selection=dg.AssetSelection.groups("snapshot"),
        partition_key=day.isoformat(),
        resources={"clv": config},
        instance=instance,
        raise_on_error=False,
    )


def test_schedule_after_a_skipped_day_ingests_it_first(
    home: Path, reference: dict[str, bytes]
) -> None:
    config = load_config(home, environ={})
    instance = get_instance(config)
    _ingest_until(config, SKIPPED - timedelta(days=1), instance)  # SKIPPED never ingested
    result = _scheduled_run(config, instance, END)
    assert result.success
    assert _features(config.layout, END) == reference["plain"]
    rows = {r.asset: r for r in partition_status(config, instance)}
    for asset in ("raw_transactions", "validated_transactions"):
        assert rows[asset].missing == [] and rows[asset].failed == [], rows[asset]
        assert rows[asset].materialized == len(config.layout.landing_days())


def test_schedule_picks_up_a_late_file_and_marks_changed_snapshots_stale(
    home: Path, reference: dict[str, bytes]
) -> None:
    config = load_config(home, environ={})
    instance = get_instance(config)
    for day in (LATE_DAY + timedelta(days=1), SKIPPED):  # two published snapshots after LATE_DAY
        operations.run_partition(config, day, instance=instance)
    (config.layout.landing_day(LATE_DAY) / "late.csv").write_text(LATE)
    result = _scheduled_run(config, instance, END)
    assert result.success
    assert _features(config.layout, END) == reference["late"]
    rows = {r.asset: r for r in partition_status(config, instance)}
    assert rows["customer_features"].stale == [LATE_DAY + timedelta(days=1), SKIPPED]
    assert rows["validated_transactions"].stale == []


def test_ui_materialize_one_partition_catches_up(home: Path, reference: dict[str, bytes]) -> None:
    """The UI's "Materialize all" for one partition (every asset, partition END)."""
    config = load_config(home, environ={})
    instance = get_instance(config)
    _ingest_until(config, SKIPPED - timedelta(days=3), instance)
    assets = build_assets(build_partitions(config))
    result = dg.materialize(
        assets, partition_key=END.isoformat(), resources={"clv": config}, instance=instance
    )
    assert result.success
    assert _features(config.layout, END) == reference["plain"]


def test_a_snapshot_without_its_history_is_blocked_and_says_why(home: Path) -> None:
    """Materializing only the snapshot assets (UI selection) cannot skip the missing days."""
    config = load_config(home, environ={})
    instance = get_instance(config)
    _ingest_until(config, SKIPPED - timedelta(days=1), instance)
    result = _snapshot_only(config, instance, END)
    assert not result.success
    assert not config.layout.partition_file("customer_state", "as_of", END).exists()
    assert not config.layout.partition_file("customer_features", "as_of", END).exists()
    (evaluation,) = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and e.asset_check_evaluation_data.check_name == "history_complete"
    ]
    assert evaluation.passed is False
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    alerts = alert_failed_run(instance, run, config)
    assert alerts is not None
    alert = json.loads(alerts.read_text().splitlines()[-1])
    assert f"{SKIPPED} (never validated)" in alert["error"]
    assert f"{END} (never validated)" in alert["error"]
    assert f"clv run --date {END}" in alert["error"]


def test_a_catch_up_day_that_fails_blocks_the_snapshot(home: Path) -> None:
    config = load_config(home, environ={})
    instance = get_instance(config)
    _ingest_until(config, SKIPPED - timedelta(days=1), instance)
    garbage = "transaction_id,customer_id,occurred_at,amount\n" + "".join(
        f"bad{i},c{i},{SKIPPED}T10:00:00Z,n/a\n" for i in range(300)
    )
    (config.layout.landing_day(SKIPPED) / "zz-garbage.csv").write_text(garbage)
    result = _scheduled_run(config, instance, END)
    assert not result.success
    assert not config.layout.partition_file("customer_features", "as_of", END).exists()
    # the next snapshot stays blocked, naming the failed day, until it is fixed
    blocked = _snapshot_only(config, instance, END)
    assert not blocked.success
    failure = next(
        e for e in blocked.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE
    )
    assert failure.step_key == "customer_state"
    message = root_message(failure.step_failure_data.error)  # type: ignore[union-attr]
    assert f"{SKIPPED} (failed validation, rejected rows in" in message


def test_ingest_steps_of_two_runs_never_overlap(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second run waits for the first one's ingest step (here: gives up after 0.5 s)."""
    config = load_config(home, environ={})
    monkeypatch.setattr(assets_module, "INGEST_LOCK_WAIT_SECONDS", 0.5)
    with partition_lock(config.layout, assets_module.INGEST_LOCK):
        result = _scheduled_run(config, get_instance(config), END)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert failure.step_key == "raw_transactions"
    message = root_message(failure.step_failure_data.error)  # type: ignore[union-attr]
    assert message.startswith("ingest is locked by another clv run (pid ")
    assert not config.layout.published_days("validated_transactions", "date")
