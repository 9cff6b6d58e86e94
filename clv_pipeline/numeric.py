"""Order-independent float aggregation, so a rerun gives byte-identical tables.

Polars aggregates in parallel; a float sum then depends on how rows were split between threads,
and two runs over the same data can differ in the last bits. Summing in fixed point (``Decimal``
with 9 fractional digits, exact integer arithmetic) makes sums and means independent of order.
"""

from __future__ import annotations

import polars as pl

FIXED = pl.Decimal(38, 9)


def exact_sum(expr: pl.Expr) -> pl.Expr:
    """Sum of a finite float expression, identical whatever the row order (nulls skipped)."""
    return expr.cast(FIXED).sum().cast(pl.Float64)


def exact_mean(expr: pl.Expr) -> pl.Expr:
    """Mean of the non-null values, order independent; null when there is none."""
    count = expr.count()
    return pl.when(count > 0).then(exact_sum(expr) / count)
