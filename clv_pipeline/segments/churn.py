"""The ``customer_churn`` table: churn probability, percentile, risk band, overdue days, value at risk.

* ``churn_probability`` (:func:`~clv_pipeline.segments.lifecycle.churn_scores`, the same number
  the lifecycle stage is banded on): with ``churn_basis = "model"``, 1 - p_alive (customer_clv;
  from the rhythm when there is no model). When the model cannot rank churn (its dropout
  collapsed, so P(alive) ~ 1 for everyone, or its holdout ``purchases_auc`` is below 0.55),
  ``churn_basis = "recency"``: 1 - the Pareto/NBD P(alive) of a customer who buys at their own
  rhythm (rate 1 / expected_interval_days) and drops out at the population's period dropout
  rate (-ln(period retention) / W per day), given their silence
  (:func:`~clv_pipeline.segments.lifecycle.recency_alive`; without a period retention the
  dropout rate is 0.23 x the purchase rate).
* ``churn_percentile`` = 100 x (customers with churn_probability <= this one) / (customers with a
  probability), i.e. ``rank("max")`` based, so ties share the higher percentile.
* ``risk_band``: first band whose upper bound exceeds the probability (last band includes 1.0);
  default low < 0.25 <= medium < 0.5 <= high < 0.75 <= critical; ``unknown`` when null.
* ``expected_next_purchase_at`` is the model's date (as_of + expected days to the next purchase),
  which by construction is never before as_of. Overdue days therefore use the customer's rhythm:
  ``next_purchase_due_at`` = last purchase-day + ceil(expected_interval_days) and
  ``days_overdue`` = max(0, as_of - next_purchase_due_at).
* ``value_if_retained`` = predicted_clv / p_alive: what the customer brings over the horizon if
  they are still a customer. The models' expectations factor as P(alive) x the expectation given
  alive (for BG/NBD, MBG/NBD and Pareto/NBD alike, discounting included), so this is the model's
  own CLV of the customer were they known to be alive. Null when p_alive is 0 or null (or the
  ratio is not finite).
* ``value_at_risk`` = value_if_retained x churn_probability: the part of it lost if the churn
  probability is right. With ``churn_basis = "model"`` (churn = 1 - p_alive),
  ``value_if_retained - value_at_risk = predicted_clv`` exactly: the model's expected CLV plus the
  value at risk is what retention would keep (the former predicted_clv x churn_probability
  counted churn twice, since predicted_clv already includes P(alive)). With ``"recency"``,
  p_alive ~ 1 so value_if_retained ~ predicted_clv, and value_at_risk is the recency-based share
  of it. The table is sorted by value_at_risk, largest first (nulls last), then customer_id.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from clv_pipeline.schema import CUSTOMER_CHURN, conform, rows_in_order
from clv_pipeline.segments.lifecycle import (
    ChurnBasis,
    LifecycleRules,
    Rhythm,
    attach,
    churn_scores,
)
from clv_pipeline.segments.tiers import check_bounds, label_by_bounds

DEFAULT_RISK_BANDS: tuple[tuple[str, float], ...] = (
    ("low", 0.25),
    ("medium", 0.5),
    ("high", 0.75),
    ("critical", 1.0),
)


#: What the table reads of ``customer_clv`` besides ``p_alive`` (:func:`churn_scores`).
CLV_COLUMNS = ("predicted_clv", "expected_next_purchase_at")

#: Below this holdout AUC the model's P(alive) does not rank who buys again (0.5 = chance).
MIN_PURCHASES_AUC = 0.55


def choose_churn_basis(
    *, degenerate: bool, purchases_auc: float | None, model_available: bool = True
) -> ChurnBasis:
    """``recency`` when the model cannot rank churn (or there is no model), else ``model``."""
    if not model_available:
        return ChurnBasis(
            "recency",
            "no purchase model could be fitted and trusted on this history, so churn is scored "
            "from how long each customer has been silent against their rhythm",
        )
    if degenerate:
        return ChurnBasis(
            "recency",
            "the selected model's dropout collapsed (it rates almost every customer alive), so "
            "churn is scored from how long each customer has been silent against their rhythm",
        )
    if purchases_auc is not None and purchases_auc < MIN_PURCHASES_AUC:
        return ChurnBasis(
            "recency",
            f"on the holdout the model ranked who buys again barely better than chance "
            f"(purchases_auc {purchases_auc:.2f} < {MIN_PURCHASES_AUC}), so churn is scored from "
            "how long each customer has been silent against their rhythm",
        )
    auc = f" (holdout purchases_auc {purchases_auc:.2f})" if purchases_auc is not None else ""
    return ChurnBasis("model", f"churn probability is 1 - P(alive) of the selected model{auc}")


def build_customer_churn(
    features: pl.LazyFrame,
    clv: pl.LazyFrame,
    *,
    risk_bands: Sequence[tuple[str, float]] = DEFAULT_RISK_BANDS,
    rules: LifecycleRules | None = None,
    basis: ChurnBasis | None = None,
    period_retention: float | None = None,
    window_days: int = 90,
) -> pl.LazyFrame:
    """Churn risk per customer, sorted by value at risk (money) descending:
    :func:`rank_churn` of :func:`score_churn`.

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
    basis
        :func:`choose_churn_basis`; default the model.
    period_retention, window_days
        The period retention of the ``kpis`` definitions and its window: the dropout rate of
        the recency basis (:func:`~clv_pipeline.segments.lifecycle.recency_alive`).

    Returns
    -------
    pl.LazyFrame
        :data:`~clv_pipeline.schema.CUSTOMER_CHURN` columns.
    """
    return rank_churn(
        score_churn(
            features,
            clv,
            risk_bands=risk_bands,
            rules=rules,
            basis=basis,
            period_retention=period_retention,
            window_days=window_days,
        )
    )


def score_churn(
    features: pl.LazyFrame,
    clv: pl.LazyFrame,
    *,
    risk_bands: Sequence[tuple[str, float]] = DEFAULT_RISK_BANDS,
    rules: LifecycleRules | None = None,
    basis: ChurnBasis | None = None,
    period_retention: float | None = None,
    window_days: int = 90,
    rhythm: Rhythm | None = None,
) -> pl.LazyFrame:
    """Every column of :func:`build_customer_churn` but ``churn_percentile`` (a rank over the
    whole snapshot), in ``features``' row order. Row by row, so it runs per customer shard
    (``rhythm``: the snapshot's population rhythm); :func:`rank_churn` of the gathered shards
    is the table."""
    check_bounds(risk_bands, what="risk_bands")
    prob = pl.col("churn_probability")
    basis = basis or ChurnBasis("model", "")
    joined = churn_scores(
        features,
        clv,
        basis=basis,
        rules=rules,
        period_retention=period_retention,
        window_days=window_days,
        rhythm=rhythm,
    )
    joined = attach(joined, clv, CLV_COLUMNS)
    due = (
        pl.col("as_of")
        - pl.duration(days=pl.col("days_since_last_purchase"))
        + pl.duration(days=pl.col("expected_interval_days").ceil().cast(pl.Int64))
    )
    alive = pl.col("p_alive").fill_nan(None)
    ratio = pl.col("predicted_clv").fill_nan(None) / alive
    retained = pl.when((alive > 0) & ratio.is_finite()).then(ratio)
    return (
        joined.with_columns(
            pl.col("p_alive").fill_nan(None),
            prob.fill_nan(None).clip(0.0, 1.0),
            pl.col("predicted_clv").fill_nan(None),
            pl.lit(basis.kind).alias("churn_basis"),
        )
        .with_columns(
            label_by_bounds(prob, risk_bands).fill_null("unknown").alias("risk_band"),
            due.alias("next_purchase_due_at"),
            retained.alias("value_if_retained"),
            (retained * prob).alias("value_at_risk"),
        )
        .with_columns(
            ((pl.col("as_of") - pl.col("next_purchase_due_at")).dt.total_days())
            .clip(lower_bound=0)
            .alias("days_overdue")
        )
    )


def rank_churn(scored: pl.LazyFrame) -> pl.LazyFrame:
    """:func:`score_churn` rows (of every customer shard) plus ``churn_percentile``, ranked over
    all of them per ``as_of``, as the table: its columns, sorted by value at risk. Computed
    when called: the sort runs eagerly (inside the lazy plan it ran several times slower)."""
    prob = pl.col("churn_probability")
    out = scored.with_columns(
        (100.0 * prob.rank("max").over("as_of") / prob.count().over("as_of")).alias(
            "churn_percentile"
        )
    )
    return _by_value_at_risk(conform(out, CUSTOMER_CHURN).collect()).lazy()


def _by_value_at_risk(rows: pl.DataFrame) -> pl.DataFrame:
    """The table's order: ``as_of``, then value at risk descending (nulls last), then
    ``customer_id``. Rows that come sorted by ``as_of, customer_id`` (the day's tables do) take
    their ``customer_id`` tie-break from a stable sort on value at risk alone, then a stable
    sort on ``as_of`` when there are several: polars' sort on the three keys orders the string
    key through row encoding, 7 s at 10M customers against ~1.7 s."""
    if not rows_in_order(rows, ("as_of", "customer_id")):
        return rows.sort(
            ["as_of", "value_at_risk", "customer_id"],
            descending=[False, True, False],
            nulls_last=True,
        )
    # one chunk per column first: the streaming engine hands over ~100 chunks, and gathering
    # rows across them took twice as long
    rows = rows.rechunk().sort(
        "value_at_risk", descending=True, nulls_last=True, maintain_order=True
    )
    if rows_in_order(rows, ("as_of",)):
        return rows
    return rows.sort("as_of", maintain_order=True)
