"""Segment migration between the previous published ``customer_segments`` snapshot and this one.

For each dimension (``rfm_segment``, ``value_tier``, ``lifecycle_stage``) the customers of both
snapshots are matched on customer_id (full outer join); a customer missing on one side has the value
``'none'`` there (with no previous snapshot every customer comes from ``'none'``). ``customers``
counts customers per (from, to) pair and ``value`` sums their ``segment_value`` (predicted_clv, or
historic_clv when null) of this snapshot, or of the previous one for customers absent now. Per
dimension, the customer counts sum to the size of the union of both snapshots.

The previous snapshot is the latest complete one before as_of (``previous_as_of``), not necessarily
the day before: ``days_since_previous = as_of - previous_as_of`` says over how many days the moves
happened (null, and every customer from ``'none'``, without a previous snapshot).
"""

from __future__ import annotations

from datetime import date

import polars as pl

from clv_pipeline.numeric import exact_sum
from clv_pipeline.schema import (
    CUSTOMER_SEGMENTS,
    MIGRATION_DIMENSIONS,
    SEGMENT_MIGRATION,
    conform,
    empty_frame,
)

NONE = "none"


def build_segment_migration(
    previous: pl.LazyFrame | None, current: pl.LazyFrame, *, as_of: date
) -> pl.LazyFrame:
    """Counts and value moving between segments, tiers and lifecycle stages (long format).

    Parameters
    ----------
    previous
        The previous published ``customer_segments`` snapshot, or None / empty when there is none.
    current
        This snapshot's ``customer_segments``.
    as_of
        This snapshot's date (written to every row, also when ``current`` is empty).

    Returns
    -------
    pl.LazyFrame
        :data:`~clv_pipeline.schema.SEGMENT_MIGRATION` columns sorted by dimension,
        from_value, to_value.
    """
    cols = ["customer_id", "as_of", "segment_value", *MIGRATION_DIMENSIONS]
    prev = (previous if previous is not None else empty_frame(CUSTOMER_SEGMENTS)).select(cols)
    cur = current.select(cols)
    previous_as_of = prev.select(pl.col("as_of").max().alias("previous_as_of")).with_columns(
        (pl.lit(as_of) - pl.col("previous_as_of")).dt.total_days().alias("days_since_previous")
    )
    pairs = prev.join(cur, on="customer_id", how="full", coalesce=True, suffix="_to")
    value = pl.coalesce("segment_value_to", "segment_value").fill_nan(None).fill_null(0.0)
    parts = [
        pairs.select(
            pl.lit(dim).alias("dimension"),
            pl.col(dim).fill_null(NONE).alias("from_value"),
            pl.col(f"{dim}_to").fill_null(NONE).alias("to_value"),
            value.alias("value"),
        )
        for dim in MIGRATION_DIMENSIONS
    ]
    out = (
        pl.concat(parts)
        .group_by("dimension", "from_value", "to_value")
        .agg(pl.len().cast(pl.Int64).alias("customers"), exact_sum(pl.col("value")).alias("value"))
        .join(previous_as_of, how="cross")
        .with_columns(pl.lit(as_of).alias("as_of"))
    )
    return conform(out, SEGMENT_MIGRATION).sort("dimension", "from_value", "to_value")
