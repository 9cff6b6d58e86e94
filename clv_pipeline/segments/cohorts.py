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
* ``is_partial_month``: true on the rows of the calendar month containing as_of when as_of is not
  its last day (that month is observed only up to as_of, so its retention and revenue are not
  comparable with full months); ``days_observed`` = the days of the row's calendar month observed
  (``as_of``'s day of the month for that month, the month's length for every earlier one).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, replace
from datetime import date

import polars as pl

from clv_pipeline.features.months import (
    CohortState,
    add_activity,
    month_activity,
    month_index,
    summarise_state,
)
from clv_pipeline.numeric import FIXED
from clv_pipeline.schema import COHORTS, conform


def month_observed(as_of: date) -> tuple[bool, int, int]:
    """``(is_partial, days_observed, days_in_month)`` of the calendar month containing ``as_of``."""
    length = calendar.monthrange(as_of.year, as_of.month)[1]
    return as_of.day < length, as_of.day, length


def _observed(as_of: date) -> list[pl.Expr]:
    """``is_partial_month`` and ``days_observed`` of each row's calendar month."""
    month = month_index(pl.col("cohort_month")) + pl.col("months_since_acquisition")
    current = month == month_index(pl.lit(as_of))
    partial, observed, _ = month_observed(as_of)
    start = pl.date(month // 12, month % 12 + 1, 1)
    return [
        (current & pl.lit(partial)).alias("is_partial_month"),
        pl.when(current)
        .then(pl.lit(observed, pl.Int64))
        .otherwise(start.dt.month_end().dt.day().cast(pl.Int64))
        .alias("days_observed"),
    ]


def first_purchases(purchases: pl.LazyFrame) -> pl.LazyFrame:
    """``customer_id, cohort_month, channel`` of each customer's first purchase transaction
    (earliest ``occurred_at``, then ``transaction_id``; a null channel is ``unknown``) from
    purchase rows (``transaction_id, customer_id, occurred_at, event_date, channel``)."""
    # without sorting the history: the earliest time per customer, then the smallest id
    first_at = purchases.group_by("customer_id").agg(pl.col("occurred_at").min().alias("_first"))
    return (
        purchases.join(first_at, on="customer_id")
        .filter(pl.col("occurred_at") == pl.col("_first"))
        .group_by("customer_id")
        .agg(
            pl.col("event_date").min().dt.month_start().alias("cohort_month"),
            pl.col("channel")
            .cast(pl.String)
            .sort_by("transaction_id")
            .first()
            .fill_null("unknown"),
        )
    )


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
        :data:`~clv_pipeline.schema.COHORTS` columns sorted by cohort_month, channel,
        months_since_acquisition.
    """
    history = transactions.filter(pl.col("event_date") <= as_of)
    return cohorts_from_state(summarise_state(history, as_of=as_of), clv, as_of=as_of)


@dataclass(frozen=True)
class CohortParts:
    """What the ``cohorts`` table sums over customers, additive over customer shards: per cohort
    month and channel the members (``sizes``: ``cohort_customers``, the fixed-point sum and the
    count of their predicted CLVs), per cohort month, channel and month since acquisition the
    activity (``activity``: :data:`~clv_pipeline.features.months.CLOSED_COLUMNS`), and whether
    any purchase has a channel (``any_channel``: one boolean row)."""

    sizes: pl.LazyFrame
    activity: pl.LazyFrame
    any_channel: pl.LazyFrame


def cohort_parts(state: CohortState, clv: pl.LazyFrame) -> CohortParts:
    """The :class:`CohortParts` of the customers of ``state`` (their ``predicted_clv`` from
    ``clv``), every channel kept (the per-channel rows are dropped at the end when no purchase
    has a channel)."""
    firsts = state.firsts
    first = firsts.select(
        "customer_id", "cohort_month", pl.col("channel").fill_null("unknown")
    ).join(clv.select("customer_id", "predicted_clv"), on="customer_id", how="left")
    value = pl.col("predicted_clv").fill_nan(None)
    sizes = first.group_by("cohort_month", "channel").agg(
        pl.len().cast(pl.Int64).alias("cohort_customers"),
        value.cast(FIXED).sum().alias("_clv_sum"),
        value.count().cast(pl.Int64).alias("_clv_count"),
    )
    return CohortParts(
        sizes=sizes,
        activity=add_activity(state.closed, month_activity(state.open, firsts)),
        any_channel=firsts.select(pl.col("any_channel").any().alias("_any")),
    )


#: A cohort's member sums, added up over shards and over channels.
_SIZE_SUMS = pl.col("cohort_customers", "_clv_sum", "_clv_count").sum()


def merge_cohort_parts(parts: list[CohortParts]) -> CohortParts:
    """The :class:`CohortParts` of the union of the customers behind ``parts`` (sums, exact)."""
    return CohortParts(
        sizes=pl.concat([p.sizes for p in parts], how="vertical")
        .group_by("cohort_month", "channel")
        .agg(_SIZE_SUMS),
        activity=add_activity(*(p.activity for p in parts)),
        any_channel=pl.concat([p.any_channel for p in parts], how="vertical").select(
            pl.col("_any").any()
        ),
    )


def cohorts_from_state(state: CohortState, clv: pl.LazyFrame, *, as_of: date) -> pl.LazyFrame:
    """The ``cohorts`` table from the cohort state (:mod:`~clv_pipeline.features.months`) of the
    rows up to ``as_of``: the same table as :func:`build_cohorts` of those rows, without reading
    them."""
    parts = cohort_parts(state, clv)
    # the members are used four times below: computed once, not per use
    sizes = parts.sizes.collect(engine="streaming").lazy()
    return cohorts_from_parts(replace(parts, sizes=sizes), as_of=as_of)


def cohorts_from_parts(parts: CohortParts, *, as_of: date) -> pl.LazyFrame:
    """The ``cohorts`` table from the :class:`CohortParts` of every customer."""
    any_channel = parts.any_channel
    count = pl.col("_clv_count")
    every_channel = (
        parts.sizes.group_by("cohort_month")
        .agg(_SIZE_SUMS)
        .with_columns(pl.lit("all").alias("channel"))
    )
    per_channel = parts.sizes.join(any_channel, how="cross").filter(pl.col("_any")).drop("_any")
    sizes = (
        pl.concat(
            [per_channel, every_channel.select(per_channel.collect_schema().names())],
            how="vertical",
        )
        # a channel named "all" joins the "all" rows
        .group_by("cohort_month", "channel")
        .agg(_SIZE_SUMS)
        .select(
            "cohort_month",
            "channel",
            "cohort_customers",
            pl.when(count > 0)
            .then(pl.col("_clv_sum").cast(pl.Float64) / count)
            .alias("avg_predicted_clv"),
        )
    )
    as_of_index = month_index(pl.lit(as_of))
    grid = sizes.with_columns(
        pl.int_ranges(
            0, as_of_index - month_index(pl.col("cohort_month")) + 1, dtype=pl.Int64
        ).alias("months_since_acquisition")
    ).explode("months_since_acquisition")
    # per cohort month, channel and month since acquisition: the closed months' activity plus
    # the open months' customer rows; "all" sums the channels (every customer has one)
    by_channel = parts.activity
    everyone = by_channel.group_by("cohort_month", "months_since_acquisition").agg(
        pl.col("active_customers").sum(), pl.col("revenue").sum()
    )
    activity = add_activity(  # summed again: a channel named "all" joins the "all" rows
        by_channel.join(any_channel, how="cross").filter(pl.col("_any")).drop("_any"),
        everyone.with_columns(pl.lit("all").alias("channel")),
    ).with_columns(pl.col("revenue").cast(pl.Float64))
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
            *_observed(as_of),
        )
    )
    return conform(out, COHORTS).sort("cohort_month", "channel", "months_since_acquisition")
