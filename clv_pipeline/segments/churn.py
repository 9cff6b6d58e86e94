"""The ``customer_churn`` table: churn probability, percentile, risk band, overdue days, value at risk.

* ``churn_probability`` = 1 - p_alive (customer_clv); null without a model.
* ``churn_percentile`` = 100 x (customers with churn_probability <= this one) / (customers with a
  probability), i.e. ``rank("max")`` based, so ties share the higher percentile.
* ``risk_band``: first band whose upper bound exceeds the probability (last band includes 1.0);
  default low < 0.25 <= medium < 0.5 <= high < 0.75 <= critical; ``unknown`` when null.
* ``expected_next_purchase_at`` is the model's date (as_of + expected days to the next purchase),
  which by construction is never before as_of. Overdue days therefore use the customer's rhythm:
  ``next_purchase_due_at`` = last purchase-day + ceil(expected_interval_days) and
  ``days_overdue`` = max(0, as_of - next_purchase_due_at).
* ``value_at_risk`` = predicted_clv x churn_probability (<= predicted_clv); the table is sorted by
  it, largest first (nulls last), then customer_id.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from clv_pipeline.schema import CUSTOMER_CHURN, conform
from clv_pipeline.segments.lifecycle import LifecycleRules, estimate_purchase_interval
from clv_pipeline.segments.tiers import check_bounds, label_by_bounds

DEFAULT_RISK_BANDS: tuple[tuple[str, float], ...] = (
    ("low", 0.25),
    ("medium", 0.5),
    ("high", 0.75),
    ("critical", 1.0),
)


def build_customer_churn(
    features: pl.LazyFrame,
    clv: pl.LazyFrame,
    *,
    risk_bands: Sequence[tuple[str, float]] = DEFAULT_RISK_BANDS,
    rules: LifecycleRules | None = None,
) -> pl.LazyFrame:
    """Churn risk per customer, sorted by value at risk (money) descending.

    Parameters
    ----------
    features
        ``customer_features`` (``customer_id, as_of, days_since_last_purchase,
        avg_days_between_purchases``).
    clv
        ``customer_clv`` (``p_alive, churn_probability, predicted_clv,
        expected_next_purchase_at``; may be null).
    risk_bands
        ``(label, upper bound)`` pairs on churn probability, increasing, the last bound 1.0.
    rules
        Rhythm settings for ``expected_interval_days`` (as in lifecycle).

    Returns
    -------
    pl.LazyFrame
        :data:`~clv_pipeline.schema.CUSTOMER_CHURN` columns.
    """
    check_bounds(risk_bands, what="risk_bands")
    prob = pl.col("churn_probability")
    joined = estimate_purchase_interval(features, rules=rules).join(
        clv.select(
            "customer_id",
            "p_alive",
            "churn_probability",
            "predicted_clv",
            "expected_next_purchase_at",
        ),
        on="customer_id",
        how="left",
    )
    due = (
        pl.col("as_of")
        - pl.duration(days=pl.col("days_since_last_purchase"))
        + pl.duration(days=pl.col("expected_interval_days").ceil().cast(pl.Int64))
    )
    out = (
        joined.with_columns(
            pl.col("p_alive").fill_nan(None),
            prob.fill_nan(None).clip(0.0, 1.0),
            pl.col("predicted_clv").fill_nan(None),
        )
        .with_columns(
            (100.0 * prob.rank("max").over("as_of") / prob.count().over("as_of")).alias(
                "churn_percentile"
            ),
            label_by_bounds(prob, risk_bands).fill_null("unknown").alias("risk_band"),
            due.alias("next_purchase_due_at"),
            (pl.col("predicted_clv") * prob).alias("value_at_risk"),
        )
        .with_columns(
            ((pl.col("as_of") - pl.col("next_purchase_due_at")).dt.total_days())
            .clip(lower_bound=0)
            .alias("days_overdue")
        )
    )
    return conform(out, CUSTOMER_CHURN).sort(
        ["as_of", "value_at_risk", "customer_id"],
        descending=[False, True, False],
        nulls_last=True,
    )
