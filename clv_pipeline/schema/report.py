"""Tables of the report stage: the out-of-time backtest (:mod:`clv_pipeline.report.backtest`).

* :data:`MODEL_BACKTEST` — long format, one row per (model, metric) for an ``as_of``.
* :data:`BACKTEST_DECILES` — predicted vs actual holdout purchases by decile of prediction.
* :data:`BACKTEST_CALIBRATION` — mean predicted vs actual holdout purchases by calibration
  frequency (0 .. 7+), the classic "calibration vs holdout" chart.

Definitions of every metric (formula, unit, which direction is better) are in ``docs/models.md``
("Backtest metrics"); the procedure is in ``docs/report.md``.
"""

from __future__ import annotations

import polars as pl

from clv_pipeline.schema.contract import Column, Table

_AS_OF = Column(
    "as_of", pl.Date(), "Snapshot date: the holdout period ends here (event_date <= as_of)."
)
_CAL_END = Column(
    "calibration_end",
    pl.Date(),
    "as_of - holdout_days: last day of the calibration period (features and fits).",
)
_HOLDOUT = Column("holdout_days", pl.Int64(), "Length of the holdout period.", "days")
_MODEL = Column(
    "model",
    pl.String(),
    "bgnbd, pareto_nbd (each with Gamma-Gamma) or baseline_rate (named baseline before 2026-12).",
)

#: The benchmark rows of ``model_backtest``: the naive "last-period rate" and predict-zero.
BACKTEST_BASELINES: tuple[str, ...] = ("baseline_rate", "baseline_zero")

#: Every metric name in ``model_backtest`` (in output order).
BACKTEST_METRICS: tuple[str, ...] = (
    "purchases_mae",
    "purchases_rmse",
    "purchases_predicted_total",
    "purchases_actual_total",
    "purchases_total_error_pct",
    "purchases_spearman",
    "purchases_auc",
    "value_mae",
    "value_rmse",
    "value_predicted_total",
    "value_actual_total",
    "value_gini",
    "p_alive_auc",
)

MODEL_BACKTEST = Table(
    "model_backtest",
    "as_of",
    "Out-of-time backtest: fit on history up to as_of - holdout_days, predict the holdout, "
    "compare with what calibration customers actually did; BTYD models vs two baselines, "
    "baseline_rate and baseline_zero, with each model's lift against the better baseline on "
    "every metric (long format; metric definitions in docs/models.md). Changed 2026-12: the "
    "baseline rows are named baseline_rate (was baseline) and baseline_zero (new); churn_auc "
    "became p_alive_auc (models only); purchases_auc, best_baseline and lift_vs_best_baseline "
    "are new.",
    (
        _AS_OF,
        _CAL_END,
        _HOLDOUT,
        Column(
            "model",
            pl.String(),
            "bgnbd, pareto_nbd (each with Gamma-Gamma), baseline_rate (the customer's repeat "
            "purchase rate carried forward; named baseline before 2026-12) or baseline_zero "
            "(predicts 0 purchases and 0 value).",
        ),
        Column(
            "data_sufficient",
            pl.Boolean(),
            "The model could be fitted and predicted (always true for the baselines with "
            "customers).",
        ),
        Column("metric", pl.String(), "Metric name (see BACKTEST_METRICS / docs/report.md)."),
        Column(
            "value",
            pl.Float64(),
            "Metric value; null when undefined (insufficient data, no variation), never NaN.",
            nullable=True,
        ),
        Column(
            "n_customers",
            pl.Int64(),
            "Calibration customers evaluated (a hash sample above CLV_BACKTEST_MAX_CUSTOMERS).",
            "count",
        ),
        Column(
            "note",
            pl.String(),
            "Why value is null (or the model's data-sufficiency message); null otherwise.",
            nullable=True,
        ),
        Column(
            "best_baseline",
            pl.String(),
            "The better baseline on this metric (lower error, higher ranking score; "
            "baseline_rate on a tie); null for totals, or when no baseline has a value.",
            nullable=True,
        ),
        Column(
            "lift_vs_best_baseline",
            pl.Float64(),
            "Error metrics: 1 - abs(value) / abs(best baseline's value), the share of the best "
            "baseline's error removed (> 0 = better); ranking metrics (Spearman, Gini, AUC): "
            "value - best baseline's value, in points (> 0 = better); null for totals or when "
            "either side is null.",
            nullable=True,
        ),
    ),
)

BACKTEST_DECILES = Table(
    "backtest_deciles",
    "as_of",
    "Mean predicted vs actual holdout purchases and value per decile of predicted purchases "
    "(decile 1 = highest predictions).",
    (
        _AS_OF,
        _HOLDOUT,
        _MODEL,
        Column("decile", pl.Int64(), "1 (top 10% of predictions) .. 10 (bottom 10%)."),
        Column("customers", pl.Int64(), "Customers in the decile.", "count"),
        Column(
            "predicted_purchases", pl.Float64(), "Mean predicted holdout purchase-days.", "count"
        ),
        Column("actual_purchases", pl.Float64(), "Mean actual holdout purchase-days.", "count"),
        Column(
            "predicted_value",
            pl.Float64(),
            "Mean predicted holdout value; null when the spend model is unavailable.",
            "currency units",
            True,
        ),
        Column(
            "actual_value",
            pl.Float64(),
            "Mean actual holdout purchase revenue (gross).",
            "currency units",
        ),
    ),
)

BACKTEST_CALIBRATION = Table(
    "backtest_calibration",
    "as_of",
    "Calibration vs holdout: mean predicted and actual holdout purchase-days by calibration "
    "frequency (repeat purchase-days), the last bucket open-ended (e.g. 7+).",
    (
        _AS_OF,
        _HOLDOUT,
        _MODEL,
        Column(
            "frequency",
            pl.Int64(),
            "Calibration frequency bucket 0 .. max_frequency (the last bucket means '>=').",
            "count",
        ),
        Column("frequency_label", pl.String(), "Bucket label: '0', '1', ..., '7+'."),
        Column("customers", pl.Int64(), "Customers in the bucket.", "count"),
        Column(
            "predicted_purchases", pl.Float64(), "Mean predicted holdout purchase-days.", "count"
        ),
        Column("actual_purchases", pl.Float64(), "Mean actual holdout purchase-days.", "count"),
    ),
)

REPORT_TABLES: dict[str, Table] = {
    t.name: t for t in (MODEL_BACKTEST, BACKTEST_DECILES, BACKTEST_CALIBRATION)
}
