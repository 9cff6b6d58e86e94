"""Lifecycle stage from each customer's own purchase rhythm and the model's P(alive).

Rhythm (``expected_interval_days``; ``interval_basis`` names how it was obtained)

With ``k = frequency`` (the customer's gaps between purchase-days, purchase-days - 1),
``own = avg_days_between_purchases`` (= recency / k, measured up to the last purchase, so it is not
biased by the silence we want to judge) and ``population`` = the median ``own`` of the snapshot's
repeat customers:

1. ``observed`` (``k >= full_credibility_gaps`` = 3): ``own`` alone.
2. ``shrunk`` (``1 <= k < 3``): the credibility-weighted mean ``w x own + (1 - w) x population``
   with ``w = k / (k + prior_gaps)``, ``prior_gaps`` = 3: one gap weighs 0.25, two gaps 0.4. This
   is the posterior mean of the mean gap for exponential gaps with a Gamma(shape ``prior_gaps +
   1``) prior on the purchase rate centred on the population rhythm (the population counts as 3
   gaps). One or two gaps are too few to be a rhythm: the mean of k exponential gaps has a relative
   standard error of 1/sqrt(k) (100% for one gap).
3. ``population`` (``k = 0``): the population rhythm (one-time buyers have no rhythm of their own).
4. ``default``: ``default_interval_days`` (30) when nobody in the snapshot has repeated yet.

These four are the only values of ``interval_basis``. The value is clipped below at
``min_interval_days`` (1). The model's conditional purchase rate is deliberately not used as the
rhythm: it is conditioned on the current silence (a long silence lowers the rate, which would make
the silence look normal). The model enters through ``p_alive``.

Stage (first rule that matches); ``rhythm_ratio = days_since_last_purchase / expected_interval_days``
is published for reference

1. ``new``: first purchase-day within ``new_days`` (30) of as_of (``T <= new_days``).
2. ``reactivated``: the gap between the last two purchase-days exceeds ``reactivation_multiple`` (3)
   x the rhythm before that gap, and the last purchase is recent
   (``days_since_last_purchase <= active_multiple x`` that rhythm). The rhythm before the gap is
   ``prior_interval_days`` over its ``k' = purchase-days - 2`` gaps, used alone from 3 gaps and
   shrunk as above with fewer (``k' = 0``: the population / default rhythm). Needs
   ``purchase_gaps`` (:func:`find_purchase_gaps`); without it nobody is reactivated.
3. Otherwise the band of the customer's churn probability, the same number ``customer_churn``
   rates (:func:`churn_scores`: ``1 - p_alive`` of the model, or with ``churn_basis = recency``
   the Pareto/NBD P(alive) of a customer with the rhythm above and the population's period
   dropout, :func:`recency_alive`):

   ============  ===================================  =========================================
   stage         churn probability                    risk band (default bands)
   ============  ===================================  =========================================
   active        < active_below (0.5)                 low, medium
   cooling       < cooling_below (0.75)               high
   at_risk       >= 0.75, silent < lost_min_days      critical
   lost          >= 0.75, silent >= lost_min_days     critical
   ============  ===================================  =========================================

   ``lost_min_days`` = 90 (the churn period ``segments.active_window_days``): a customer with a
   purchase in the churn window (``as_of - 90 < event_date <= as_of``) is never lost; every lost
   customer counts as churned in the period KPIs. The pipeline sets ``active_below`` and
   ``cooling_below`` from ``segments.risk_bands`` (the lower bounds of the last two bands), so a
   stage never contradicts the risk band: lost and at_risk are exactly the top band, cooling the
   band below it, active the lower bands (new and reactivated say when, not how risky).

   With the rhythm alone (no model) and a period retention r over W days the probability reaches
   0.5 at about 1.7 rhythms of silence and 0.75 at about 2.5 (r = 0.57, rhythm 30 days).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal, cast

import numpy as np
import polars as pl

from clv_pipeline.features.customers import summarise_transactions
from clv_pipeline.schema import PURCHASE_GAPS, conform

_DAY = pl.duration(days=1)
#: What segments (RFM, lifecycle) and churn read of ``customer_features``.
FEATURE_COLUMNS = (
    "customer_id",
    "as_of",
    "T",
    "frequency",
    "n_purchase_days",
    "days_since_last_purchase",
    "avg_days_between_purchases",
    "total_revenue",
)
#: What the lifecycle stage takes from :func:`find_purchase_gaps`.
GAP_COLUMNS = ("previous_purchase_day", "last_gap_days", "prior_interval_days")
STAGES = ("new", "active", "cooling", "at_risk", "lost", "reactivated")


@dataclass(frozen=True)
class LifecycleRules:
    """Thresholds of the lifecycle stages (time unit days); see the module docstring."""

    new_days: int = 30
    active_multiple: float = 1.5  # reactivated: bought again within 1.5 x the prior rhythm
    reactivation_multiple: float = 3.0
    active_below: float = 0.5  # churn probability below this: active (risk bands low, medium)
    cooling_below: float = 0.75  # below this: cooling (band high); at or above: at_risk / lost
    default_interval_days: float = 30.0
    min_interval_days: float = 1.0
    full_credibility_gaps: int = 3  # own rhythm used alone from this many gaps
    prior_gaps: float = 3.0  # the population rhythm weighs as this many gaps (w = k / (k + 3))
    lost_min_days: int = 90  # lost needs this much silence (pipeline: active_window_days)

    def __post_init__(self) -> None:
        if not self.active_multiple > 0:
            raise ValueError("need active_multiple > 0")
        if not 0 <= self.active_below <= self.cooling_below <= 1:
            raise ValueError("need 0 <= active_below <= cooling_below <= 1")
        if self.default_interval_days <= 0 or self.min_interval_days <= 0:
            raise ValueError("interval days must be positive")
        if self.full_credibility_gaps < 1 or self.prior_gaps <= 0:
            raise ValueError("need full_credibility_gaps >= 1 and prior_gaps > 0")
        if self.lost_min_days < 0:
            raise ValueError("need lost_min_days >= 0")


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


def attach(frame: pl.LazyFrame, other: pl.LazyFrame, columns: Sequence[str]) -> pl.LazyFrame:
    """``frame`` plus ``columns`` of ``other`` by ``customer_id`` (a left join in ``frame``'s row
    order). Columns ``frame`` already has are not joined again: the pipeline puts them side by
    side beforehand when the tables list the same customers in the same order
    (:func:`side_by_side`), which saves a join on 10M string keys per table."""
    missing = [c for c in columns if c not in frame.collect_schema().names()]
    if not missing:
        return frame
    return frame.join(
        other.select("customer_id", *missing), on="customer_id", how="left", maintain_order="left"
    )


def side_by_side(base: pl.DataFrame, *others: pl.DataFrame) -> pl.DataFrame:
    """``base`` with the columns of ``others`` when every one lists exactly ``base``'s
    ``customer_id`` values in the same order (the day's features, customer_clv and state do:
    each is sorted by customer_id over the same customers), else ``base`` unchanged, and the
    stages join as usual (:func:`attach`)."""
    ids = base.get_column("customer_id")
    if not all(o.get_column("customer_id").equals(ids) for o in others):
        return base
    return base.hstack([c for o in others for c in o.drop("customer_id").get_columns()])


@dataclass(frozen=True)
class Rhythm:
    """The snapshot's population rhythm, computed once over every customer when the stages run
    per customer shard (:func:`rhythm_counts`, :func:`merge_rhythm`): the median observed
    interval (None when nobody has one) and whether any customer has a rhythm of their own."""

    median_interval: float | None
    has_own: bool


def _own_interval() -> pl.Expr:
    return pl.col("avg_days_between_purchases").fill_nan(None)


def population_interval(rules: LifecycleRules, rhythm: Rhythm | None = None) -> pl.Expr:
    """Median observed interval of the snapshot's repeat customers, else the default
    (``rhythm``: the snapshot's, when the frame holds one shard of it)."""
    median = _own_interval().median().over("as_of").fill_null(rules.default_interval_days)
    if rhythm is None or rhythm.median_interval is None:
        # without a median anywhere, every shard computes what the whole snapshot does
        return median
    # A column of the value, never a literal: where every row of a shard takes the population
    # rhythm, a literal would make the rhythm a scalar column, which polars divides by as a
    # product with its reciprocal (3 / 5 then differs from the whole snapshot's in the last
    # bit); the whole snapshot always has a customer with their own rhythm, so its column is
    # materialised.
    return pl.int_range(pl.len(), dtype=pl.Int64).cast(pl.Float64) * 0.0 + rhythm.median_interval


def rhythm_counts(features: pl.LazyFrame) -> pl.LazyFrame:
    """What :class:`Rhythm` needs of a shard of ``customer_features``: how many customers hold
    each observed interval (``value, _count``), and in ``_own`` how many of them have a rhythm
    of their own (an interval and at least one gap). Additive over shards."""
    own = _own_interval()
    return (
        features.select(
            own.alias("value"), (own.is_not_null() & (pl.col("frequency") >= 1)).alias("_own")
        )
        .group_by("value")
        .agg(pl.len().cast(pl.Int64).alias("_count"), pl.col("_own").sum().cast(pl.Int64))
    )


def merge_rhythm(parts: list[pl.DataFrame]) -> Rhythm:
    """The :class:`Rhythm` of the union of the shards behind ``parts`` (:func:`rhythm_counts`):
    the median from the merged counts is the median polars computes over every customer (the
    middle value, or polars' median of the two middle ones)."""
    merged = (
        pl.concat(parts, how="vertical")
        .group_by("value")
        .agg(pl.col("_count").sum(), pl.col("_own").sum())
    )
    has_own = bool(merged.get_column("_own").sum() > 0)
    values = merged.drop_nulls("value").sort("value")
    n = int(values.get_column("_count").sum())
    if n == 0:
        return Rhythm(None, has_own)
    ends = values.get_column("_count").cum_sum().to_numpy()
    middle = np.searchsorted(ends, [(n - 1) // 2, n // 2], side="right")
    pair = values.get_column("value").gather(middle)
    median = pair.median() if n % 2 == 0 else pair[0]
    return Rhythm(float(cast(float, median)), has_own)


def credible_interval(
    own: pl.Expr, gaps: pl.Expr, rules: LifecycleRules, rhythm: Rhythm | None = None
) -> pl.Expr:
    """A rhythm from ``own`` mean gap over ``gaps`` gaps, shrunk toward the population's.

    ``own`` alone with ``gaps >= full_credibility_gaps``; ``w x own + (1 - w) x population``
    with ``w = gaps / (gaps + prior_gaps)`` with fewer; the population rhythm when ``own`` is
    null or there are no gaps. Clipped below at ``min_interval_days``.
    """
    population = population_interval(rules, rhythm)
    weight = gaps / (gaps + rules.prior_gaps)
    return (
        pl.when(own.is_null() | (gaps < 1))
        .then(population)
        .when(gaps >= rules.full_credibility_gaps)
        .then(own)
        .otherwise(weight * own + (1 - weight) * population)
        .clip(lower_bound=rules.min_interval_days)
    )


def estimate_purchase_interval(
    features: pl.LazyFrame, *, rules: LifecycleRules | None = None, rhythm: Rhythm | None = None
) -> pl.LazyFrame:
    """Add ``expected_interval_days`` and ``interval_basis`` (observed, shrunk, population or
    default; see the module docstring).

    Parameters
    ----------
    features
        ``customer_features`` (needs ``as_of, frequency, avg_days_between_purchases``).
    rules
        Lifecycle settings (``full_credibility_gaps``, ``prior_gaps``, ``default_interval_days``,
        ``min_interval_days``).
    rhythm
        The snapshot's population rhythm when ``features`` is one customer shard of it.
    """
    rules = rules or LifecycleRules()
    own = _own_interval()
    gaps = pl.col("frequency")
    has_own = own.is_not_null() & (gaps >= 1)
    has_population = has_own.any().over("as_of") if rhythm is None else pl.lit(rhythm.has_own)
    return features.with_columns(
        credible_interval(own, gaps, rules, rhythm).alias("expected_interval_days"),
        pl.when(has_own & (gaps >= rules.full_credibility_gaps))
        .then(pl.lit("observed"))
        .when(has_own)
        .then(pl.lit("shrunk"))
        .when(has_population)
        .then(pl.lit("population"))
        .otherwise(pl.lit("default"))
        .alias("interval_basis"),
    )


@dataclass(frozen=True)
class ChurnBasis:
    """What churn is scored from, and why (shown in the report and the Dagster metadata)."""

    kind: Literal["model", "recency"]
    reason: str


#: Dropout rate as a share of the purchase rate when the period retention is unknown.
FALLBACK_DROPOUT_SHARE = 0.23


def dropout_per_day(period_retention: float | None, window_days: int) -> float | None:
    """The constant dropout hazard that keeps ``period_retention`` of the customers over a
    window: ``-ln(r) / W`` per day (None when r is unknown or 0)."""
    if period_retention is None or not 0 < period_retention <= 1:
        return None
    return -math.log(period_retention) / window_days


def recency_alive(silence: pl.Expr, interval: pl.Expr, dropout: float | None) -> pl.Expr:
    """P(still a customer | no purchase for ``silence`` days) of a customer who buys every
    ``interval`` days on average (Poisson rate λ = 1 / interval) and drops out at the constant
    rate ``dropout`` = δ per day: the Pareto/NBD P(alive) with known rates,

        e / (e + δ / (δ + λ) x (1 - e)),   e = exp(-(δ + λ) x silence).

    With ``dropout`` None (the period retention is unknown: less than two churn periods of
    history, or nobody bought in the previous one) δ = :data:`FALLBACK_DROPOUT_SHARE` x λ: a
    customer drops out after about 4.3 purchases on average, which puts the churn probability
    at 0.5 after 1.5 rhythms of silence and at 0.75 after about 2.3.
    """
    lam = 1.0 / interval
    delta = FALLBACK_DROPOUT_SHARE * lam if dropout is None else pl.lit(dropout)
    rate = lam + delta
    e = (-rate * silence).exp()
    alive = e / (e + (delta / rate) * (1.0 - e))
    # no dropout (period retention 1): alive whatever the silence, also once e underflows to 0
    # (0 / 0 after ~745 rhythms of silence, which would leave the risk band unknown)
    return alive.fill_nan(1.0) if dropout == 0 else alive


def churn_scores(
    features: pl.LazyFrame,
    clv: pl.LazyFrame,
    *,
    basis: ChurnBasis,
    rules: LifecycleRules | None = None,
    period_retention: float | None = None,
    window_days: int = 90,
    rhythm: Rhythm | None = None,
) -> pl.LazyFrame:
    """``features`` plus the rhythm (:func:`estimate_purchase_interval`), ``p_alive`` (from
    ``clv``) and ``churn_probability``: ``1 - p_alive`` with ``basis.kind == "model"`` (the
    rhythm when p_alive is null), ``1 -`` :func:`recency_alive` with ``"recency"`` (dropout
    from the period retention: :func:`dropout_per_day`). The one churn probability behind
    ``customer_churn`` (risk band, value at risk) and the lifecycle stage."""
    with_rhythm = estimate_purchase_interval(
        attach(features, clv, ["p_alive"]), rules=rules, rhythm=rhythm
    ).with_columns(pl.col("p_alive").fill_nan(None))
    recency = 1.0 - recency_alive(
        pl.col("days_since_last_purchase").cast(pl.Float64),
        pl.col("expected_interval_days"),
        dropout_per_day(period_retention, window_days),
    )
    model = 1.0 - pl.col("p_alive")
    prob = recency if basis.kind == "recency" else pl.coalesce(model, recency)
    return with_rhythm.with_columns(prob.clip(0.0, 1.0).alias("churn_probability"))


def assign_lifecycle(
    features: pl.LazyFrame,
    clv: pl.LazyFrame,
    *,
    purchase_gaps: pl.LazyFrame | None = None,
    rules: LifecycleRules | None = None,
    basis: ChurnBasis | None = None,
    period_retention: float | None = None,
    window_days: int = 90,
    rhythm: Rhythm | None = None,
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
    basis, period_retention, window_days
        What churn is scored from (:func:`churn_scores`, as ``customer_churn``).
    rhythm
        The snapshot's population rhythm when ``features`` is one customer shard of it.

    Returns
    -------
    pl.LazyFrame
        Features plus ``p_alive, expected_interval_days, interval_basis, rhythm_ratio,
        previous_purchase_day, last_gap_days, lifecycle_stage``.
    """
    rules = rules or LifecycleRules()
    gaps = (
        purchase_gaps
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
    basis = basis or ChurnBasis("model", "")
    scored = churn_scores(
        attach(features, gaps, GAP_COLUMNS),
        clv,
        basis=basis,
        rules=rules,
        period_retention=period_retention,
        window_days=window_days,
        rhythm=rhythm,
    )
    base = scored.with_columns(
        (pl.col("days_since_last_purchase") / pl.col("expected_interval_days")).alias(
            "rhythm_ratio"
        ),
    )
    prob = pl.col("churn_probability")
    silence = pl.col("days_since_last_purchase")
    level = (
        pl.when(prob.is_null())  # no model and no rhythm: cannot judge
        .then(0)
        .when(prob < rules.active_below)
        .then(0)
        .when(prob < rules.cooling_below)
        .then(1)
        .when(silence < rules.lost_min_days)
        .then(2)
        .otherwise(3)
    )
    prior = credible_interval(
        pl.col("prior_interval_days").fill_nan(None), pl.col("n_purchase_days") - 2, rules, rhythm
    )
    reactivated = (
        pl.col("last_gap_days").is_not_null()
        & (pl.col("last_gap_days") > rules.reactivation_multiple * prior)
        & (silence <= rules.active_multiple * prior)
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
    return base.with_columns(stage.alias("lifecycle_stage")).drop(
        "prior_interval_days", "churn_probability"
    )
