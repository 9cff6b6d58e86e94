"""The ``unit_economics`` table: CAC, net CLV, CLV - CAC and CLV:CAC per channel and cohort month.

Optional inputs

* ``customers``: ``customer_id, acquisition_channel, acquired_at`` (Date or Datetime); customers
  acquired after as_of are ignored; a null channel is ``unknown``; a customer listed more than
  once counts once, at the earliest ``acquired_at`` (on a tie, the first channel by name).
* ``acquisition_spend``: ``month`` (any Date / Datetime in the month), ``channel``, ``spend``.

When either is None the result is an empty frame with the table's schema (CAC needs both).

Per customer: ``clv`` = ``total_clv`` (historic + predicted) or ``historic_clv`` when the model
produced no prediction, 0 for an acquired customer without purchases; ``cost_to_serve`` =
``cost_to_serve_per_order x (n_transactions to date + expected_purchases)`` (expected purchases
are purchase-days, used as orders; 0 without a model). ``gross_margin`` is applied on top of the CLV
columns; leave it at 1.0 when customer_clv was already computed with the pipeline's gross margin.

Per (cohort_month, channel) and (cohort_month, 'all'): ``customers``, ``spend`` (0 when there is no
spend row), ``cac = spend / customers``, ``avg_net_clv = avg_clv x gross_margin -
avg_cost_to_serve``, ``clv_minus_cac``, ``clv_cac_ratio = avg_net_clv / cac`` (null when cac is 0:
organic) and ``below_benchmark = clv_cac_ratio < benchmark_ratio`` (3:1).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import polars as pl

from clv_pipeline.numeric import exact_mean, exact_sum
from clv_pipeline.schema import UNIT_ECONOMICS, conform, empty_frame

_KEYS = ["cohort_month", "channel"]


def _with_all(frame: pl.LazyFrame, aggs: list[pl.Expr]) -> pl.LazyFrame:
    """Aggregate per (cohort_month, channel) and per (cohort_month, 'all')."""
    return pl.concat(
        [
            frame.group_by(_KEYS).agg(aggs),
            frame.with_columns(pl.lit("all").alias("channel")).group_by(_KEYS).agg(aggs),
        ]
    )


def build_unit_economics(
    features: pl.LazyFrame,
    clv: pl.LazyFrame,
    *,
    as_of: date,
    customers: pl.LazyFrame | None = None,
    acquisition_spend: pl.LazyFrame | None = None,
    gross_margin: float = 1.0,
    cost_to_serve_per_order: float = 0.0,
    benchmark_ratio: float = 3.0,
    new_customer_clv: float | None = None,
    new_customer_clv_by_channel: Mapping[str, float] | None = None,
) -> pl.LazyFrame:
    """CAC and CLV:CAC per acquisition channel and cohort month.

    Parameters
    ----------
    features
        ``customer_features`` (``customer_id, n_transactions``).
    clv
        ``customer_clv`` (``customer_id, total_clv, historic_clv, expected_purchases``).
    as_of
        Snapshot date.
    customers, acquisition_spend
        Optional inputs (see the module docstring); None = empty result.
    gross_margin
        Applied to the CLV columns (1.0 when they already carry the margin).
    cost_to_serve_per_order
        Cost per order, currency units.
    benchmark_ratio
        CLV:CAC benchmark; ratios below it are flagged.
    new_customer_clv
        Expected CLV of a customer acquired today (:func:`clv_pipeline.models.summary.new_customer_clv`),
        compared with each row's CAC; None: null columns.
    new_customer_clv_by_channel
        The same per channel, from the channel's own fit (``models.fit_by =
        acquisition_channel``); channels without one (and ``all``) use ``new_customer_clv``.

    Returns
    -------
    pl.LazyFrame
        :data:`~clv_pipeline.schema.UNIT_ECONOMICS` columns sorted by cohort_month,
        channel.
    """
    if customers is None or acquisition_spend is None:
        return empty_frame(UNIT_ECONOMICS)
    own_fits = pl.LazyFrame(
        {
            "channel": list((new_customer_clv_by_channel or {}).keys()),
            "_own": list((new_customer_clv_by_channel or {}).values()),
        },
        schema={"channel": pl.String, "_own": pl.Float64},
    )
    acquired = (
        customers.select(
            pl.col("customer_id").cast(pl.String),
            pl.col("acquisition_channel").cast(pl.String).fill_null("unknown").alias("channel"),
            pl.col("acquired_at").cast(pl.Date).alias("_acquired"),
        )
        .filter(pl.col("_acquired") <= as_of)
        # a customer listed twice: the earliest acquisition (then channel), whatever the row order
        .sort("customer_id", "_acquired", "channel")
        .unique("customer_id", keep="first", maintain_order=True)
        .with_columns(pl.col("_acquired").dt.month_start().alias("cohort_month"))
    )
    value = (
        acquired.join(
            features.select("customer_id", "n_transactions"), on="customer_id", how="left"
        )
        .join(
            clv.select("customer_id", "total_clv", "historic_clv", "expected_purchases"),
            on="customer_id",
            how="left",
        )
        .with_columns(
            pl.coalesce(
                pl.col("total_clv").fill_nan(None), pl.col("historic_clv"), pl.lit(0.0)
            ).alias("_clv"),
            (
                cost_to_serve_per_order
                * (
                    pl.col("n_transactions").fill_null(0)
                    + pl.col("expected_purchases").fill_nan(None).fill_null(0.0)
                )
            ).alias("_cost"),
        )
    )
    per_cohort = _with_all(
        value,
        [
            pl.len().cast(pl.Int64).alias("customers"),
            exact_mean(pl.col("_clv")).alias("avg_clv"),
            exact_mean(pl.col("_cost")).alias("avg_cost_to_serve"),
        ],
    )
    spend = _with_all(
        acquisition_spend.select(
            pl.col("month").cast(pl.Date).dt.month_start().alias("cohort_month"),
            pl.col("channel").cast(pl.String).fill_null("unknown"),
            pl.col("spend").cast(pl.Float64),
        ).filter(pl.col("cohort_month") <= as_of),
        [exact_sum(pl.col("spend")).alias("spend")],
    )
    cac = pl.col("cac")
    out = (
        per_cohort.join(spend, on=_KEYS, how="full", coalesce=True)
        .with_columns(
            pl.lit(as_of).alias("as_of"),
            pl.col("customers").fill_null(0),
            pl.col("spend").fill_null(0.0),
        )
        .with_columns(
            pl.when(pl.col("customers") > 0)
            .then(pl.col("spend") / pl.col("customers"))
            .alias("cac"),
            (pl.col("avg_clv") * gross_margin - pl.col("avg_cost_to_serve")).alias("avg_net_clv"),
        )
        .with_columns(
            (pl.col("avg_net_clv") - cac).alias("clv_minus_cac"),
            pl.when(cac > 0).then(pl.col("avg_net_clv") / cac).alias("clv_cac_ratio"),
        )
        .join(own_fits, on="channel", how="left")
        .with_columns(
            (pl.col("clv_cac_ratio") < benchmark_ratio).alias("below_benchmark"),
            pl.coalesce("_own", pl.lit(new_customer_clv, pl.Float64)).alias("new_customer_clv"),
        )
        .with_columns(
            pl.when(cac > 0)
            .then(pl.col("new_customer_clv") / cac)
            .alias("new_customer_clv_cac_ratio"),
        )
    )
    return conform(out, UNIT_ECONOMICS).sort(_KEYS)
