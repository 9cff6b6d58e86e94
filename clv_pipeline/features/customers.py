"""Per-customer RFM / BTYD summary as of a date (lifetimes conventions, time unit days).

* A purchase is a validated row with ``revenue_kind == "purchase"`` (amount > 0, revenue status).
* Purchases on the same calendar day (``event_date``, pipeline timezone) form one purchase-day.
* ``frequency`` = purchase-days - 1; ``recency`` = first to last purchase-day; ``T`` = first
  purchase-day to ``as_of``; ``monetary_value`` = mean per-day purchase total over the repeat
  purchase-days (the first day excluded), 0 when ``frequency`` is 0.
* Refunds (amount < 0) never create purchase-days; they reduce ``total_revenue`` and are reported in
  ``refund_amount`` / ``n_refunds``. ``aov`` uses gross purchase amounts.
* Customers whose only rows on or before ``as_of`` are refunds or ignored rows have no row.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from clv_pipeline.numeric import exact_sum
from clv_pipeline.schema import CUSTOMER_FEATURES

_DAYS = pl.duration(days=1)


def compute_features(transactions: pl.LazyFrame, *, as_of: date) -> pl.LazyFrame:
    """One row per customer from validated transactions with ``event_date <= as_of``.

    Parameters
    ----------
    transactions
        Validated transactions (``customer_id, occurred_at, event_date, amount, revenue_kind``).
    as_of
        Snapshot date; later rows are never used.
    """
    history = transactions.filter(pl.col("event_date") <= as_of)
    per_day = (
        history.filter(pl.col("revenue_kind") == "purchase")
        .group_by("customer_id", "event_date")
        .agg(
            exact_sum(pl.col("amount")).alias("day_total"),
            pl.len().alias("n"),
            pl.col("occurred_at").min().alias("first_ts"),
            pl.col("occurred_at").max().alias("last_ts"),
        )
    )
    customers = per_day.group_by("customer_id").agg(
        pl.col("first_ts").min().alias("first_purchase_at"),
        pl.col("last_ts").max().alias("last_purchase_at"),
        pl.col("event_date").min().alias("first_day"),
        pl.col("event_date").max().alias("last_day"),
        pl.col("n").sum().cast(pl.Int64).alias("n_transactions"),
        pl.len().cast(pl.Int64).alias("n_purchase_days"),
        exact_sum(pl.col("day_total")).alias("gross_revenue"),
        pl.col("day_total").sort_by("event_date").first().alias("first_day_total"),
    )
    refunds = (
        history.filter(pl.col("revenue_kind") == "refund")
        .group_by("customer_id")
        .agg(
            (-exact_sum(pl.col("amount"))).alias("refund_amount"),
            pl.len().cast(pl.Int64).alias("n_refunds"),
        )
    )
    frequency = pl.col("n_purchase_days") - 1
    return (
        customers.join(refunds, on="customer_id", how="left")
        .with_columns(
            pl.lit(as_of).alias("as_of"),
            pl.col("refund_amount").fill_null(0.0),
            pl.col("n_refunds").fill_null(0),
            frequency.alias("frequency"),
            ((pl.col("last_day") - pl.col("first_day")) / _DAYS).cast(pl.Int64).alias("recency"),
            ((pl.lit(as_of) - pl.col("first_day")) / _DAYS).cast(pl.Int64).alias("T"),
            pl.when(frequency > 0)
            .then((pl.col("gross_revenue") - pl.col("first_day_total")) / frequency)
            .otherwise(0.0)
            .alias("monetary_value"),
            (pl.col("gross_revenue") / pl.col("n_transactions")).alias("aov"),
        )
        .with_columns(
            (pl.col("T") - pl.col("recency")).alias("days_since_last_purchase"),
            (pl.col("gross_revenue") - pl.col("refund_amount")).alias("total_revenue"),
            pl.when(pl.col("frequency") > 0)
            .then(pl.col("recency") / pl.col("frequency"))
            .alias("avg_days_between_purchases"),
        )
        .select(CUSTOMER_FEATURES.names)
        .sort("customer_id")
    )
