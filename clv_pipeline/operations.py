"""On-call operations behind the CLI: run a day with catch-up, backfill a range, rerun failures.

Everything goes through Dagster runs in process on the data home's instance, so ``clv status``
and the Dagster UI show the same history as the daemon's own runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from clv_pipeline import runner
from clv_pipeline.alerts import Alert, send_alert
from clv_pipeline.config import ClvConfig
from clv_pipeline.errors import ClvError
from clv_pipeline.runner import Progress, RunOutcome

Announce = Callable[[str], None]


class RunFailed(ClvError):
    """A Dagster run failed; ``outcome`` has the failed steps and their first error line."""

    def __init__(self, what: str, outcome: RunOutcome):
        first = outcome.failures[0] if outcome.failures else ("run", "failed before any step ran")
        super().__init__(f"{what} failed at {first[0]}: {first[1]} (run {outcome.run_id})")
        self.outcome = outcome


def yesterday(timezone: str) -> date:
    return datetime.now(ZoneInfo(timezone)).date() - timedelta(days=1)


def check_partition(config: ClvConfig, day: date) -> None:
    start = date.fromisoformat(config.start_date)
    last = yesterday(config.timezone)
    if day < start or day > last:
        raise ClvError(
            f"{day} is not a partition: partitions run from {start} (CLV_START_DATE) to yesterday "
            f"({last}, {config.timezone})"
        )


def _execute(
    config: ClvConfig,
    instance: dg.DagsterInstance,
    job: str,
    what: str,
    progress: Progress | None,
    **kwargs: object,
) -> RunOutcome:
    outcome = runner.execute(
        job,
        config.layout,
        instance=instance,
        progress=progress,
        config=config,
        **kwargs,  # type: ignore[arg-type]
    )
    if not outcome.success:
        partition = kwargs.get("partition")
        span = kwargs.get("partition_range")
        label = str(partition) if partition else (f"{span[0]}..{span[1]}" if span else None)  # type: ignore[index]
        send_alert(
            Alert.for_run(
                run_id=outcome.run_id, job=job, partition=label, failures=outcome.failures
            ),
            config.layout,
        )
        raise RunFailed(what, outcome)
    return outcome


def ingest(
    config: ClvConfig,
    instance: dg.DagsterInstance,
    days: list[date],
    progress: Progress | None = None,
) -> RunOutcome | None:
    """Pull + validate ``days`` (first..last) in one single-run backfill."""
    if not days:
        return None
    return _execute(
        config,
        instance,
        "clv_ingest_job",
        f"ingest {days[0]}..{days[-1]}",
        progress,
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
    """Catch up stale ingest days before ``day`` in one run, then run every asset for ``day``."""
    check_partition(config, day)
    instance = instance or runner.get_instance(config.layout)
    stale = _stale_before(config, day)
    if stale and announce:
        announce(f"catching up {len(stale)} ingest day(s) {stale[0]} .. {stale[-1]} in one run")
    ingest(config, instance, stale, progress)
    return _execute(config, instance, "clv_daily_job", f"partition {day}", progress, partition=day)


def _stale_before(config: ClvConfig, day: date) -> list[date]:
    """Days from CLV_START_DATE up to ``day`` (exclusive) to (re)ingest before running ``day``.

    Landing folder: days with files newer than their ingest. Every source: the ``lookback_days``
    days before ``day`` are pulled again (late rows land in their day, deduplicated on
    ``transaction_id``), and for remote sources the days of that window never ingested.
    """
    start = date.fromisoformat(config.start_date)
    days = (
        set(runner.stale_ingest_days(config.layout, before=day))
        if config.source == "landing"
        else set()
    )
    days |= {day - timedelta(days=i) for i in range(1, config.lookback_days + 1)}
    return sorted(d for d in days if start <= d < day)


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
    import time

    if end < start:
        raise ClvError(f"--end {end} is before --start {start}")
    check_partition(config, start)
    check_partition(config, end)
    instance = runner.get_instance(config.layout)
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    ingest(config, instance, _stale_before(config, start))
    ingest(config, instance, days)
    results = []
    for i, day in enumerate(days, start=1):
        t0 = time.monotonic()
        try:
            outcome = _execute(
                config, instance, "clv_snapshot_job", f"snapshot {day}", None, partition=day
            )
            results.append(DayOutcome(day, True, outcome.run_id, "ok", time.monotonic() - t0))
        except RunFailed as exc:
            results.append(
                DayOutcome(day, False, exc.outcome.run_id, str(exc), time.monotonic() - t0)
            )
        if progress:
            progress(day, i, len(days))
    return results


def rerun_run(config: ClvConfig, run_id: str, *, progress: Progress | None = None) -> RunOutcome:
    """Re-execute a failed run from its failed step; a full run of its partition(s) otherwise."""
    instance = runner.get_instance(config.layout)
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise ClvError(f"no run {run_id} in {config.layout.dagster}; see `clv status`")
    partition = run.tags.get("dagster/partition")
    if run.status == dg.DagsterRunStatus.FAILURE and partition and run.job_name == "clv_daily_job":
        outcome = runner.reexecute_from_failure(config.layout, run_id, instance=instance)
        if outcome.success:
            return outcome
    if partition:
        return run_partition(
            config, date.fromisoformat(partition), instance=instance, progress=progress
        )
    start = run.tags.get("dagster/asset_partition_range_start")
    end = run.tags.get("dagster/asset_partition_range_end")
    if start and end:
        first, last = date.fromisoformat(start), date.fromisoformat(end)
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        result = ingest(config, instance, days, progress)
        assert result is not None  # noqa: S101 - days is never empty here
        return result
    raise ClvError(f"run {run_id} has no partition to rerun")


def failed_days(config: ClvConfig, *, since: date | None = None) -> list[date]:
    """Partitions whose latest materialization attempt failed, for any asset."""
    from clv_pipeline.status import partition_status

    rows = partition_status(runner.get_instance(config.layout), config.layout)
    days = sorted({d for row in rows for d in row.failed if since is None or d >= since})
    return days
