"""Failed and dead runs: alerts that name the command finishing the job, and orphaned runs.

* :func:`alert_failure` - the alert of a failed run, carrying the command that rebuilds the day
  the user asked for (``clv run --date D --home H``), not only the failed sub-run;
* :func:`reap_orphans` - runs of the CLI still STARTED while no process holds the warehouse lock
  (their process was SIGKILLed, OOM-killed, lost with its node) are marked failed with the reason
  and the command, alerted, and the stale lock file is emptied. Every ``clv`` command calls it
  first; so does the daemon's ``clv_orphan_runs`` sensor.

No Dagster definitions are imported here, so the sensors in :mod:`clv_pipeline.defs` can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster._core.storage.tags import MAX_RETRIES_TAG

from clv_pipeline.config import ClvConfig
from clv_pipeline.locks import Holder, clear_holder, probe_lock, read_holder
from clv_pipeline.runs.alerts import alert_failed_run
from clv_pipeline.runs.records import (
    DAILY_JOB_NAME,
    is_single_partition,
    recovery_command,
    run_command,
    run_days,
    run_label,
)

WAREHOUSE_LOCK = "warehouse"  # clv_pipeline.runs.execute.WAREHOUSE_LOCK
#: Runs in these states have a live process, or had one that died.
ACTIVE = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
#: Every run the CLI executes carries this tag (clv_pipeline.runs.execute.CLI_RUN_TAGS).
CLI_TAG = {MAX_RETRIES_TAG: "0"}


def alert_failure(
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    config: ClvConfig,
    *,
    command: str | None = None,
    failures: list[tuple[str, str]] | None = None,
) -> Path | None:
    """Alert once for the failed ``run``; None when it was already alerted.

    ``command`` rebuilds what the user asked for (the CLI knows it); else the run's own
    :func:`~clv_pipeline.runs.records.recovery_command`. ``clv rerun <id>`` is offered too when
    it finishes the same job (a daily run of that very day).
    """
    fix = command or recovery_command(run.job_name, run.tags, config.home)
    days = run_days(run.tags)
    own_day = run.job_name == DAILY_JOB_NAME and is_single_partition(run.tags)
    if own_day and fix == run_command(days[0], config.home):
        fix = f"clv rerun {run.run_id}   # or: {fix}"
    return alert_failed_run(instance, run, config, failures=failures, command=fix)


@dataclass(frozen=True)
class Orphan:
    run_id: str
    job: str
    label: str | None  # its partition or range
    reason: str  # "process 123 on host died; rerun with: clv run --date D --home H"
    command: str


def active_cli_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Runs the CLI started that are not finished (running, or dead and not noticed yet)."""
    return list(instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE, tags=CLI_TAG)))


def lock_holder(config: ClvConfig) -> Holder | None:
    """The process holding the warehouse lock now (a ``clv`` run in progress), else None."""
    holder = read_holder(config.layout, WAREHOUSE_LOCK)
    return holder if holder is not None and holder.alive() is not False else None


def reap_orphans(config: ClvConfig, instance: dg.DagsterInstance) -> list[Orphan]:
    """Mark failed every CLI run left STARTED by a process that died; empty its stale lock.

    A CLI run holds the warehouse lock from before it starts until it ends, so an unfinished
    CLI run while nobody holds the lock is dead. Nothing is done while a live process holds it.
    """
    layout = config.layout
    holder = read_holder(layout, WAREHOUSE_LOCK)
    if holder is not None and holder.alive():
        return []  # a run in progress on this host
    runs = active_cli_runs(instance)
    if not runs and holder is None:
        return []
    found = []
    with probe_lock(layout, WAREHOUSE_LOCK) as free:
        if not free:
            return []  # held by a live process (another host, or a run that just started)
        runs = active_cli_runs(instance)  # again, under the lock
        who = (
            f"process {holder.pid} on {holder.host} (`{holder.command}`, since {holder.since})"
            if holder is not None
            else "its clv process"
        )
        for run in runs:
            command = recovery_command(run.job_name, run.tags, config.home)
            reason = f"{who} died; rerun with: {command}"
            instance.report_run_failed(run, message=f"run {run.run_id} was orphaned: {reason}")
            failed = instance.get_run_by_id(run.run_id) or run
            alert_failure(instance, failed, config, command=command, failures=[("run", reason)])
            found.append(Orphan(run.run_id, run.job_name, run_label(run.tags), reason, command))
        if holder is not None:
            clear_holder(layout, WAREHOUSE_LOCK)
    return found
