"""Tables of the valuation stage: fitted ``model_params``, their ``model_diagnostics`` and
per-customer ``customer_clv``."""

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
        Column(
            "std_error",
            pl.Float64(),
            "Standard error of the estimate from the observed information (Hessian of the "
            "negative log-likelihood in log-parameters, delta method to this scale); null when "
            "the Hessian is not positive definite (parameters not determined by the data).",
            nullable=True,
        ),
        Column("log_likelihood", pl.Float64(), "Maximised log-likelihood.", nullable=True),
        Column("bic", pl.Float64(), "Bayesian information criterion.", nullable=True),
        Column("n_customers", pl.Int64(), "Customers in the fit.", "count"),
        Column("n_repeat_customers", pl.Int64(), "Customers with frequency > 0.", "count"),
        Column(
            "converged",
            pl.Boolean(),
            "The fit can be trusted: the optimizer converged, the Hessian is positive definite "
            "and the dropout did not collapse (model_diagnostics says which failed).",
        ),
        Column("selected", pl.Boolean(), "This model produced customer_clv."),
        Column(
            "selection_reason",
            pl.String(),
            "Why the model was selected or not, in plain words (e.g. lowest holdout MAE "
            "0.754 vs bgnbd 0.786; BIC when the history is shorter than 2 x the holdout).",
            nullable=True,
        ),
        Column(
            "fit_group",
            pl.String(),
            "The customers the fit is over: all, or a value of models.fit_by (CLV_FIT_BY) "
            "whose group has its own fit. Null in snapshots written before it existed.",
            nullable=True,
        ),
    ),
)

MODEL_DIAGNOSTICS = Table(
    "model_diagnostics",
    "as_of",
    "Checks of the data and of every model fit, one row per (model, check), with a status "
    "ok | warn | fail and a plain-language message: enough repeat customers, optimizer "
    "converged, parameters at bounds, Hessian positive definite and its condition number, "
    "parameter uncertainty, degenerate dropout (P(alive) ~ 1 for everyone), finite predictions, "
    "holdout error, spend/frequency correlation and the selected model with the reason.",
    (
        Column("as_of", pl.Date(), "Snapshot date."),
        Column(
            "model",
            pl.String(),
            "bgnbd, pareto_nbd, mbgnbd, gamma_gamma, or all (checks of the data and the "
            "selected model).",
        ),
        Column(
            "check",
            pl.String(),
            "customers, repeat_customers, optimizer_converged, parameters_at_bounds, "
            "hessian_positive_definite, hessian_condition_number, parameter_uncertainty, "
            "dropout_degenerate, predictions_finite, holdout_error, "
            "spend_frequency_correlation, selected_model, group_fit, weekly_seasonality, "
            "annual_seasonality.",
        ),
        Column("status", pl.String(), "ok, warn or fail."),
        Column(
            "value",
            pl.Float64(),
            "What was measured (a count, condition number, relative standard error, dropout "
            "probability, holdout MAE in purchases per customer, correlation).",
            nullable=True,
        ),
        Column("threshold", pl.Float64(), "The limit the value was compared with.", nullable=True),
        Column("message", pl.String(), "What the check found, in plain language."),
        Column(
            "fit_group",
            pl.String(),
            "The fit the check is about: all, or a models.fit_by group (its group_fit row "
            "says whether it was fitted on its own or pooled).",
            nullable=True,
        ),
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
            "Retention-based formula CLV over horizon_days (docs/metrics.md): gross_margin x "
            "window_revenue x sum_{k=1..K} (r / (1 + d))^k, r = the period retention of the "
            "kpis row (churn window W = active_window_days), d = discount per window, K = "
            "horizon_days / W; 0 for a customer without a purchase in the window; null when "
            "nobody bought in the previous window (retention unknown).",
            "currency units",
            nullable=True,
        ),
        Column(
            "fit_group",
            pl.String(),
            "The fit that produced the predictive columns: all (every customer together), or "
            "the customer's models.fit_by group when it has a usable fit of its own.",
            nullable=True,
        ),
        Column(
            "window_revenue",
            pl.Float64(),
            "Net revenue (purchases + refunds) in the churn window, the last active_window_days "
            "days up to as_of; 0 without a purchase in it (floored at 0). Input of formula_clv.",
            "currency units",
            nullable=True,
        ),
        Column(
            "gross_margin",
            pl.Float64(),
            "Margin applied to every CLV column (models.gross_margin, CLV_GROSS_MARGIN); 1.0 = "
            "the CLV columns are revenue, not margin.",
            "share",
            nullable=True,
        ),
        Column(
            "discount_rate",
            pl.Float64(),
            "Discount rate of predicted_clv and formula_clv, per discount_period.",
            "rate",
            nullable=True,
        ),
        Column(
            "discount_period",
            pl.String(),
            "Period of discount_rate: annual or monthly.",
            nullable=True,
        ),
        Column(
            "currency",
            pl.String(),
            "ISO code of the amounts (report.currency, CLV_CURRENCY, or the only accepted "
            "validation currency); null when not set (the transactions' currency units).",
            nullable=True,
        ),
    ),
)
