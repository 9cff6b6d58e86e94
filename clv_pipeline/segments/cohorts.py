"""Acquisition cohorts: retention and revenue by month since the first purchase.

* Only validated rows with ``event_date <= as_of`` are used.
* A customer's cohort is the month of their first purchase-day (``revenue_kind == 'purchase'``);
  customers with refunds or ignored rows only are not acquired and are left out.
* ``channel`` = channel of the first purchase transaction (earliest ``occurred_at``, then
  ``transaction_id``); a null channel is ``unknown``. Rows for ``channel = 'all'`` are always
  present; per-channel rows only when at least one purchase has a channel.
* The grid is complete: every cohort has a row for every month 0 .. (as_of month - cohort month),
  with zero activity where nobody bought.
* ``active_customers``: cohort customers with at least one purchase in that calendar month;
  ``retention_rate`` = active / cohort customers (1.0 in month 0).
* ``revenue``: net revenue (purchases + refunds, refunds negative) of the cohort's customers in that
  month; ``cumulative_revenue_per_customer`` = running sum of revenue / cohort customers.
* ``avg_predicted_clv``: mean ``predicted_clv`` (customer_clv) of the cohort; null without a model.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from clv_pipeline.numeric import exact_mean, exact_sum
from clv_pipeline.segments.tables import COHORTS, conform_lazy


def _month_index(col: pl.Expr) -> pl.Expr:
    return col.dt.year().cast(pl.Int64) * 12 + col.dt.month().cast(pl.Int64) - 1


def build_cohorts(transactions: pl.LazyFrame, clv: pl.LazyFrame, *, as_of: date) -> pl.LazyFrame:
    """The ``cohorts`` table (long format) from validated transactions and customer CLV.

    Parameters
    ----------
    transactions
        ``validated_transactions`` (``transaction_id, customer_id, occurred_at, event_date, amount,
        revenue_kind, channel``); rows after ``as_of`` are ignored.
    clv
        ``customer_clv`` (``customer_id, predicted_clv``).
    as_of
        Snapshot date.

    Returns
    -------
    pl.LazyFrame
        :data:`~clv_pipeline.segments.tables.COHORTS` columns sorted by cohort_month, channel,
        months_since_acquisition.
    """
    history = transactions.filter(pl.col("event_date") <= as_of).with_columns(
        pl.col("channel").cast(pl.String)
    )
    purchases = history.filter(pl.col("revenue_kind") == "purchase")
    first = (
        purchases.sort("occurred_at", "transaction_id")
        .group_by("customer_id")
        .agg(
            pl.col("event_date").first().dt.month_start().alias("cohort_month"),
            pl.col("channel").first().fill_null("unknown").alias("channel"),
        )
        .join(clv.select("customer_id", "predicted_clv"), on="customer_id", how="left")
    )
    any_channel = purchases.select(pl.col("channel").is_not_null().any().alias("_any"))
    per_channel = (
        first.join(any_channel, how="cross")
        .filter(pl.col("_any"))
        .select("customer_id", "cohort_month", "channel", "predicted_clv")
    )
    every_channel = first.select(
        "customer_id", "cohort_month", pl.lit("all").alias("channel"), "predicted_clv"
    )
    members = pl.concat([per_channel, every_channel])
    sizes = members.group_by("cohort_month", "channel").agg(
        pl.len().cast(pl.Int64).alias("cohort_customers"),
        exact_mean(pl.col("predicted_clv").fill_nan(None)).alias("avg_predicted_clv"),
    )
    as_of_index = _month_index(pl.lit(as_of))
    grid = sizes.with_columns(
        pl.int_ranges(
            0, as_of_index - _month_index(pl.col("cohort_month")) + 1, dtype=pl.Int64
        ).alias("months_since_acquisition")
    ).explode("months_since_acquisition")
    activity = (
        history.filter(pl.col("revenue_kind").is_in(["purchase", "refund"]))
        .select("customer_id", "event_date", "amount", "revenue_kind")
        .join(members.select("customer_id", "cohort_month", "channel"), on="customer_id")
        .with_columns(
            (_month_index(pl.col("event_date")) - _month_index(pl.col("cohort_month"))).alias(
                "months_since_acquisition"
            )
        )
        .group_by("cohort_month", "channel", "months_since_acquisition")
        .agg(
            pl.col("customer_id")
            .filter(pl.col("revenue_kind") == "purchase")
            .n_unique()
            .cast(pl.Int64)
            .alias("active_customers"),
            exact_sum(pl.col("amount")).alias("revenue"),
        )
    )
    out = (
        grid.join(
            activity,
            on=["cohort_month", "channel", "months_since_acquisition"],
            how="left",
        )
        .with_columns(
            pl.lit(as_of).alias("as_of"),
            pl.col("active_customers").fill_null(0),
            pl.col("revenue").fill_null(0.0),
        )
        .sort("cohort_month", "channel", "months_since_acquisition")
        .with_columns(
            (pl.col("active_customers") / pl.col("cohort_customers")).alias("retention_rate"),
            (
                pl.col("revenue").cum_sum().over("cohort_month", "channel")
                / pl.col("cohort_customers")
            ).alias("cumulative_revenue_per_customer"),
        )
    )
    return conform_lazy(out, COHORTS).sort("cohort_month", "channel", "months_since_acquisition")
