"""Tables of the valuation stage: fitted ``model_params`` and per-customer ``customer_clv``."""

from __future__ import annotations

import polars as pl

from clv_pipeline.schema.contract import CUSTOMER_KEY, Column, Table

MODEL_PARAMS = Table(
    "model_params",
    "as_of",
    "Fitted model parameters, one row per (model, param); time unit days.",
    (
        Column("as_of", pl.Date(), "Snapshot date."),
        Column("model", pl.String(), "bgnbd, pareto_nbd, mbgnbd or gamma_gamma."),
        Column("param", pl.String(), "Parameter name (r, alpha, a, b, s, beta, p, q, v)."),
        Column("value", pl.Float64(), "Estimate (alpha and beta in days).", nullable=True),
        Column("log_likelihood", pl.Float64(), "Maximised log-likelihood.", nullable=True),
        Column("bic", pl.Float64(), "Bayesian information criterion.", nullable=True),
        Column("n_customers", pl.Int64(), "Customers in the fit.", "count"),
        Column("n_repeat_customers", pl.Int64(), "Customers with frequency > 0.", "count"),
        Column("converged", pl.Boolean(), "Optimizer converged to finite parameters."),
        Column("selected", pl.Boolean(), "This model produced customer_clv."),
    ),
)

CUSTOMER_CLV = Table(
    "customer_clv",
    "as_of",
    "Per-customer CLV: historic, seed formula and predictive (BTYD + Gamma-Gamma). Predictive "
    "columns are null, with data_sufficient = false, when no model could be fitted.",
    CUSTOMER_KEY
    + (
        Column("model", pl.String(), "Purchase model used (null when none).", nullable=True),
        Column("data_sufficient", pl.Boolean(), "A purchase model was fitted and converged."),
        Column("p_alive", pl.Float64(), "P(customer still active at as_of).", "probability", True),
        Column("churn_probability", pl.Float64(), "1 - p_alive.", "probability", True),
        Column(
            "expected_purchases",
            pl.Float64(),
            "Expected purchase-days in (as_of, as_of + horizon_days].",
            "count",
            True,
        ),
        Column(
            "prob_active_in_horizon",
            pl.Float64(),
            "P(at least one purchase in the horizon).",
            "probability",
            True,
        ),
        Column(
            "expected_avg_value",
            pl.Float64(),
            "Gamma-Gamma conditional expected spend per purchase-day.",
            "currency units",
            True,
        ),
        Column(
            "predicted_clv",
            pl.Float64(),
            "Discounted expected purchases x expected_avg_value x gross_margin over the horizon.",
            "currency units",
            True,
        ),
        Column(
            "historic_clv", pl.Float64(), "total_revenue x gross_margin to date.", "currency units"
        ),
        Column("total_clv", pl.Float64(), "historic_clv + predicted_clv.", "currency units", True),
        Column("horizon_days", pl.Float64(), "Prediction horizon.", "days"),
        Column(
            "expected_next_purchase_at",
            pl.Date(),
            "as_of + expected days to the next purchase; null when not expected within the model cap.",
            nullable=True,
        ),
        Column(
            "formula_clv",
            pl.Float64(),
            "Seed formula: aov x population purchase rate (per day) x estimated lifespan (days) "
            "x gross_margin.",
            "currency units",
        ),
    ),
)
