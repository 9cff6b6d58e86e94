"""Partition status per asset, from the Dagster instance, the landing folder and file times.

A partition is failed when its latest attempt failed and nothing materialized it since: a failed
run that planned it (Dagster's own status), or an ingest day that failed inside a catch-up step
(recorded as an observation with the day's own error, see ``DAY_FAILURE``). Each failed partition
carries its own error: the day's own one, else its failed run's error for that step, else which
step of the run failed before it could run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import NamedTuple

import dagster as dg
from dagster._core.storage.partition_status_cache import AssetPartitionStatus

from clv_pipeline.config import ClvConfig
from clv_pipeline.defs import build_defs
from clv_pipeline.defs.assets import DAY_FAILURE, INGEST
from clv_pipeline.defs.partitions import build_partitions
from clv_pipeline.errors import ClvError
from clv_pipeline.history import stale_days
from clv_pipeline.runs.records import RunOutcome, summarize

ERROR_CHARS = 200  # a failure's line in `clv status` shows at most this much of its error
OBSERVATIONS_PAGE = 1000


class Failure(NamedTuple):
    run_id: str
    error: str  # the first line of its own error, at most ERROR_CHARS characters
    text: str  # the full error


@dataclass
class AssetStatus:
    asset: str
    materialized: int = 0
    latest: date | None = None
    failed: list[date] = field(default_factory=list)
    missing: list[date] = field(default_factory=list)
    stale: list[date] = field(default_factory=list)
    errors: dict[date, Failure] = field(default_factory=dict)


def first_line(text: str, limit: int = ERROR_CHARS) -> str:
    """The first line of ``text``, cut to ``limit`` characters (``…`` marks a cut)."""
    line = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return line if len(line) <= limit else line[: limit - 1] + "…"


class _Attempt(NamedTuple):
    storage_id: int
    run_id: str
    text: str


def _day_failures(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, _Attempt]:
    """partition -> the latest day failure recorded by an ingest step (an observation)."""
    latest: dict[str, _Attempt] = {}
    cursor = None
    while True:
        page = instance.fetch_observations(key, limit=OBSERVATIONS_PAGE, cursor=cursor)
        for record in page.records:
            observation = record.asset_observation
            if observation is None or not observation.partition:
                continue
            value = observation.metadata.get(DAY_FAILURE)
            if value is None or observation.partition in latest:
                continue  # newest first: the first seen per partition is the latest
            text = str(getattr(value, "value", value))
            latest[observation.partition] = _Attempt(record.storage_id, record.run_id, text)
        if not page.has_more:
            return latest
        cursor = page.cursor


class _Failures:
    """Failed partitions of one asset with their own error (runs summarized once each)."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance
        self.outcomes: dict[str, RunOutcome] = {}

    def _outcome(self, run_id: str) -> RunOutcome:
        if run_id not in self.outcomes:
            self.outcomes[run_id] = summarize(self.instance, run_id)
        return self.outcomes[run_id]

    def _run_failure(self, run_id: str, step: str) -> Failure:
        outcome = self._outcome(run_id)
        if step in outcome.details:
            text = outcome.details[step]
        elif outcome.failures:
            steps = ", ".join(dict.fromkeys(s for s, _ in outcome.failures))
            text = f"not run: {steps} failed in this run"
        elif "run" in outcome.details:  # the run's own failure: orphaned (its process died)
            text = outcome.details["run"]
        else:
            text = "the run failed before any step ran (killed or a launch error)"
        return Failure(run_id, first_line(text), text)

    def of(
        self, key: dg.AssetKey, step: str, failed_in_dagster: set[str], *, ingest: bool
    ) -> dict[date, Failure]:
        """Failed partitions of ``key``: the latest attempt failed and no materialization since."""
        storage = self.instance.event_log_storage
        planned = (
            storage.get_latest_asset_partition_materialization_attempts_without_materializations(
                key
            )
            if failed_in_dagster
            else {}
        )
        own = _day_failures(self.instance, key) if ingest else {}
        materialized = (
            self.instance.get_latest_storage_id_by_partition(
                key, dg.DagsterEventType.ASSET_MATERIALIZATION
            )
            if own
            else {}
        )
        out: dict[date, Failure] = {}
        for partition in failed_in_dagster | set(own):
            day_failure = own.get(partition)
            if day_failure is not None and day_failure.storage_id < materialized.get(partition, 0):
                day_failure = None  # materialized since (a rerun, a later run's catch-up)
            attempt = planned.get(partition) if partition in failed_in_dagster else None
            if day_failure is not None and (attempt is None or day_failure.storage_id > attempt[1]):
                text = day_failure.text
                out[date.fromisoformat(partition)] = Failure(
                    day_failure.run_id, first_line(text), text
                )
            elif attempt is not None:
                out[date.fromisoformat(partition)] = self._run_failure(attempt[0], step)
            elif partition in failed_in_dagster:
                text = "failed (the run is no longer recorded)"
                out[date.fromisoformat(partition)] = Failure("-", text, text)
        return dict(sorted(out.items()))


