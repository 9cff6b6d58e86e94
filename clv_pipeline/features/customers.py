"""Per-customer RFM / BTYD summary as of a date (lifetimes conventions, time unit days).

* A purchase is a validated row with ``revenue_kind == "purchase"`` (amount > 0, revenue status).
* Purchases on the same calendar day (``event_date``, pipeline timezone) form one purchase-day.
* ``frequency`` = purchase-days - 1; ``recency`` = first to last purchase-day; ``T`` = first
  purchase-day to ``as_of``; ``monetary_value`` = mean per-day purchase total over the repeat
  purchase-days (the first day excluded), 0 when ``frequency`` is 0.
* Refunds (amount < 0) never create purchase-days; they reduce ``total_revenue`` and are reported in
  ``refund_amount`` / ``n_refunds``. ``aov`` uses gross purchase amounts.
* A refund *tied* to its purchase (``refund_of`` names the purchase's ``transaction_id``, same
  customer): when the tied refunds cover the purchase's amount, the purchase and those refunds are
  ``cancelled`` (:func:`apply_refund_ties`): no purchase-day, no revenue, no refund. A partial
  tied refund only reduces revenue, like an untied one.
* A zero-amount purchase (free items, voucher) is a purchase-day with zero revenue.
* Customers whose only rows on or before ``as_of`` are refunds or ignored rows have no row.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from clv_pipeline.features.state import split_touched
from clv_pipeline.schema import CUSTOMER_FEATURES, CUSTOMER_STATE, MONEY

_DAYS = pl.duration(days=1)
#: ``customer_state`` without its ``as_of`` (a state is dated when it is published).
STATE_COLUMNS = tuple(name for name in CUSTOMER_STATE.names if name != "as_of")


def compute_features(transactions: pl.LazyFrame, *, as_of: date) -> pl.LazyFrame:
    """One row per customer from validated transactions with ``event_date <= as_of``.

    Parameters
    ----------
    transactions
        Validated transactions (``customer_id, occurred_at, event_date, amount, revenue_kind``).
    as_of
        Snapshot date; later rows are never used.
    """
    history = apply_refund_ties(transactions.filter(pl.col("event_date") <= as_of))
    return features_from_state(summarise_transactions(history), as_of=as_of)


def apply_refund_ties(transactions: pl.LazyFrame) -> pl.LazyFrame:
    """Mark fully refunded purchases and their tied refunds as ``revenue_kind = "cancelled"``.

    A refund is tied when its ``refund_of`` names a purchase ``transaction_id`` of the same
    customer among ``transactions``; the purchase is fully refunded when its tied refunds add up
    to at least its amount (fixed-point sums). Untied and partial refunds are left as they are.
    The tied refunds are looked up first (a scan of the refund rows only): without any, the frame
    is returned unchanged.
    """
    if "refund_of" not in transactions.collect_schema().names():
        return transactions
    kind = pl.col("revenue_kind")
    tied = (
        transactions.filter((kind == "refund") & pl.col("refund_of").is_not_null())
        .group_by("customer_id", "refund_of")
        .agg((-pl.col("amount").cast(MONEY)).sum().alias("_tied"))
        .collect(engine="streaming")
    )
    if tied.is_empty():
        return transactions
    cancelled = (
        transactions.filter(kind == "purchase")
        .select("customer_id", "transaction_id", pl.col("amount").cast(MONEY))
        .join(
            tied.lazy(),
            left_on=["customer_id", "transaction_id"],
            right_on=["customer_id", "refund_of"],
        )
        .filter(pl.col("_tied") >= pl.col("amount"))
        .select("customer_id", pl.col("transaction_id").alias("_order"), pl.lit(True).alias("_x"))
        .collect(engine="streaming")
    )
    if cancelled.is_empty():
        return transactions
    # the order a row belongs to: a purchase is its own, a refund the one it names
    order = pl.when(kind == "purchase").then("transaction_id").when(kind == "refund")
    return (
        transactions.with_columns(order.then("refund_of").alias("_order"))
        .join(
            cancelled.lazy(),
            on=["customer_id", "_order"],
            how="left",
            maintain_order="left",
        )
        .with_columns(
            pl.when(pl.col("_x").fill_null(False))
            .then(pl.lit("cancelled"))
            .otherwise(kind)
            .alias("revenue_kind")
        )
        .drop("_order", "_x")
    )


def summarise_transactions(transactions: pl.LazyFrame) -> pl.LazyFrame:
    """Per-customer running state (:data:`STATE_COLUMNS`) of a set of validated transactions.

    Money is kept in fixed point (``Decimal(38, 9)``), so states merge exactly: see
    :func:`merge_states`.
    """
    per_day = (
        transactions.filter(pl.col("revenue_kind") == "purchase")
        .group_by("customer_id", "event_date")
        .agg(
            pl.col("amount").cast(MONEY).sum().alias("day_total"),
            pl.len().alias("n"),
            pl.col("occurred_at").min().alias("first_ts"),
            pl.col("occurred_at").max().alias("last_ts"),
        )
    )
    day = pl.col("event_date")
    customers = (
        per_day.group_by("customer_id")
        .agg(
            day.min().alias("first_day"),
            day.alias("_days"),  # -> previous_day (_second_latest)
            day.max().alias("last_day"),
            pl.col("first_ts").min().alias("first_purchase_at"),
            pl.col("last_ts").max().alias("last_purchase_at"),
            pl.col("n").sum().cast(pl.Int64).alias("n_transactions"),
            pl.len().cast(pl.Int64).alias("n_purchase_days"),
            pl.col("day_total").sum().alias("gross_revenue"),
            pl.col("day_total").sort_by("event_date").first().alias("first_day_total"),
        )
        .with_columns(_second_latest("_days").alias("previous_day"))
    )
    refunds = (
        transactions.filter(pl.col("revenue_kind") == "refund")
        .group_by("customer_id")
        .agg(
            (-pl.col("amount").cast(MONEY)).sum().alias("refund_amount"),
            pl.len().cast(pl.Int64).alias("n_refunds"),
        )
    )
    return _fill_state(customers.join(refunds, on="customer_id", how="full", coalesce=True))


def _second_latest(days: str) -> pl.Expr:
    """The second-latest distinct day of each list in column ``days`` (null with fewer).

    Gathering a group's days as a list and taking from it runs over all lists at once; a filter
    inside the aggregation (``day.filter(day < day.max()).max()``) ran group by group: the
    customer group-by at 1M customers 1.9 -> 1.2 s, the 10M state merge 1.1 s less.
    """
    return pl.col(days).list.unique().list.sort().list.get(-2, null_on_oob=True)


def merge_states(older: pl.LazyFrame, newer: pl.LazyFrame) -> pl.LazyFrame:
    """Combine the states of two sets of transactions on *different* event dates.

    ``state(history up to D) = merge_states(state(history up to D-1), summarise(day D))`` is
    exact (fixed-point sums, min/max, counts). A late row for an older day D' needs the state to
    be rebuilt from D' (its purchase-day may already be counted).

    Only the customers present in ``newer`` are regrouped; the others are carried over as they
    are (a day touches a few percent of the customers: 0.4 s instead of 3.6 s at 1M customers).
    ``older`` is read twice: pass a scan or a collected frame, not a long chain of lazy merges
    (the plan would double with every merge).
    """
    carried, touched = split_touched(older, newer)
    regrouped = _combine(touched, newer)
    return pl.concat([carried.select(STATE_COLUMNS), regrouped], how="vertical")


def _combine(older: pl.LazyFrame, newer: pl.LazyFrame) -> pl.LazyFrame:
    """Group the rows of two states by customer (see :func:`merge_states`)."""
    first, last = pl.col("first_day"), pl.col("last_day")
    return _fill_state(
        pl.concat([older.select(STATE_COLUMNS), newer.select(STATE_COLUMNS)], how="vertical")
        .group_by("customer_id")
        .agg(
            first.min().alias("first_day"),
            pl.col("previous_day").max().alias("_previous"),
            last.alias("_lasts"),
            last.max().alias("last_day"),
            pl.col("first_purchase_at").min(),
            pl.col("last_purchase_at").max(),
            pl.col("n_transactions").sum(),
            pl.col("n_purchase_days").sum(),
            pl.col("gross_revenue").sum(),
            # the earliest first day's total (stable: the first such row, nulls never chosen
            # over a day); a filter inside the aggregation ran group by group (1.1 s at 10M)
            pl.col("first_day_total").sort_by(first, nulls_last=True, maintain_order=True).first(),
            pl.col("refund_amount").sum(),
            pl.col("n_refunds").sum(),
        )
        .with_columns(
            # days are disjoint: the second-latest purchase-day is the latest of the previous
            # days and of the last days below the overall last day
            pl.max_horizontal("_previous", _second_latest("_lasts")).alias("previous_day")
        )
    )


def _fill_state(state: pl.LazyFrame) -> pl.LazyFrame:
    zero = pl.lit(0).cast(MONEY)
    return state.with_columns(
        pl.col("n_transactions", "n_purchase_days", "n_refunds").fill_null(0).cast(pl.Int64),
        pl.col("gross_revenue", "refund_amount").fill_null(zero).cast(MONEY),
        pl.col("first_day_total").cast(MONEY),
    ).select(STATE_COLUMNS)


def features_from_state(state: pl.LazyFrame, *, as_of: date, sort: bool = True) -> pl.LazyFrame:
    """``customer_features`` at ``as_of`` from a state covering every event date <= ``as_of``,
    sorted by ``customer_id`` (``sort=False``: in the state's row order, for a caller that sorts
    only when needed, :func:`~clv_pipeline.schema.sort_rows`: a published state is sorted)."""
    frequency = pl.col("n_purchase_days") - 1
    gross = pl.col("gross_revenue")
    features = (
        state.filter(pl.col("n_purchase_days") > 0)
        .with_columns(
            pl.lit(as_of).alias("as_of"),
            frequency.alias("frequency"),
            ((pl.col("last_day") - pl.col("first_day")) / _DAYS).cast(pl.Int64).alias("recency"),
            ((pl.lit(as_of) - pl.col("first_day")) / _DAYS).cast(pl.Int64).alias("T"),
            pl.when(frequency > 0)
            .then((gross - pl.col("first_day_total")).cast(pl.Float64) / frequency)
            .otherwise(0.0)
            .alias("monetary_value"),
            (gross.cast(pl.Float64) / pl.col("n_transactions")).alias("aov"),
            (gross - pl.col("refund_amount")).cast(pl.Float64).alias("total_revenue"),
            gross.cast(pl.Float64).alias("gross_revenue"),
            pl.col("refund_amount").cast(pl.Float64),
        )
        .with_columns(
            (pl.col("T") - pl.col("recency")).alias("days_since_last_purchase"),
            pl.when(pl.col("frequency") > 0)
            .then(pl.col("recency") / pl.col("frequency"))
            .alias("avg_days_between_purchases"),
        )
        .select(CUSTOMER_FEATURES.names)
    )
    return features.sort("customer_id") if sort else features
