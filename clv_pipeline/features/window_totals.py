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
import os
import uuid
from datetime import date
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from clv_pipeline.features.periods import PeriodRates
from clv_pipeline.numeric import exact_sum
from clv_pipeline.parquet import fsync_dir, write_parquet
from clv_pipeline.paths import PART_FILE, Layout

FOLDER = "window_totals"
META_KEY = b"clv.window_totals"
VERSION = "1"  # bump when the columns or their rules change: older files are not reused


def window_totals(activity: pl.LazyFrame) -> pl.LazyFrame:
    """One row of totals of :func:`~clv_pipeline.features.periods.window_activity`:
    ``active_customers``, ``previous_active_customers``, ``retained_customers`` (active in both
    windows), ``net_revenue`` (net revenue in this window), ``purchase_amount`` (purchase amounts
    in this window) and ``orders`` (purchase transactions in this window)."""
    return activity.select(
        pl.col("active").sum().cast(pl.Int64).alias("active_customers"),
        pl.col("previously_active").sum().cast(pl.Int64).alias("previous_active_customers"),
        (pl.col("previously_active") & pl.col("active"))
        .sum()
        .cast(pl.Int64)
        .alias("retained_customers"),
        exact_sum(pl.col("window_revenue")).alias("net_revenue"),
        exact_sum(pl.col("window_purchase_amount")).alias("purchase_amount"),
        pl.col("window_orders").sum().cast(pl.Int64).alias("orders"),
    )


def rates_from_totals(totals: pl.DataFrame, *, window_days: int) -> PeriodRates:
    """:class:`~clv_pipeline.features.periods.PeriodRates` of a :func:`window_totals` row (the
    same figures as ``period_rates`` of the activity it summarises)."""
    row = totals.row(0, named=True)
    return PeriodRates(
        window_days=window_days,
        previous_active=int(row["previous_active_customers"] or 0),
        retained=int(row["retained_customers"] or 0),
        active=int(row["active_customers"] or 0),
        net_revenue=float(row["net_revenue"] or 0.0),
    )


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
    target = totals_file(layout, as_of)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        write_parquet(totals, tmp, metadata={META_KEY.decode(): _record(window_days, inputs)})
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def read_totals(
    layout: Layout, as_of: date, *, window_days: int, inputs: dict[str, str]
) -> pl.DataFrame | None:
    """The stored totals of ``as_of`` when they summarise exactly ``inputs`` with this window
    (None otherwise: absent, unreadable, stale or of another version)."""
    path = totals_file(layout, as_of)
    try:
        metadata = pq.read_metadata(path).metadata or {}
        if metadata.get(META_KEY) != _record(window_days, inputs).encode():
            return None
        frame = pl.read_parquet(path)
    except (OSError, ValueError, pl.exceptions.PolarsError):
        return None
    return frame if frame.height == 1 else None