def partition_status(
    config: ClvConfig,
    instance: dg.DagsterInstance,
    *,
    asset: str | None = None,
    since: date | None = None,
) -> list[AssetStatus]:
    """Per asset: materialized count and latest, failed (each with its run and own error),
    missing, stale.

    Missing: for ingest assets, landing days never materialized; for snapshot assets, dates where
    another snapshot asset was materialized but this one was not (an incomplete snapshot).
    """
    layout = config.layout
    graph = build_defs(config).resolve_asset_graph()
    every = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    keys = [k for k in every if asset is None or k.to_user_string() == asset]
    if not keys:
        known = ", ".join(k.to_user_string() for k in every)
        raise ClvError(f"no asset {asset!r}; assets: {known}")
    partitions = build_partitions(config)
    partition_keys = partitions.get_partition_keys(dynamic_partitions_store=instance)
    keep = (lambda d: d >= since) if since else (lambda d: True)
    statuses: dict[dg.AssetKey, dict[str, AssetPartitionStatus]] = {
        key: dict(instance.get_status_by_partition(key, partition_keys, partitions) or {})  # type: ignore[arg-type]
        for key in keys
    }

    def partitions_with(key: dg.AssetKey, status: AssetPartitionStatus) -> set[str]:
        return {p for p, s in statuses[key].items() if s == status}

    def days_with(key: dg.AssetKey, status: AssetPartitionStatus) -> list[date]:
        return sorted(date.fromisoformat(p) for p in partitions_with(key, status))

    snapshot_days: set[date] = set()
    for key in keys:
        if graph.get(key).group_name != INGEST:
            snapshot_days |= set(days_with(key, AssetPartitionStatus.MATERIALIZED))
    landing = set(layout.landing_days())
    failures = _Failures(instance)
    rows = []
    for key in keys:
        name = key.to_user_string()
        node = graph.get(key)
        ingest = node.group_name == INGEST
        errors = failures.of(
            key,
            node.assets_def.node_def.name,  # the step: customer_clv for model_params too
            partitions_with(key, AssetPartitionStatus.FAILED),
            ingest=ingest,
        )
        failed = [d for d in errors if keep(d)]
        done = [d for d in days_with(key, AssetPartitionStatus.MATERIALIZED) if d not in errors]
        expected = landing if ingest else snapshot_days
        rows.append(
            AssetStatus(
                asset=name,
                materialized=len(done),
                latest=done[-1] if done else None,
                failed=failed,
                missing=[d for d in sorted(expected - set(done) - set(errors)) if keep(d)],
                stale=[d for d in stale_days(layout, name) if keep(d)],
                errors={d: errors[d] for d in failed},
            )
        )
    return rows


