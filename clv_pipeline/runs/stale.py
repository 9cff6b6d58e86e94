"""Stale detection: partitions whose inputs changed after they were published.

Ingest days (``raw_transactions``, ``validated_transactions``): a landing file newer than the
published day. Snapshot tables: a validated day on or before ``as_of`` newer than the snapshot
(e.g. a late re-delivery of an old day).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from clv_pipeline.paths import Layout
from clv_pipeline.schema import TABLES

INGEST_TABLES = ("raw_transactions", "validated_transactions")


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _ingest_outdated(layout: Layout, table: str, day: date, *, missing: bool) -> bool:
    """``table``'s day is older than its newest landing file (or, with ``missing``, absent)."""
    published = _mtime(layout.partition_file(table, "date", day))
    if published is None:
        return missing
    return layout.landing_mtime(day) > published


def ingest_days_to_run(layout: Layout, *, before: date) -> list[date]:
    """Landing days before ``before`` never ingested, or with files newer than their ingest."""
    return [
        day
        for day in layout.landing_days()
        if day < before
        and any(_ingest_outdated(layout, t, day, missing=True) for t in INGEST_TABLES)
    ]


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
