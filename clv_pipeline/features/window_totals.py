"""The churn-period totals of a snapshot, computed once per run and read back by later steps.

``customer_clv`` scans the validated history for :func:`~clv_pipeline.features.periods.window_activity`
(who bought in this churn window and the previous one). ``customer_segments``, ``customer_churn``
(the period retention of the recency basis) and ``kpis`` need only its population totals, so
``customer_clv`` stores them in one internal row,
``warehouse/.work/window_totals/as_of=D/part-0.parquet`` (never published, invisible to readers),
and those steps read it back instead of scanning the history again.

The file's footer records what the totals summarise: the window length and the content digest of
every validated day up to ``as_of`` (:func:`~clv_pipeline.features.state.fingerprints`; fully
refunded purchases can be cancelled by a refund on any later day). A file whose record does not
match the warehouse (a validated day rewritten since, another ``active_window_days``, a file of an
older version) is not used: the totals are computed from the history again, exactly as before.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl

from clv_pipeline.parquet import read_footer, write_parquet_atomic
from clv_pipeline.paths import PART_FILE, Layout

FOLDER = "window_totals"
META_KEY = b"clv.window_totals"
VERSION = "1"  # bump when the columns or their rules change: older files are not reused


def totals_file(layout: Layout, as_of: date) -> Path:
    return layout.work / FOLDER / f"as_of={as_of.isoformat()}" / PART_FILE


def _record(window_days: int, inputs: dict[str, str]) -> str:
    return json.dumps(
        {"version": VERSION, "window_days": window_days, "inputs": inputs}, sort_keys=True
    )


def write_totals(
    layout: Layout, as_of: date, totals: pl.DataFrame, *, window_days: int, inputs: dict[str, str]
) -> Path:
    """Store ``totals`` of ``as_of`` atomically with what they summarise in the footer."""
    metadata = {META_KEY.decode(): _record(window_days, inputs)}
    return write_parquet_atomic(totals, totals_file(layout, as_of), metadata=metadata)


def read_totals(
    layout: Layout, as_of: date, *, window_days: int, inputs: dict[str, str]
) -> pl.DataFrame | None:
    """The stored totals of ``as_of`` when they summarise exactly ``inputs`` with this window
    (None otherwise: absent, unreadable, stale or of another version)."""
    path = totals_file(layout, as_of)
    try:
        metadata = read_footer(path).metadata or {}
        if metadata.get(META_KEY) != _record(window_days, inputs).encode():
            return None
        frame = pl.read_parquet(path)
    except (OSError, ValueError, pl.exceptions.PolarsError):
        return None
    return frame if frame.height == 1 else None