@dataclass(frozen=True)
class FailureGroup:
    """Failed partitions of one run with the same error (its dates and counts aside), merged
    across assets that failed on the same days the same way."""

    assets: tuple[str, ...]
    dates: tuple[date, ...]
    run_id: str
    error: str  # first line, <= ERROR_CHARS; "<date>" for the day; the first day's when counts vary
    text: str  # the first day's full error
    varies: bool = False  # the days' errors differ in their numbers (rows, shares, counts)

    @property
    def first(self) -> date:
        return self.dates[0]

    @property
    def last(self) -> date:
        return self.dates[-1]

    @property
    def days(self) -> str:
        """``2024-01-01..2024-01-05, 2024-02-01`` (at most 4 ranges, then ``+N more``)."""
        spans: list[list[date]] = []
        for day in self.dates:
            if spans and spans[-1][-1] == day - timedelta(days=1):
                spans[-1].append(day)
            else:
                spans.append([day])
        shown = [str(s[0]) if len(s) == 1 else f"{s[0]}..{s[-1]}" for s in spans[:4]]
        more = f" (+{len(spans) - 4} more ranges)" if len(spans) > 4 else ""
        count = f"{len(self.dates)} days: " if len(spans) > 1 else ""
        return count + ", ".join(shown) + more


def group_failures(rows: Iterable[AssetStatus]) -> list[FailureGroup]:
    """One group per asset, run and error, however many days it spans: errors equal once the
    failing day's date is ignored are one group; errors that differ only in their numbers (the
    rows of each day) are one group too, shown with the first day's error. Groups with the same
    days, run and error are merged across assets. Sorted by first day, then asset."""
    merged: dict[tuple[tuple[date, ...], str, str], FailureGroup] = {}
    for row in rows:
        by_kind: dict[tuple[str, str], list[tuple[date, Failure]]] = {}
        for day, failure in sorted(row.errors.items()):
            kind = _NUMBER.sub("#", _generic(failure.text, day))
            by_kind.setdefault((failure.run_id, kind), []).append((day, failure))
        for (run_id, _kind), failures in by_kind.items():
            day, failure = failures[0]
            generic = {_generic(f.error, d) for d, f in failures}
            varies = len(generic) > 1
            own = failure.error if failure.error.startswith(str(day)) else f"{day}: {failure.error}"
            error = first_line(f"e.g. {own}") if varies else generic.pop()
            dates = tuple(d for d, _ in failures)
            key = (dates, run_id, error)
            seen = merged.get(key)
            assets = (row.asset,) if seen is None else (*seen.assets, row.asset)
            merged[key] = FailureGroup(assets, dates, run_id, error, failure.text, varies)
    return sorted(merged.values(), key=lambda g: (g.first, g.last, g.assets))


_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


def _generic(error: str, day: date) -> str:
    """``error`` with ``day`` written ``<date>`` (the same problem on two days reads the same)."""
    return error.replace(day.isoformat(), "<date>")


#: ``clv status`` exit codes, for cron and monitoring (docs/operations.md, "Exit codes").
EXIT_OK = 0  # everything built, nothing failed, missing or stale, no run in progress
EXIT_FAILED = 1  # a failed partition (also a run found dead: it is marked failed first)
EXIT_MISSING = 2  # nothing failed, but a partition is missing or stale, or the latest day unbuilt
EXIT_RUNNING = 3  # nothing failed and a run is in progress (what is missing may be its work)


def exit_code(rows: Iterable[AssetStatus], *, running: bool, unbuilt: Iterable[date]) -> int:
    """The exit code of ``clv status``: failed > in progress > missing/stale > ok."""
    rows = list(rows)
    if any(row.failed for row in rows):
        return EXIT_FAILED
    if running:
        return EXIT_RUNNING
    if any(row.missing or row.stale for row in rows) or list(unbuilt):
        return EXIT_MISSING
    return EXIT_OK
