"""The ``kpis`` table: one row per snapshot, with the change versus the previous snapshot.

Definitions (``docs/metrics.md``; :mod:`clv_pipeline.features.periods`): the churn period is a
window of exactly ``W = active_window_days`` days (default 90), ``as_of - W < event_date <=
as_of``; the previous window is the W days before it. Active = a purchase in the window.

* ``customers``: customers with a purchase on or before as_of (customer_features rows).
* ``active_customers``: customers with a purchase in the window. ``alive_customers`` is the
  forward-looking view: customers whose churn probability (``customer_churn``, on its basis:
  1 - P(alive) of the model, or recency and rhythm when the model cannot rank churn) is below
  0.5, i.e. the low and medium risk bands (the lifecycle's active, new and reactivated at low
  risk); without the churn table ``p_alive >= 0.5``. Null without any probability.
* ``retention_rate`` (period retention): of the ``previous_active_customers`` (a purchase in the
  previous window), the share ``retained_customers`` who bought in this window too;
  ``churn_rate`` = 1 - retention_rate. Null when nobody bought in the previous window.
* ``arpu`` = net revenue in the window / active customers; ``aov`` = purchase amounts in the
  window / purchase transactions in the window; ``purchase_frequency`` = purchase transactions in
  the window / active customers (all per window of W days).
* Seed formulae: ``lifespan_days = W / churn_rate``; ``formula_clv_aov = aov x purchase_frequency x
  (1 / churn_rate)`` (lifespan in windows, no margin) and ``formula_clv_arpu = arpu x gross_margin /
  churn_rate``; next to them the means of customer_clv's ``formula_clv`` (the same retention over
  the model's horizon, discounted), ``historic_clv`` and ``predicted_clv`` and the median
  ``predicted_clv``.
* Inputs and units at the end of the row: ``previous_active_customers``, ``retained_customers``,
  ``net_revenue_window``, and the CLV figures' ``horizon_days``, ``discount_rate``,
  ``discount_period``, ``gross_margin``, ``currency`` (from customer_clv).
* ``top_tier_revenue_share``: net revenue to date of customers whose value_tier is in ``top_tiers``
  (default platinum) / net revenue to date of all customers.
* For every KPI ``k``: ``k_change = k - previous k`` and ``k_change_pct = 100 x k_change /
  |previous k|`` (null without a previous row or when the previous value is 0 or null).
  "Previous" is the latest complete snapshot before as_of (``previous_as_of``), not necessarily
  the day before: ``days_since_previous = as_of - previous_as_of`` says over how many days the
  changes run (null without a previous snapshot).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import polars as pl

from clv_pipeline.features.periods import window_activity, window_totals
from clv_pipeline.numeric import exact_mean, exact_sum
from clv_pipeline.schema import KPI_NAMES, KPIS, conform, empty_frame


def _ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    return pl.when(den > 0).then(num / den)


def build_kpis(
    features: pl.LazyFrame,
    clv: pl.LazyFrame,
    segments: pl.LazyFrame,
    transactions: pl.LazyFrame | None,
    *,
    as_of: date,
    previous: pl.LazyFrame | None = None,
    active_window_days: int = 90,
    gross_margin: float = 1.0,
    alive_threshold: float = 0.5,
    top_tiers: Sequence[str] = ("platinum",),
    churn_table: pl.LazyFrame | None = None,
    totals: pl.LazyFrame | None = None,
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
        ``validated_transactions``; only ``as_of - 2W < event_date <= as_of`` is used. May be
        None when ``totals`` are given.
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
    churn_table
        ``customer_churn`` of as_of: ``alive_customers`` then counts churn_probability <
        1 - alive_threshold on its basis (model or recency), the number the risk bands and
        lifecycle stages use; None: p_alive >= alive_threshold of customer_clv.
    totals
        :func:`~clv_pipeline.features.window_totals.window_totals` of the window activity of
        ``transactions`` at ``as_of`` when already computed (the history is then not read).

    Returns
    -------
    pl.LazyFrame
        One row with :data:`~clv_pipeline.schema.KPIS` columns.
    """
    if active_window_days < 1:
        raise ValueError("active_window_days must be >= 1")
    w = active_window_days
    feats = features.select(pl.len().cast(pl.Int64).alias("customers"))
    if totals is None:
        if transactions is None:
            raise ValueError("build_kpis needs transactions or totals")
        totals = window_totals(window_activity(transactions, as_of=as_of, window_days=w))
    activity = totals.select(
        "active_customers",
        "previous_active_customers",
        "retained_customers",
        pl.col("net_revenue").alias("_net"),
        pl.col("purchase_amount").alias("_gross"),
        pl.col("orders").alias("_orders"),
    )
    have = clv.collect_schema()
    units = clv.select(  # a customer_clv written before the unit columns: nulls
        pl.col(c).first() if c in have else pl.lit(None, KPIS.schema[c]).alias(c)
        for c in ("horizon_days", "discount_rate", "discount_period", "gross_margin", "currency")
    )
    p_alive = pl.col("p_alive").fill_nan(None)
    predicted = pl.col("predicted_clv").fill_nan(None)
    if churn_table is not None:
        risk = pl.col("churn_probability").fill_nan(None)
        alive = churn_table.select(
            pl.when(risk.is_not_null().any())
            .then((risk < 1.0 - alive_threshold).sum())
            .cast(pl.Int64)
            .alias("alive_customers")
        )
    else:
        alive = clv.select(
            pl.when(p_alive.is_not_null().any())
            .then((p_alive >= alive_threshold).sum())
            .cast(pl.Int64)
            .alias("alive_customers")
        )
    model = clv.select(
        exact_mean(pl.col("formula_clv")).alias("avg_formula_clv"),
        exact_mean(pl.col("historic_clv")).alias("avg_historic_clv"),
        exact_mean(predicted).alias("avg_predicted_clv"),
        predicted.median().alias("median_predicted_clv"),
    )
    top = pl.col("value_tier").is_in(list(top_tiers))
    share = segments.select(
        pl.when(exact_sum(pl.col("total_revenue")) != 0)
        .then(exact_sum(pl.col("total_revenue").filter(top)) / exact_sum(pl.col("total_revenue")))
        .alias("top_tier_revenue_share")
    )
    churn = pl.col("churn_rate")
    current = (
        pl.concat([feats, activity, alive, model, share, units], how="horizontal")
        .with_columns(
            pl.lit(as_of).alias("as_of"),
            pl.lit(w, pl.Int64).alias("active_window_days"),
            pl.col("_net").alias("net_revenue_window"),
            _ratio(pl.col("retained_customers"), pl.col("previous_active_customers")).alias(
                "retention_rate"
            ),
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
            (pl.lit(as_of) - pl.col("as_of")).dt.total_days().alias("days_since_previous"),
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
