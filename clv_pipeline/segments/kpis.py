"""The ``kpis`` table: one row per snapshot, with the change versus the previous snapshot.

Window ``W = active_window_days`` (default 90): a purchase-day is *in the window* when it is at most
``W`` days before as_of (``days_since_last_purchase <= W``, ``event_date >= as_of - W``).

* ``customers``: customers with a purchase on or before as_of (customer_features rows).
* ``active_customers``: customers with a purchase-day in the window. ``alive_customers`` is the
  model's view: customers with ``p_alive >= alive_threshold`` (0.5), null without a model.
* ``retention_rate``: of the customers acquired before the window (``T > W``), the share with a
  purchase-day in the window; ``churn_rate`` = 1 - retention_rate. Null when nobody was acquired
  before the window.
* ``arpu`` = net revenue in the window / active customers; ``aov`` = purchase amounts in the
  window / purchase transactions in the window; ``purchase_frequency`` = purchase transactions in
  the window / active customers (all per window of W days).
* Seed formulae: ``lifespan_days = W / churn_rate``; ``formula_clv_aov = aov x purchase_frequency x
  (1 / churn_rate)`` (lifespan in windows, no margin) and ``formula_clv_arpu = arpu x gross_margin /
  churn_rate``; next to them the means of customer_clv's ``formula_clv``, ``historic_clv`` and
  ``predicted_clv`` and the median ``predicted_clv``.
* ``top_tier_revenue_share``: net revenue to date of customers whose value_tier is in ``top_tiers``
  (default platinum) / net revenue to date of all customers.
* For every KPI ``k``: ``k_change = k - previous k`` and ``k_change_pct = 100 x k_change /
  |previous k|`` (null without a previous row or when the previous value is 0 or null).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import polars as pl

from clv_pipeline.numeric import exact_mean, exact_sum
from clv_pipeline.schema import KPI_NAMES, KPIS, conform, empty_frame


def _ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    return pl.when(den > 0).then(num / den)


def build_kpis(
    features: pl.LazyFrame,
    clv: pl.LazyFrame,
    segments: pl.LazyFrame,
    transactions: pl.LazyFrame,
    *,
    as_of: date,
    previous: pl.LazyFrame | None = None,
    active_window_days: int = 90,
    gross_margin: float = 1.0,
    alive_threshold: float = 0.5,
    top_tiers: Sequence[str] = ("platinum",),
) -> pl.LazyFrame:
    """One KPI row for ``as_of`` with changes versus ``previous``.

    Parameters
    ----------
    features
        ``customer_features`` at as_of.
    clv
        ``customer_clv`` at as_of (predictive columns may be null).
    segments
        ``customer_segments`` at as_of (``value_tier, total_revenue``).
    transactions
        ``validated_transactions``; only ``as_of - W <= event_date <= as_of`` is used.
    as_of
        Snapshot date.
    previous
        The previous snapshot's ``kpis`` row(s) (the latest as_of before this one is used), or None.
    active_window_days
        The window W in days.
    gross_margin
        Margin for ``formula_clv_arpu``.
    alive_threshold
        P(alive) at or above which a customer counts in ``alive_customers``.
    top_tiers
        Value tiers whose revenue share is reported.

    Returns
    -------
    pl.LazyFrame
        One row with :data:`~clv_pipeline.schema.KPIS` columns.
    """
    if active_window_days < 1:
        raise ValueError("active_window_days must be >= 1")
    w = active_window_days
    recent = pl.col("days_since_last_purchase") <= w
    before = pl.col("T") > w
    feats = features.select(
        pl.len().cast(pl.Int64).alias("customers"),
        recent.sum().cast(pl.Int64).alias("active_customers"),
        before.sum().alias("_base"),
        (before & recent).sum().alias("_retained"),
    )
    p_alive = pl.col("p_alive").fill_nan(None)
    predicted = pl.col("predicted_clv").fill_nan(None)
    model = clv.select(
        pl.when(p_alive.is_not_null().any())
        .then((p_alive >= alive_threshold).sum())
        .cast(pl.Int64)
        .alias("alive_customers"),
        exact_mean(pl.col("formula_clv")).alias("avg_formula_clv"),
        exact_mean(pl.col("historic_clv")).alias("avg_historic_clv"),
        exact_mean(predicted).alias("avg_predicted_clv"),
        predicted.median().alias("median_predicted_clv"),
    )
    kind = pl.col("revenue_kind")
    window = transactions.filter(
        pl.col("event_date").is_between(as_of - timedelta(days=w), as_of)
    ).select(
        exact_sum(pl.col("amount").filter(kind.is_in(["purchase", "refund"]))).alias("_net"),
        exact_sum(pl.col("amount").filter(kind == "purchase")).alias("_gross"),
        (kind == "purchase").sum().alias("_orders"),
    )
    top = pl.col("value_tier").is_in(list(top_tiers))
    share = segments.select(
        pl.when(exact_sum(pl.col("total_revenue")) != 0)
        .then(exact_sum(pl.col("total_revenue").filter(top)) / exact_sum(pl.col("total_revenue")))
        .alias("top_tier_revenue_share")
    )
    churn = pl.col("churn_rate")
    current = (
        pl.concat([feats, model, window, share], how="horizontal")
        .with_columns(
            pl.lit(as_of).alias("as_of"),
            pl.lit(w, pl.Int64).alias("active_window_days"),
            _ratio(pl.col("_retained"), pl.col("_base")).alias("retention_rate"),
            _ratio(pl.col("_net"), pl.col("active_customers")).alias("arpu"),
            _ratio(pl.col("_gross"), pl.col("_orders")).alias("aov"),
            _ratio(pl.col("_orders"), pl.col("active_customers")).alias("purchase_frequency"),
        )
        .with_columns((1.0 - pl.col("retention_rate")).alias("churn_rate"))
        .with_columns(
            _ratio(pl.lit(float(w)), churn).alias("lifespan_days"),
            _ratio(pl.col("aov") * pl.col("purchase_frequency"), churn).alias("formula_clv_aov"),
            _ratio(pl.col("arpu") * gross_margin, churn).alias("formula_clv_arpu"),
        )
    )
    prev = (
        (previous if previous is not None else empty_frame(KPIS))
        .filter(pl.col("as_of") < as_of)
        .sort("as_of")
        .tail(1)
        .select(
            pl.col("as_of").alias("previous_as_of"),
            *[pl.col(k).cast(pl.Float64).alias(f"_prev_{k}") for k in KPI_NAMES],
        )
    )
    changes = []
    for k in KPI_NAMES:
        delta = pl.col(k).cast(pl.Float64) - pl.col(f"_prev_{k}")
        changes.append(delta.alias(f"{k}_change"))
        changes.append(
            pl.when(pl.col(f"_prev_{k}") != 0)
            .then(100.0 * delta / pl.col(f"_prev_{k}").abs())
            .alias(f"{k}_change_pct")
        )
    out = (
        current.with_columns(pl.lit(1).alias("_k"))
        .join(prev.with_columns(pl.lit(1).alias("_k")), on="_k", how="left")
        .with_columns(changes)
    )
    return conform(out, KPIS)
