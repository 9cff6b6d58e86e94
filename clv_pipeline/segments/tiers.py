"""Value tiers by CLV rank.

``segment_value`` = ``predicted_clv``, or ``historic_clv`` when the model produced no prediction
(``value_basis`` says which). Customers are ranked by it descending with ``rank("min")`` (1 = best;
ties share the best rank). With ``share_above = (value_rank - 1) / n`` (the share of customers with a
strictly higher value) a customer gets the first tier whose cumulative upper bound exceeds it::

    platinum  share_above < 0.01   (top 1%)
    gold      share_above < 0.05   (1-5%)
    silver    share_above < 0.10   (5-10%)
    bronze    share_above < 0.25   (10-25%)
    medium    share_above < 0.50   (25-50%)
    low       the rest

With distinct values the top ``k`` tiers hold exactly ``ceil(bound x n)`` customers, so the best
customer is always platinum; tied customers are never split and all take the higher tier.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from clv_pipeline.schema import CUSTOMER_SEGMENTS, conform, sort_rows
from clv_pipeline.segments.lifecycle import ChurnBasis, LifecycleRules, assign_lifecycle
from clv_pipeline.segments.rfm import score_rfm

if TYPE_CHECKING:
    from clv_pipeline.segments.population import Population

#: What the value tiers read of ``customer_clv``.
VALUE_COLUMNS = ("predicted_clv", "historic_clv")

DEFAULT_TIERS: tuple[tuple[str, float], ...] = (
    ("platinum", 0.01),
    ("gold", 0.05),
    ("silver", 0.10),
    ("bronze", 0.25),
    ("medium", 0.50),
    ("low", 1.0),
)


def check_bounds(bounds: Sequence[tuple[str, float]], *, what: str) -> None:
    """Raise ValueError unless the (label, upper bound) pairs are strictly increasing and end at 1."""
    if not bounds:
        raise ValueError(f"{what}: at least one (label, bound) pair is required")
    values = [b for _, b in bounds]
    if any(b2 <= b1 for b1, b2 in zip(values, values[1:], strict=False)) or values[0] <= 0:
        raise ValueError(f"{what}: bounds must be positive and strictly increasing, got {values}")
    if values[-1] != 1.0:
        raise ValueError(f"{what}: the last bound must be 1.0, got {values[-1]}")
    if len({label for label, _ in bounds}) != len(bounds):
        raise ValueError(f"{what}: labels must be unique")


def segment_value() -> pl.Expr:
    """``predicted_clv``, or ``historic_clv`` without a prediction: what the tiers rank."""
    return pl.coalesce(pl.col("predicted_clv").fill_nan(None), pl.col("historic_clv"))


def rank_values(values: pl.Expr) -> pl.Expr:
    """``value_rank``: 1 = the highest; ties share the best rank; null stays null."""
    return values.rank("min", descending=True).cast(pl.Int64)


def assign_value_tiers(
    clv: pl.LazyFrame,
    *,
    tiers: Sequence[tuple[str, float]] = DEFAULT_TIERS,
    ranked: int | None = None,
) -> pl.LazyFrame:
    """Add ``segment_value, value_basis, value_rank, value_tier`` to ``customer_clv`` rows.

    Parameters
    ----------
    clv
        Needs ``as_of, predicted_clv, historic_clv``; ranks are computed within each ``as_of``.
    tiers
        ``(label, cumulative upper share)`` pairs from the best tier down; the last bound is 1.0.
    ranked
        When ``clv`` is one customer shard of the snapshot: it already has ``value_rank``
        (:func:`rank_values` over the whole snapshot), and the snapshot has ``ranked`` customers.

    Returns
    -------
    pl.LazyFrame
        The input plus ``segment_value`` (float), ``value_basis`` ('predicted_clv' or
        'historic_clv'), ``value_rank`` (1 = highest) and ``value_tier``.
    """
    check_bounds(tiers, what="tiers")
    predicted = pl.col("predicted_clv").fill_nan(None)
    valued = clv.with_columns(
        segment_value().alias("segment_value"),
        pl.when(predicted.is_not_null())
        .then(pl.lit("predicted_clv"))
        .otherwise(pl.lit("historic_clv"))
        .alias("value_basis"),
    )
    if ranked is None:
        valued = valued.with_columns(
            rank_values(pl.col("segment_value")).over("as_of").alias("value_rank")
        )
        customers = pl.len().over("as_of")
    else:
        customers = pl.lit(ranked, pl.UInt32)
    share_above = (pl.col("value_rank") - 1) / customers
    return valued.with_columns(label_by_bounds(share_above, tiers).alias("value_tier"))


def label_by_bounds(value: pl.Expr, bounds: Sequence[tuple[str, float]]) -> pl.Expr:
    """First label whose upper bound exceeds ``value`` (the last label otherwise; null stays null)."""
    label: Any = pl.lit(bounds[-1][0])
    for name, bound in reversed(bounds[:-1]):
        label = pl.when(value < bound).then(pl.lit(name)).otherwise(label)
    return pl.when(value.is_null()).then(pl.lit(None, pl.String)).otherwise(label)


def build_customer_segments(
    features: pl.LazyFrame,
    clv: pl.LazyFrame,
    *,
    purchase_gaps: pl.LazyFrame | None = None,
    tiers: Sequence[tuple[str, float]] = DEFAULT_TIERS,
    rules: LifecycleRules | None = None,
    basis: ChurnBasis | None = None,
    period_retention: float | None = None,
    window_days: int = 90,
    population: Population | None = None,
) -> pl.LazyFrame:
    """The ``customer_segments`` table: RFM, value tier, lifecycle stage and micro-segment.

    Parameters
    ----------
    features
        ``customer_features`` of one (or more) snapshot(s).
    clv
        ``customer_clv`` of the same snapshot(s); predictive columns may be null.
    purchase_gaps
        :func:`~clv_pipeline.segments.lifecycle.find_purchase_gaps` output, for ``reactivated``.
    tiers
        Value-tier bounds, see :data:`DEFAULT_TIERS`.
    rules
        Lifecycle thresholds, see :class:`~clv_pipeline.segments.lifecycle.LifecycleRules`.
    basis, period_retention, window_days
        What churn is scored from, as for ``customer_churn`` (the stage is banded on it).
    population
        When ``features`` and ``clv`` are one customer shard of the snapshot: the snapshot's
        :class:`Population` (``clv`` then carries ``value_rank`` of the whole snapshot).

    Returns
    -------
    pl.LazyFrame
        :data:`~clv_pipeline.schema.CUSTOMER_SEGMENTS` columns, sorted by customer_id;
        computed when called (the sort is skipped when the rows come sorted).
    """
    staged = assign_lifecycle(
        score_rfm(features, levels=None if population is None else population.levels),
        clv,
        purchase_gaps=purchase_gaps,
        rules=rules,
        basis=basis,
        period_retention=period_retention,
        window_days=window_days,
        rhythm=None if population is None else population.rhythm,
    )
    ranked = None if population is None else population.customers
    rank = [] if population is None else ["value_rank"]
    if set(VALUE_COLUMNS) | set(rank) <= set(staged.collect_schema().names()):
        # put side by side with features (side_by_side): the same customers, ranked in place
        out = assign_value_tiers(staged, tiers=tiers, ranked=ranked)
    else:
        valued = assign_value_tiers(
            clv.select("customer_id", "as_of", *VALUE_COLUMNS, *rank), tiers=tiers, ranked=ranked
        ).drop("as_of")
        out = staged.join(valued, on="customer_id", how="left", maintain_order="left")
    out = out.with_columns(
        pl.concat_str(pl.col("value_tier"), pl.lit("__"), pl.col("lifecycle_stage")).alias(
            "micro_segment"
        )
    )
    return sort_rows(conform(out, CUSTOMER_SEGMENTS).collect(), "as_of", "customer_id").lazy()
