"""Lifecycle stage from each customer's own purchase rhythm and the model's P(alive).

Rhythm (``expected_interval_days``, first available; ``interval_basis`` names it)

1. ``observed``: the customer's own mean gap ``avg_days_between_purchases`` = recency / frequency
   (repeat customers). It is measured up to the last purchase, so it is not biased by the silence we
   want to judge.
2. ``population``: the median ``avg_days_between_purchases`` of the snapshot's repeat customers
   (one-time buyers have no rhythm of their own).
3. ``default``: ``LifecycleRules.default_interval_days`` (30) when nobody has repeated yet.

The value is clipped below at ``min_interval_days`` (1). The model's conditional purchase rate is
deliberately not used as the rhythm: it is conditioned on the current silence (a long silence lowers
the rate, which would make the silence look normal). The model enters through ``p_alive``.

Stage (first rule that matches), with ``ratio = days_since_last_purchase / expected_interval_days``

1. ``new``: first purchase-day within ``new_days`` (30) of as_of (``T <= new_days``).
2. ``reactivated``: the gap between the last two purchase-days exceeds ``reactivation_multiple`` (3)
   x the rhythm before that gap, and the last purchase is recent
   (``days_since_last_purchase <= active_multiple x`` that rhythm). The rhythm before the gap is
   ``prior_interval_days`` (3+ purchase-days) or the population / default rhythm. Needs
   ``purchase_gaps`` (:func:`find_purchase_gaps`); without it nobody is reactivated.
3. Otherwise the worse of the rhythm level and the P(alive) level:

   ============  ==========================  =========================
   stage         rhythm ratio                p_alive (when not null)
   ============  ==========================  =========================
   active        ratio <= 1.5                p_alive >= 0.6
   cooling       1.5 < ratio <= 2.5          0.3 <= p_alive < 0.6
   at_risk       2.5 < ratio <= 4            0.1 <= p_alive < 0.3
   lost          ratio > 4                   p_alive < 0.1
   ============  ==========================  =========================

Without a model (``p_alive`` null) only the rhythm level applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from clv_pipeline.features.customers import summarise_transactions
from clv_pipeline.schema import PURCHASE_GAPS, conform

_DAY = pl.duration(days=1)
STAGES = ("new", "active", "cooling", "at_risk", "lost", "reactivated")


@dataclass(frozen=True)
class LifecycleRules:
    """Thresholds of the lifecycle stages (time unit days); see the module docstring."""

    new_days: int = 30
    active_multiple: float = 1.5
    cooling_multiple: float = 2.5
    at_risk_multiple: float = 4.0
    reactivation_multiple: float = 3.0
    cooling_p_alive: float = 0.6
    at_risk_p_alive: float = 0.3
    lost_p_alive: float = 0.1
    default_interval_days: float = 30.0
    min_interval_days: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.active_multiple < self.cooling_multiple < self.at_risk_multiple:
            raise ValueError("need 0 < active_multiple < cooling_multiple < at_risk_multiple")
        if not 0 <= self.lost_p_alive <= self.at_risk_p_alive <= self.cooling_p_alive <= 1:
            raise ValueError("need 0 <= lost_p_alive <= at_risk_p_alive <= cooling_p_alive <= 1")
        if self.default_interval_days <= 0 or self.min_interval_days <= 0:
            raise ValueError("interval days must be positive")


def find_purchase_gaps(transactions: pl.LazyFrame, *, as_of: date) -> pl.LazyFrame:
    """Last and previous purchase-day per customer, and the rhythm before the last gap.

    Parameters
    ----------
    transactions
        ``validated_transactions`` (``customer_id, event_date, revenue_kind``); only purchases with
        ``event_date <= as_of`` count, one per calendar day.
    as_of
        Snapshot date.

    Returns
    -------
    pl.LazyFrame
        :data:`~clv_pipeline.schema.PURCHASE_GAPS` columns, one row per customer.
    """
    history = transactions.filter(pl.col("event_date") <= as_of)
    return purchase_gaps_from_state(summarise_transactions(history), as_of=as_of)


def purchase_gaps_from_state(state: pl.LazyFrame, *, as_of: date) -> pl.LazyFrame:
    """:func:`find_purchase_gaps` from the per-customer ``customer_state`` (no history scan)."""
    per_customer = state.filter(pl.col("n_purchase_days") > 0).select(
        "customer_id",
        pl.col("first_day").alias("first_purchase_day"),
        pl.col("last_day").alias("last_purchase_day"),
        pl.col("previous_day").alias("previous_purchase_day"),
        pl.col("n_purchase_days").alias("_n_days"),
    )
    return conform(
        per_customer.with_columns(
            pl.lit(as_of).alias("as_of"),
            ((pl.col("last_purchase_day") - pl.col("previous_purchase_day")) / _DAY)
            .cast(pl.Int64)
            .alias("last_gap_days"),
            pl.when(pl.col("_n_days") >= 3)
            .then(
                ((pl.col("previous_purchase_day") - pl.col("first_purchase_day")) / _DAY)
                / (pl.col("_n_days") - 2)
            )
            .alias("prior_interval_days"),
        ),
        PURCHASE_GAPS,
    ).sort("customer_id")


def population_interval(rules: LifecycleRules) -> pl.Expr:
    """Median observed interval of the snapshot's repeat customers, else the default."""
    return (
        pl.col("avg_days_between_purchases")
        .median()
        .over("as_of")
        .fill_null(rules.default_interval_days)
    )


