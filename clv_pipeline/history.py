"""Is the validated history complete? Which days to ingest, which partitions are stale.

Every launch path (``clv run``, the daily schedule, a UI materialization, a backfill) asks the
same questions here, so none can publish a snapshot whose history misses a landed day:

* :func:`days_to_ingest_before` - landing days before ``D`` never ingested or with files newer
  than their ingest (a skipped day, a late file), plus the look-back window of every source;
* :func:`history_gaps` - the landing days up to ``D`` still missing or stale in
  ``validated_transactions`` (a snapshot of ``D`` must not publish while there is one);
* :func:`stale_days` - published partitions whose inputs changed after they were published:
  ingest days with a newer landing file, snapshots with a newer validated day on or before
  ``as_of`` (e.g. a late re-delivery of an old day).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from clv_pipeline.config import ClvConfig
from clv_pipeline.paths import Layout
from clv_pipeline.schema import TABLES

INGEST_TABLES = ("raw_transactions", "validated_transactions")


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _ingest_state(layout: Layout, table: str, day: date) -> str | None:
    """ "missing", "outdated" (older than its newest landing file) or None (up to date)."""
    published = _mtime(layout.partition_file(table, "date", day))
    if published is None:
        return "missing"
    return "outdated" if layout.landing_mtime(day) > published else None


def _ingest_outdated(layout: Layout, table: str, day: date, *, missing: bool) -> bool:
    """``table``'s day is older than its newest landing file (or, with ``missing``, absent)."""
    state = _ingest_state(layout, table, day)
    return state == "outdated" or (missing and state == "missing")


def ingest_days_to_run(layout: Layout, *, before: date) -> list[date]:
    """Landing days before ``before`` never ingested, or with files newer than their ingest."""
    return [
        day
        for day in layout.landing_days()
        if day < before
        and any(_ingest_outdated(layout, t, day, missing=True) for t in INGEST_TABLES)
    ]


def days_to_ingest_before(config: ClvConfig, day: date) -> list[date]:
    """Days from ``start_date`` up to ``day`` (exclusive) to (re)ingest before ``day`` is built.

    Landing folder: days never ingested or with files newer than their ingest. Every source: the
    ``lookback_days`` days before ``day`` are pulled again (late rows land in their day,
    deduplicated on ``transaction_id``).
    """
    source = config.source
    days = set(ingest_days_to_run(config.layout, before=day)) if source.kind == "landing" else set()
    days |= {day - timedelta(days=i) for i in range(1, source.lookback_days + 1)}
    return sorted(d for d in days if config.start_date <= d < day)


def ingest_plan(config: ClvConfig, days: list[date]) -> list[date]:
    """The days an ingest step for ``days`` processes: those plus every day to catch up first."""
    if not days:
        return []
    return sorted(set(days) | set(days_to_ingest_before(config, max(days))))


@dataclass(frozen=True)
class Gap:
    day: date
    why: str  # never validated | failed validation | landing files newer than the validated day


def history_gaps(config: ClvConfig, as_of: date) -> list[Gap]:
    """Landing days ``start_date..as_of`` whose validated partition is missing or outdated.

    Only the landing folder can be listed; for remote sources the look-back window re-pulls late
    rows instead.
    """
    if config.source.kind != "landing":
        return []
    layout = config.layout
    gaps = []
    for day in layout.landing_days():
        if day < config.start_date or day > as_of:
            continue
        state = _ingest_state(layout, "validated_transactions", day)
        if state == "outdated":
            gaps.append(Gap(day, "landing files newer than the validated day"))
        elif state == "missing":
            rejected = layout.quarantine_file("transactions", day)
            why = (
                f"failed validation, rejected rows in {rejected}"
                if rejected.exists()
                else "never validated"
            )
            gaps.append(Gap(day, why))
    return gaps


def describe_gaps(config: ClvConfig, as_of: date, gaps: list[Gap]) -> str:
    """The blocking message: which days, why, and the command that completes the history."""
    shown = ", ".join(f"{g.day} ({g.why})" for g in gaps[:10])
    more = f" and {len(gaps) - 10} more" if len(gaps) > 10 else ""
    return (
        f"history of {as_of} is incomplete: {len(gaps)} landed day(s) not validated: {shown}{more}. "
        f"Nothing of {as_of} was published. Fix: `clv run --date {as_of} --home {config.home}` "
        "(ingests them first; a day that fails validation says why, see `clv status`)"
    )


def stale_days(layout: Layout, asset: str) -> list[date]:
    """Published partitions of ``asset`` whose inputs changed after they were published."""
    table = TABLES.get(asset)
    if table is None:
        return []
    if table.partition_key == "date":
        return [
            day
            for day in layout.landing_days()
            if _ingest_outdated(layout, asset, day, missing=False)
        ]
    validated = sorted(
        (d, _mtime(layout.partition_file("validated_transactions", "date", d)) or 0.0)
        for d in layout.published_days("validated_transactions", "date")
    )
    out = []
    newest, i = 0.0, 0
    for day in layout.published_days(asset, "as_of"):
        while i < len(validated) and validated[i][0] <= day:
            newest = max(newest, validated[i][1])
            i += 1
        published = _mtime(layout.partition_file(asset, "as_of", day)) or 0.0
        if newest > published:
            out.append(day)
    return out
