"""Run Dagster jobs in process against the data home's instance, with progress.

The ``clv`` CLI uses this instead of ``dagster asset materialize`` (which spawns a process per step
and cannot run a partition range without the daemon).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from dagster._core.utils import make_new_run_id

from clv_pipeline.config import ClvConfig
from clv_pipeline.faults import failpoint
from clv_pipeline.locks import partition_lock
from clv_pipeline.paths import Layout

WAREHOUSE_LOCK = "warehouse"
Progress = Callable[[str, int, int], None]  # (message, steps done, steps total)


@dataclass
class RunOutcome:
    run_id: str
    success: bool
    failures: list[tuple[str, str]] = field(default_factory=list)  # (step, error first line)
    materialized: list[str] = field(default_factory=list)


POSTGRES_ENV = "CLV_DAGSTER_POSTGRES_URL"


def packaged_instance_yaml(postgres: bool = False) -> Path:
    name = "dagster.postgres.yaml" if postgres else "dagster.yaml"
    return Path(str(resources.files("clv_pipeline") / "resources" / name))


def get_instance(layout: Layout) -> dg.DagsterInstance:
    """The Dagster instance.

    ``$DAGSTER_HOME`` when set (a team's daemon-managed instance); else PostgreSQL storage when
    ``$CLV_DAGSTER_POSTGRES_URL`` is set; else SQLite under ``<home>/dagster``.
    """
    layout.dagster.mkdir(parents=True, exist_ok=True)
    if os.environ.get("DAGSTER_HOME"):
        os.environ.setdefault("CLV_DAGSTER_STORAGE", str(layout.dagster))
        return dg.DagsterInstance.get()
    os.environ["CLV_DAGSTER_STORAGE"] = str(layout.dagster)
    postgres = bool(os.environ.get(POSTGRES_ENV))
    folder = layout.dagster / "postgres" if postgres else layout.dagster
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "dagster.yaml"
    source = packaged_instance_yaml(postgres)
    if not target.exists() or target.read_bytes() != source.read_bytes():
        shutil.copyfile(source, target)
    return dg.DagsterInstance.from_config(str(folder))


def stale_ingest_days(layout: Layout, *, before: date) -> list[date]:
    """Landing days before ``before`` whose validated partition is missing or older than a file."""
    stale = []
    for day in layout.landing_days():
        if day >= before:
            break
        newest = layout.landing_mtime(day)
        outputs = [
            layout.partition_file(table, "date", day)
            for table in ("raw_transactions", "validated_transactions")
        ]
        if any(not p.exists() or p.stat().st_mtime < newest for p in outputs):
            stale.append(day)
    return stale


def execute(
    job_name: str,
    layout: Layout,
    *,
    partition: date | None = None,
    partition_range: tuple[date, date] | None = None,
    progress: Progress | None = None,
    instance: dg.DagsterInstance | None = None,
    log_level: str = "WARNING",
    config: ClvConfig | None = None,
) -> RunOutcome:
    """Execute ``job_name`` in process for one partition or a single-run partition range.

    Events always go to the instance (``clv status``, the Dagster UI); ``log_level`` only sets what
    the console logger prints. ``config`` (default: read from the environment now) is bound as the
    ``clv`` resource, so a long-lived process always runs with the settings it was given.
    """
    from clv_pipeline.definitions import defs  # imported late: config comes from the environment

    failpoint("run:start")
    job = defs.resolve_job_def(job_name)
    instance = instance or get_instance(layout)
    run_id = make_new_run_id()
    tags: dict[str, str] = {}
    if partition_range is not None:
        tags = {
            ASSET_PARTITION_RANGE_START_TAG: partition_range[0].isoformat(),
            ASSET_PARTITION_RANGE_END_TAG: partition_range[1].isoformat(),
        }
    total = len(job.nodes_in_topological_order)
    box: dict[str, dg.ExecuteInProcessResult | BaseException] = {}

    def work() -> None:
        try:
            box["result"] = job.execute_in_process(
                run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
                instance=instance,
                partition_key=partition.isoformat() if partition else None,
                run_id=run_id,
                tags=tags,
                raise_on_error=False,
                resources={"clv": config or ClvConfig.from_env()},
            )
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            box["error"] = exc

    # one clv run per data home at a time: partitions are never written by two runs at once
    with partition_lock(layout, WAREHOUSE_LOCK):
        thread = threading.Thread(target=work, name=f"clv-{job_name}", daemon=True)
        thread.start()
        done = 0
        cursor: str | None = None
        while thread.is_alive():
            thread.join(0.5)
            if progress is not None:
                events, cursor = _step_events(instance, run_id, cursor)
                for event in events:
                    done += 1
                    progress(f"{event.step_key} {event.event_type_value.lower()}", done, total)
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return summarize(instance, run_id)


def _step_events(
    instance: dg.DagsterInstance, run_id: str, cursor: str | None
) -> tuple[list[dg.DagsterEvent], str | None]:
    """Step successes/failures recorded since ``cursor`` (incremental, cheap to poll)."""
    kinds = {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    try:
        page = instance.get_records_for_run(run_id, cursor=cursor, of_type=kinds)
    except Exception:  # noqa: BLE001 - storage busy; try again on the next tick
        return [], cursor
    events = [r.event_log_entry.dagster_event for r in page.records]
    return [e for e in events if e is not None], page.cursor


def summarize(instance: dg.DagsterInstance, run_id: str) -> RunOutcome:
    """Success flag, failed steps with the first line of their error, materialized assets."""
    run = instance.get_run_by_id(run_id)
    outcome = RunOutcome(run_id, bool(run and run.status == dg.DagsterRunStatus.SUCCESS))
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_FAILURE and event.step_failure_data:
            error = event.step_failure_data.error
            message = _root_message(error) if error else "unknown error"
            outcome.failures.append((event.step_key or "?", message))
        elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            key = event.asset_key.to_user_string() if event.asset_key else "?"
            outcome.materialized.append(key)
    return outcome


def _root_message(error: object) -> str:
    """First line of our own error in the cause chain (it names file/column), else the innermost."""
    chain = []
    while error is not None:
        chain.append(error)
        error = getattr(error, "cause", None)
    ours = [
        e for e in chain if getattr(e, "cls_name", "") in {"InputError", "PublishError", "ClvError"}
    ]
    chosen = ours[0] if ours else chain[-1]
    message = str(getattr(chosen, "message", chosen)).strip()
    first = message.splitlines()[0] if message else "unknown error"
    prefix = f"{chosen.cls_name}: "  # type: ignore[attr-defined]
    return first[len(prefix) :] if ours and first.startswith(prefix) else first


def daily_job() -> dg.JobDefinition:
    """The daily job, importable by name so Dagster can reconstruct it for re-execution."""
    from clv_pipeline.definitions import defs

    return defs.resolve_job_def("clv_daily_job")


def reexecute_from_failure(
    layout: Layout, run_id: str, *, instance: dg.DagsterInstance, log_level: str = "WARNING"
) -> RunOutcome:
    """Re-execute a failed ``clv_daily_job`` run from its failed steps (same partition)."""
    options = dg.ReexecutionOptions.from_failure(run_id, instance)
    parent = instance.get_run_by_id(run_id)
    tags = {k: v for k, v in (parent.tags if parent else {}).items() if k.startswith("dagster/")}
    with partition_lock(layout, WAREHOUSE_LOCK):
        with dg.execute_job(
            dg.reconstructable(daily_job),
            instance=instance,
            reexecution_options=options,
            tags=tags,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            raise_on_error=False,
        ) as result:
            new_run_id = result.run_id
    return summarize(instance, new_run_id)
