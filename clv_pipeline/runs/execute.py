"""Run Dagster jobs against the data home's instance, with progress (in process by default).

The ``clv`` CLI uses this instead of ``dagster asset materialize`` (which spawns a process per step
and cannot run a partition range without the daemon). One run per data home at a time: the
warehouse lock is held for the whole run.

With ``scale.executor`` other than ``in_process`` the job runs through :func:`dagster.execute_job`
on that executor: the steps run in child processes (``multiprocess``), Celery workers (``celery``)
or Kubernetes Jobs (``k8s``), each of which rebuilds the definitions itself with
:func:`job_of_home` from the data home's ``clv.toml`` and the ``CLV_*`` environment of the
process running the step: inherited from this one for ``multiprocess``, but a Celery worker's or
a pod's own otherwise (secrets such as ``CLV_CELERY_BROKER`` included), so give the workers the
same settings. The run's command-line flags (settings whose origin is "flag") travel with the
job's address; nothing else of this process does. This process still holds the warehouse lock,
reports progress and summarizes the run.

Runs started here are never retried by Dagster: only the daemon retries runs (``run_retries`` in
``dagster.yaml``), and it can only relaunch runs it can load from a code location, which a run
executed in this process is not. So they carry ``dagster/max_retries=0`` (Dagster then tags a
failed one ``dagster/will_retry=false``) and the CLI prints the command that reruns them.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import dagster as dg
from dagster._core.storage.tags import MAX_RETRIES_TAG
from dagster._core.utils import make_new_run_id

from clv_pipeline.config import SETTINGS, ClvConfig, _flatten, load_config
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
#: Tag that finds a run started through ``dg.execute_job`` (it does not take a run id)
SUBMISSION_TAG = "clv/submission"


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
    process always runs with the settings it was given; on an executor other than in_process
    the steps run with the settings their own processes load (see the module docstring).
    """
    failpoint("run:start")
    job = build_defs(config).resolve_job_def(job_name)
    instance = instance or get_instance(config)
    run_id = make_new_run_id()
    total = len(job.nodes_in_topological_order)
    box: dict[str, dg.ExecuteInProcessResult | dg.JobExecutionResult | BaseException] = {}
    token = ""

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

    def work_on_executor() -> None:
        args: tuple[Any, ...] = (str(config.home), job_name, flag_overrides(config))
        recon = dg.build_reconstructable_job(
            __name__, job_of_home.__name__, reconstructable_args=args
        )
        tags = partition_tags(partition=partition, span=partition_range)
        try:
            with dg.execute_job(
                recon,
                instance=instance,
                run_config=_console_log(log_level),
                tags={**tags, **CLI_RUN_TAGS, SUBMISSION_TAG: token},
                raise_on_error=False,
            ) as result:
                box["result"] = result
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            box["error"] = exc

    target = work
    if config.scale.executor != "in_process":
        target, token, run_id = work_on_executor, uuid.uuid4().hex, ""
    with partition_lock(config.layout, WAREHOUSE_LOCK):
        thread = threading.Thread(target=target, name=f"clv-{job_name}", daemon=True)
        thread.start()
        done = 0
        cursor: str | None = None
        while thread.is_alive():
            thread.join(0.5)
            if token and not run_id:
                run_id = _submitted_run(instance, token)
            if progress is not None and run_id:
                events, cursor = _step_events(instance, run_id, cursor)
                for event in events:
                    done += 1
                    progress(f"{event.step_key} {event.event_type_value.lower()}", done, total)
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    if token:
        run_id = box["result"].run_id  # type: ignore[union-attr]
    return summarize(instance, run_id)


def flag_overrides(config: ClvConfig) -> str:
    """The settings ``config`` got from command-line flags, as JSON (no secrets; ``{}`` when
    none): what a step process needs besides the data home and its own environment."""
    values = dict(_flatten(config.model_dump(mode="json")))
    flags = {
        path: values[path]
        for path, setting in SETTINGS.items()
        if path != "home" and not setting.secret and config.origin(path) == "flag"
    }
    return json.dumps(flags, sort_keys=True)


def job_of_home(home: str, job_name: str, flags: str = "{}") -> dg.JobDefinition:
    """Job ``job_name`` of the data home ``home`` with the command-line ``flags`` (JSON) of the
    run that started it: what Dagster reconstructs, by this name and these args, in each
    step process of a run on another executor."""
    config = load_config(home, overrides=json.loads(flags))
    return build_defs(config).resolve_job_def(job_name)


def _submitted_run(instance: dg.DagsterInstance, token: str) -> str:
    """The id of the run tagged ``token`` by :func:`execute` ("" until Dagster has created it)."""
    try:
        ids = instance.get_run_ids(dg.RunsFilter(tags={SUBMISSION_TAG: token}), limit=1)
    except Exception:  # noqa: BLE001 - storage busy; try again on the next tick
        return ""
    return ids[0] if ids else ""


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
