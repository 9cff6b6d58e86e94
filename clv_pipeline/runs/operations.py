"""On-call operations behind the CLI: run a day with catch-up, backfill a range, rerun failures.

Everything goes through Dagster runs in process on the data home's instance, so ``clv status``
and the Dagster UI show the same history as the daemon's own runs.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import dagster as dg

from clv_pipeline import pipeline
from clv_pipeline.config import ClvConfig, yesterday
from clv_pipeline.defs.jobs import DAILY_JOB, INGEST_JOB, SNAPSHOT_JOB
from clv_pipeline.defs.partitions import build_partitions
from clv_pipeline.errors import ClvError
from clv_pipeline.history import INGEST_TABLES, days_to_ingest_before, history_gaps, stale_days
from clv_pipeline.locks import LockedError
from clv_pipeline.publish.catalog import complete_dates, read_manifest
from clv_pipeline.runs.alerts import alert_empty_days, alert_lock_refused
from clv_pipeline.runs.execute import Progress, execute, reexecute_from_failure
from clv_pipeline.runs.instance import get_instance
from clv_pipeline.runs.records import (
    RunOutcome,
    day_range,
    is_single_partition,
    recovery_command,
    run_command,
    run_days,
)
from clv_pipeline.runs.recovery import alert_failure, reap_orphans
from clv_pipeline.runs.status import partition_status

Announce = Callable[[str], None]


class RunFailed(ClvError):
    """A Dagster run failed; ``outcome`` has the failed steps and their first error line;
    ``command`` finishes what the user asked for (``clv run --date D --home H``...)."""

    def __init__(self, what: str, outcome: RunOutcome, command: str | None = None):
        first = outcome.failures[0] if outcome.failures else ("run", "failed before any step ran")
        super().__init__(f"{what} failed at {first[0]}: {first[1]} (run {outcome.run_id})")
        self.outcome = outcome
        self.command = command or f"clv rerun {outcome.run_id}"


def check_partition(config: ClvConfig, day: date) -> None:
    """Fail with the bounds, where they come from and the fix when ``day`` is not a partition."""
    if build_partitions(config).has_partition_key(day.isoformat()):
        return
    start = f"{config.start_date} (start_date, from {config.origin('start_date')})"
    end = (
        f"{config.end_date} (end_date, from {config.origin('end_date')})"
        if config.end_date
        else f"yesterday ({yesterday(config.timezone)}, {config.timezone})"
    )
    fix = (
        f"; to include it: `clv init --start-date {day} --home {config.home}`"
        if day < config.start_date
        else (
            f"; to include it: `clv init --end-date {day} --home {config.home}`"
            if config.end_date and day > config.end_date
            else ""
        )
    )
    raise ClvError(
        f"{day} is not a partition of {config.home}: partitions run from {start} to {end}{fix}"
    )


def _execute(
    config: ClvConfig,
    instance: dg.DagsterInstance,
    job: str,
    what: str,
    progress: Progress | None,
    *,
    command: str | None = None,
    **kwargs: object,
) -> RunOutcome:
    """Execute ``job``; on failure alert and raise with ``command``, the command that finishes
    what the user asked for (default: the failed run's own recovery command)."""
    try:
        outcome = execute(config, job, instance=instance, progress=progress, **kwargs)  # type: ignore[arg-type]
    except LockedError as exc:  # another run holds the warehouse: nothing changed, alert it
        alert_lock_refused(config, str(exc), command=command)
        raise
    if not outcome.success:
        run = instance.get_run_by_id(outcome.run_id)
        if run is not None:
            command = command or recovery_command(run.job_name, run.tags, config.home)
            alert_failure(instance, run, config, command=command, failures=outcome.failures)
        raise RunFailed(what, outcome, command)
    return outcome


def ingest(
    config: ClvConfig,
    instance: dg.DagsterInstance,
    days: list[date],
    progress: Progress | None = None,
    *,
    command: str | None = None,
) -> RunOutcome | None:
    """Pull + validate ``days`` (first..last) in one single-run backfill."""
    if not days:
        return None
    return _execute(
        config,
        instance,
        INGEST_JOB,
        f"ingest {days[0]}..{days[-1]}",
        progress,
        command=command,
        partition_range=(days[0], days[-1]),
    )


def run_partition(
    config: ClvConfig,
    day: date,
    *,
    instance: dg.DagsterInstance | None = None,
    progress: Progress | None = None,
    announce: Announce | None = None,
) -> RunOutcome:
    """Run every asset for ``day``: the daily job, exactly as the schedule launches it.

    Its ingest assets first catch up every landing day before ``day`` that was missed or got
    late files (:func:`clv_pipeline.history.ingest_plan`), in the same run.
    """
    check_partition(config, day)
    instance = instance or get_instance(config)
    stale = days_to_ingest_before(config, day)
    if stale and announce:
        announce(
            f"catching up {len(stale)} ingest day(s) {stale[0]} .. {stale[-1]} in the same run"
        )
    command = run_command(day, config.home)
    outcome = _execute(
        config, instance, DAILY_JOB, f"partition {day}", progress, command=command, partition=day
    )
    for warning in alert_empty_days(config, instance, outcome.run_id):  # CLV_ON_EMPTY_DAY=warn
        if announce:
            announce(f"warning: {warning}")
    for later in outdated_after(config, [day]):
        if announce:
            announce(f"snapshot {later} compared with an older snapshot than {day}: rebuilding it")
        _execute(
            config,
            instance,
            SNAPSHOT_JOB,
            f"snapshot {later}",
            None,
            command=command,
            partition=later,
        )
    return outcome


def outdated_after(config: ClvConfig, days: list[date]) -> list[date]:
    """The first complete snapshot after each of ``days`` (not itself in ``days``) whose
    ``kpis`` / ``segment_migration`` compare with an older snapshot (or none) than the latest
    complete one before it: a day published after it (backfill, rerun) is its new previous day.

    Rebuilding it (``clv_snapshot_job``: stage, audit, commit like any run) brings its changes
    and migration up to date; ascending."""
    complete = complete_dates(config.layout)
    found = set()
    for day in days:
        later = next((d for d in complete if d > day), None)
        if later is not None and later not in days and pipeline.comparison_outdated(config, later):
            found.add(later)
    return sorted(found)


def outdated_comparisons(config: ClvConfig, *, since: date | None = None) -> list[date]:
    """Every complete snapshot (``>= since``) whose comparisons are not with the latest complete
    snapshot before it (see :func:`outdated_after`)."""
    files, _ = read_manifest(config.layout)
    return [
        d
        for d in sorted({day for day, _, _ in files})
        if (since is None or d >= since) and pipeline.comparison_outdated(config, d, manifest=files)
    ]


@dataclass(frozen=True)
class DayOutcome:
    day: date
    ok: bool
    run_id: str
    message: str
    seconds: float


def backfill(
    config: ClvConfig,
    start: date,
    end: date,
    *,
    progress: Callable[[date, int, int], None] | None = None,
) -> list[DayOutcome]:
    """Ingest ``start..end`` in one run, then the snapshot assets of each day (one run per day)."""
    if end < start:
        raise ClvError(f"--end {end} is before --start {start}")
    check_partition(config, start)
    check_partition(config, end)
    instance = get_instance(config)
    days = day_range(start, end)
    command = f"clv backfill --start {start} --end {end} --home {shlex.quote(str(config.home))}"
    ingest(config, instance, days_to_ingest_before(config, start), command=command)
    ingest(config, instance, days, command=command)
    results = []
    for i, day in enumerate(days, start=1):
        t0 = time.monotonic()
        try:
            outcome = _execute(
                config,
                instance,
                SNAPSHOT_JOB,
                f"snapshot {day}",
                None,
                command=command,
                partition=day,
            )
            results.append(DayOutcome(day, True, outcome.run_id, "ok", time.monotonic() - t0))
        except RunFailed as exc:
            results.append(
                DayOutcome(day, False, exc.outcome.run_id, str(exc), time.monotonic() - t0)
            )
        if progress:
            progress(day, i, len(days))
    done = [r.day for r in results if r.ok]
    for later in outdated_after(config, done):
        # a later snapshot compared with a day before the range (or none): compare with the range
        t0 = time.monotonic()
        what = f"snapshot {later} (compares with {max(d for d in done if d < later)} now)"
        try:
            outcome = _execute(
                config, instance, SNAPSHOT_JOB, what, None, command=command, partition=later
            )
            results.append(DayOutcome(later, True, outcome.run_id, "ok", time.monotonic() - t0))
        except RunFailed as exc:
            results.append(
                DayOutcome(later, False, exc.outcome.run_id, str(exc), time.monotonic() - t0)
            )
    return results


def rerun_run(config: ClvConfig, run_id: str, *, progress: Progress | None = None) -> RunOutcome:
    """Re-execute a failed run from its failed step; a full run of its partition(s) otherwise."""
    instance = get_instance(config)
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise ClvError(f"no run {run_id} in {config.layout.dagster}; see `clv status`")
    days = run_days(run.tags)
    if not days:
        raise ClvError(f"run {run_id} has no partition to rerun")
    single = is_single_partition(run.tags)
    if single and run.status == dg.DagsterRunStatus.FAILURE and run.job_name == DAILY_JOB:
        outcome = reexecute_from_failure(config, run_id, instance=instance)
        if outcome.success:
            return outcome
    if single:
        return run_partition(config, days[0], instance=instance, progress=progress)
    # a range (an ingest backfill): re-ingest it, then build what depends on it (failed, killed,
    # never-built target days and stale snapshots from its first day), as `clv rerun --failed`
    command = f"clv rerun --failed --home {shlex.quote(str(config.home))}"
    result = ingest(config, instance, days, progress, command=command)
    assert result is not None  # noqa: S101 - days is never empty here
    for step in rerun_failed(config, since=days[0]):
        if not step.ok:
            raise ClvError(f"{step.what} failed: {step.message}; then `{command}`")
    return result


def failed_days(config: ClvConfig, *, since: date | None = None) -> list[date]:
    """Partitions whose latest materialization attempt failed, for any asset."""
    rows = partition_status(config, get_instance(config))
    return sorted({d for row in rows for d in row.failed if since is None or d >= since})


@dataclass(frozen=True)
class RerunStep:
    what: str  # "ingest 2024-03-19..2024-03-20", "snapshot 2024-03-20"
    ok: bool
    run_id: str
    message: str


def rerun_failed(
    config: ClvConfig,
    *,
    since: date | None = None,
    announce: Announce | None = None,
) -> list[RerunStep]:
    """Rebuild every failed partition, then every published snapshot that depends on what was
    rebuilt, so no snapshot is left stale.

    1. One ingest run over the failed ingest days (first..last), plus every landed day up to the
       last date to rebuild that is still missing or outdated in ``validated_transactions``.
    2. The snapshot assets (``clv_snapshot_job``, no re-ingest) of every date whose snapshot
       failed or is incomplete (some of its assets materialized, others not: a run SIGKILLed
       midway records no failure), and of every published snapshot made stale by step 1 (a
       snapshot of a later date read the days just re-ingested), oldest first.
    3. The snapshot assets of every complete snapshot whose ``kpis`` / ``segment_migration``
       compare with an older snapshot than the latest complete one before it (a day published
       after it, also from the Dagster UI; see :func:`outdated_comparisons`).

    Stops after step 1 when the ingest still fails: every later snapshot would be blocked by
    the ``history_complete`` check anyway.
    """
    instance = get_instance(config)
    say = announce or (lambda _: None)
    reap_orphans(config, instance)  # a killed run: failed now, its days are targets below
    rows = partition_status(config, instance, since=since)
    ingest_failed = {d for r in rows if r.asset in INGEST_TABLES for d in r.failed}
    snapshot_failed = {  # `missing` of a snapshot asset: another one has that day, it has not
        d for r in rows if r.asset not in INGEST_TABLES for d in (*r.failed, *r.missing)
    } | set(unbuilt_targets(config, since=since))
    targets = ingest_failed | snapshot_failed
    if not targets:
        return _refresh_comparisons(config, instance, say, since=since)
    to_ingest = sorted(ingest_failed | {g.day for g in history_gaps(config, max(targets))})
    steps = []
    if to_ingest:
        what = f"ingest {to_ingest[0]}..{to_ingest[-1]}"
        say(f"{what} (failed days: {len(ingest_failed)})")
        step, ok = _step(config, instance, INGEST_JOB, what, partition_range=to_ingest)
        steps.append(step)
        if not ok:
            return steps
    snapshots = set(snapshot_failed)
    if to_ingest:
        layout = config.layout
        snapshot_assets = [r.asset for r in rows if r.asset not in INGEST_TABLES]
        snapshots |= {
            d for a in snapshot_assets for d in stale_days(layout, a) if d >= to_ingest[0]
        }
    for day in sorted(snapshots):
        say(f"snapshot {day}")
        step, _ = _step(config, instance, SNAPSHOT_JOB, f"snapshot {day}", partition=day)
        steps.append(step)
    return steps + _refresh_comparisons(config, instance, say, since=since)


def unbuilt_targets(config: ClvConfig, *, since: date | None = None) -> list[date]:
    """Target days whose snapshot was never built: the latest scheduled day (the last partition,
    when it has landed) when no complete snapshot of it exists, e.g. after a run killed before it
    recorded anything. Historical days are no targets: only what was asked for is rebuilt."""
    partitions = build_partitions(config)
    keys = partitions.get_partition_keys()
    if not keys or config.source.kind != "landing":
        return []
    last = date.fromisoformat(keys[-1])
    if since is not None and last < since:
        return []
    if last not in config.layout.landing_days() or last in complete_dates(config.layout):
        return []
    return [last]


def _refresh_comparisons(
    config: ClvConfig, instance: dg.DagsterInstance, say: Announce, *, since: date | None
) -> list[RerunStep]:
    """Rebuild every complete snapshot (``>= since``) whose comparisons are outdated (a day
    before it was published later, e.g. by a backfill launched from the Dagster UI)."""
    steps = []
    for day in outdated_comparisons(config, since=since):
        what = f"snapshot {day} (comparisons)"
        say(f"{what}: compared with an older snapshot than the latest before it")
        step, _ = _step(config, instance, SNAPSHOT_JOB, what, partition=day)
        steps.append(step)
    return steps


def _step(
    config: ClvConfig,
    instance: dg.DagsterInstance,
    job: str,
    what: str,
    *,
    partition: date | None = None,
    partition_range: list[date] | None = None,
) -> tuple[RerunStep, bool]:
    span = (partition_range[0], partition_range[-1]) if partition_range else None
    command = f"clv rerun --failed --home {shlex.quote(str(config.home))}"
    try:
        outcome = _execute(
            config,
            instance,
            job,
            what,
            None,
            command=command,
            partition=partition,
            partition_range=span,
        )
    except RunFailed as exc:
        return RerunStep(what, False, exc.outcome.run_id, str(exc)), False
    return RerunStep(what, True, outcome.run_id, "ok"), True
