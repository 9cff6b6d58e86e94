"""Run Dagster jobs in process against the data home's instance, with progress.

The ``clv`` CLI uses this instead of ``dagster asset materialize`` (which spawns a process per step
and cannot run a partition range without the daemon). One run per data home at a time: the
warehouse lock is held for the whole run.

Runs started here are never retried by Dagster: only the daemon retries runs (``run_retries`` in
``dagster.yaml``), and it can only relaunch runs it can load from a code location, which a run
executed in this process is not. So they carry ``dagster/max_retries=0`` (Dagster then tags a
failed one ``dagster/will_retry=false``) and the CLI prints the command that reruns them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date

import dagster as dg
from dagster._core.storage.tags import MAX_RETRIES_TAG
from dagster._core.utils import make_new_run_id

from clv_pipeline.config import ClvConfig, load_config
from clv_pipeline.defs import build_defs
from clv_pipeline.defs.jobs import DAILY_JOB
from clv_pipeline.faults import failpoint
from clv_pipeline.locks import partition_lock
from clv_pipeline.runs.instance import get_instance
from clv_pipeline.runs.records import RunOutcome, partition_tags, run_days, summarize

WAREHOUSE_LOCK = "warehouse"
Progress = Callable[[str, int, int], None]  # (message, steps done, steps total)
#: Tags of every run the CLI executes: no automatic retry is promised (see the module docstring).
CLI_RUN_TAGS = {MAX_RETRIES_TAG: "0"}


def _console_log(level: str) -> dict[str, object]:
    return {"loggers": {"console": {"config": {"log_level": level}}}}


def execute(
    config: ClvConfig,
    job_name: str,
    *,
    partition: date | None = None,
    partition_range: tuple[date, date] | None = None,
    progress: Progress | None = None,
    instance: dg.DagsterInstance | None = None,
    log_level: str = "WARNING",
) -> RunOutcome:
    """Execute ``job_name`` of ``config``'s definitions for one partition or a single-run range.

    Events always go to the instance (``clv status``, the Dagster UI); ``log_level`` only sets what
    the console logger prints. ``config`` is bound as the ``clv`` resource, so a long-lived
    process always runs with the settings it was given.
    """
    failpoint("run:start")
    job = build_defs(config).resolve_job_def(job_name)
    instance = instance or get_instance(config)
    run_id = make_new_run_id()
    total = len(job.nodes_in_topological_order)
    box: dict[str, dg.ExecuteInProcessResult | BaseException] = {}

    def work() -> None:
        try:
            box["result"] = job.execute_in_process(
                run_config=_console_log(log_level),
                instance=instance,
                partition_key=partition.isoformat() if partition else None,
                run_id=run_id,
                tags={**partition_tags(span=partition_range), **CLI_RUN_TAGS},
                raise_on_error=False,
            )
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            box["error"] = exc

    with partition_lock(config.layout, WAREHOUSE_LOCK):
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


def daily_job(home: str) -> dg.JobDefinition:
    """The daily job of the data home ``home`` (Dagster reconstructs it by this name and args)."""
    return build_defs(load_config(home)).resolve_job_def(DAILY_JOB)


def reexecute_from_failure(
    config: ClvConfig, run_id: str, *, instance: dg.DagsterInstance, log_level: str = "WARNING"
) -> RunOutcome:
    """Re-execute a failed ``clv_daily_job`` run from its failed steps (same partition)."""
    options = dg.ReexecutionOptions.from_failure(run_id, instance)
    parent = instance.get_run_by_id(run_id)
    days = run_days(parent.tags) if parent else []
    # the parent's partition (not its retry, failure or schedule tags)
    tags = {**(partition_tags(partition=days[0]) if len(days) == 1 else {}), **CLI_RUN_TAGS}
    job = dg.build_reconstructable_job(
        __name__, daily_job.__name__, reconstructable_args=(str(config.home),)
    )
    with partition_lock(config.layout, WAREHOUSE_LOCK):
        with dg.execute_job(
            job,
            instance=instance,
            reexecution_options=options,
            tags=tags,
            run_config=_console_log(log_level),
            raise_on_error=False,
        ) as result:
            new_run_id = result.run_id
    return summarize(instance, new_run_id)