def estimate_purchase_interval(
    features: pl.LazyFrame, *, rules: LifecycleRules | None = None
) -> pl.LazyFrame:
    """Add ``expected_interval_days`` and ``interval_basis`` (observed, population or default).

    Parameters
    ----------
    features
        ``customer_features`` (needs ``as_of, avg_days_between_purchases``).
    rules
        Lifecycle thresholds (``default_interval_days``, ``min_interval_days``).
    """
    rules = rules or LifecycleRules()
    observed = pl.col("avg_days_between_purchases").fill_nan(None)
    has_population = observed.is_not_null().any().over("as_of")
    return features.with_columns(
        pl.coalesce(observed, population_interval(rules))
        .clip(lower_bound=rules.min_interval_days)
        .alias("expected_interval_days"),
        pl.when(observed.is_not_null())
        .then(pl.lit("observed"))
        .when(has_population)
        .then(pl.lit("population"))
        .otherwise(pl.lit("default"))
        .alias("interval_basis"),
    )


def _level(value: pl.Expr, bounds: tuple[float, float, float], *, higher_is_worse: bool) -> pl.Expr:
    """0 (active) .. 3 (lost) from three increasing thresholds."""
    if higher_is_worse:
        return (
            pl.when(value > bounds[2])
            .then(3)
            .when(value > bounds[1])
            .then(2)
            .when(value > bounds[0])
            .then(1)
            .otherwise(0)
        )
    return (
        pl.when(value.is_null())
        .then(0)
        .when(value < bounds[0])
        .then(3)
        .when(value < bounds[1])
        .then(2)
        .when(value < bounds[2])
        .then(1)
        .otherwise(0)
    )


def assign_lifecycle(
    features: pl.LazyFrame,
    clv: pl.LazyFrame,
    *,
    purchase_gaps: pl.LazyFrame | None = None,
    rules: LifecycleRules | None = None,
) -> pl.LazyFrame:
    """Add the lifecycle columns to customer features.

    Parameters
    ----------
    features
        ``customer_features``.
    clv
        ``customer_clv`` (``customer_id, p_alive``; null p_alive = no model).
    purchase_gaps
        Output of :func:`find_purchase_gaps`; None = no reactivation detection.
    rules
        Thresholds; defaults in :class:`LifecycleRules`.

    Returns
    -------
    pl.LazyFrame
        Features plus ``p_alive, expected_interval_days, interval_basis, rhythm_ratio,
        previous_purchase_day, last_gap_days, lifecycle_stage``.
    """
    rules = rules or LifecycleRules()
    gaps = (
        purchase_gaps.select(
            "customer_id", "previous_purchase_day", "last_gap_days", "prior_interval_days"
        )
        if purchase_gaps is not None
        else pl.LazyFrame(
            schema={
                "customer_id": pl.String,
                "previous_purchase_day": pl.Date,
                "last_gap_days": pl.Int64,
                "prior_interval_days": pl.Float64,
            }
        )
    )
    base = estimate_purchase_interval(
        features.join(clv.select("customer_id", "p_alive"), on="customer_id", how="left").join(
            gaps, on="customer_id", how="left"
        ),
        rules=rules,
    ).with_columns(
        pl.col("p_alive").fill_nan(None),
        (pl.col("days_since_last_purchase") / pl.col("expected_interval_days")).alias(
            "rhythm_ratio"
        ),
    )
    ratio_level = _level(
        pl.col("rhythm_ratio"),
        (rules.active_multiple, rules.cooling_multiple, rules.at_risk_multiple),
        higher_is_worse=True,
    )
    alive_level = _level(
        pl.col("p_alive"),
        (rules.lost_p_alive, rules.at_risk_p_alive, rules.cooling_p_alive),
        higher_is_worse=False,
    )
    level = pl.max_horizontal(ratio_level, alive_level)
    prior = pl.coalesce(pl.col("prior_interval_days"), population_interval(rules)).clip(
        lower_bound=rules.min_interval_days
    )
    reactivated = (
        pl.col("last_gap_days").is_not_null()
        & (pl.col("last_gap_days") > rules.reactivation_multiple * prior)
        & (pl.col("days_since_last_purchase") <= rules.active_multiple * prior)
    )
    stage = (
        pl.when(pl.col("T") <= rules.new_days)
        .then(pl.lit("new"))
        .when(reactivated)
        .then(pl.lit("reactivated"))
        .when(level == 0)
        .then(pl.lit("active"))
        .when(level == 1)
        .then(pl.lit("cooling"))
        .when(level == 2)
        .then(pl.lit("at_risk"))
        .otherwise(pl.lit("lost"))
    )
    return base.with_columns(stage.alias("lifecycle_stage")).drop("prior_interval_days")
