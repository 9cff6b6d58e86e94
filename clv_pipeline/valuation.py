"""Customer value: historic CLV, the formula CLV and predictive CLV from the BTYD models.

Formula CLV (``docs/metrics.md``; the churn period's definitions of :mod:`clv_pipeline.features.periods`)::

    formula_clv = gross_margin x window_revenue x sum_{k=1..K} (r / (1 + d))^k

* ``window_revenue``: the customer's net revenue in the churn window (the last ``W`` days; 0 for
  a customer without a purchase in it, who counts as churned in this period);
* ``r``: the period retention (of the customers who bought in the previous window, the share who
  bought in this one), ``d`` the discount rate per window, ``K = horizon_days / W``.

It is the retention-based CLV of Gupta & Lehmann (``m r / (1 + d - r)`` without a horizon) per
customer, over the same horizon and discounting as the model CLV; averaged over the customers it
is the KPI formula ``ARPU x margin x retention`` path cut at the horizon. Null when the retention
is unknown (nobody bought in the previous window).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from clv_pipeline.features.periods import PeriodRates, formula_clv_factor, period_rates
from clv_pipeline.models import TRANSACTION_MODELS, Holdout, fit_and_predict
from clv_pipeline.models.clv import ModelFit, ModelRun, customer_arrays, predict_customers
from clv_pipeline.models.diagnostics import ALL_MODELS, GROUP_FIT_CHECK, Diagnostic
from clv_pipeline.models.summary import (
    SummaryLine,
    describe_model,
    new_customer_clv,
    summary_markdown,
)
from clv_pipeline.schema import CUSTOMER_CLV, MODEL_DIAGNOSTICS, MODEL_PARAMS

#: ``fit_group`` of the fit over every customer.
ALL_GROUPS = "all"
#: ``fit_group`` of customers whose attribute is missing.
UNKNOWN_GROUP = "unknown"
#: customer_clv columns a group's own fit replaces (the rest, incl. formula CLV, are population-wide)
PREDICTIVE_COLUMNS = (
    "model",
    "data_sufficient",
    "p_alive",
    "churn_probability",
    "expected_purchases",
    "prob_active_in_horizon",
    "expected_avg_value",
    "predicted_clv",
    "total_clv",
    "expected_next_purchase_at",
)


@dataclass(frozen=True)
class Valuation:
    clv: pl.DataFrame
    params: pl.DataFrame
    selected_model: str | None
    data_sufficient: bool
    period: PeriodRates | None
    messages: tuple[str, ...]
    diagnostics: pl.DataFrame
    selection_reason: str | None = None


def holdout_split(calibration: pl.DataFrame, *, holdout_days: float) -> Holdout:
    """The :class:`~clv_pipeline.models.Holdout` of a calibration frame: one row per customer
    acquired by ``as_of - holdout_days`` with its calibration ``frequency, recency, T`` and
    ``actual_purchases`` (purchase-days) in the holdout."""
    arrays = {
        name: calibration.get_column(name).cast(pl.Float64).to_numpy()
        for name in ("frequency", "recency", "T", "actual_purchases")
    }
    return Holdout(
        frequency=arrays["frequency"],
        recency=arrays["recency"],
        T=arrays["T"],
        actual_purchases=arrays["actual_purchases"],
        holdout_days=float(holdout_days),
    )


def value_customers(
    features: pl.DataFrame,
    *,
    as_of: date,
    gross_margin: float = 1.0,
    horizon_days: float = 365.0,
    activity: pl.DataFrame | None = None,
    window_days: int = 90,
    currency: str = "",
    model_options: Mapping[str, Any] | None = None,
    holdout: pl.DataFrame | None = None,
    holdout_days: float = 90.0,
    fit: ModelFit | None = None,
) -> Valuation:
    """Fit the purchase and spend models on ``features`` and value every customer.

    ``fit``: the models already fitted over a whole customer base of which ``features`` is a
    part (one shard, :func:`~clv_pipeline.models.clv.fit_models`): only the per-customer
    predictions are computed here, and they equal the unsharded run's.

    ``model_options`` go to :func:`clv_pipeline.models.fit_and_predict` (discount rate and period,
    models, selection, penalizer, minimum customers). ``holdout`` is the calibration frame for
    ``selection="holdout"`` (:func:`holdout_split`; ``frequency, recency, T`` as of
    ``as_of - holdout_days`` and ``actual_purchases`` after it); without it the selection uses
    BIC and says so. When the data are insufficient or no model converges, the predictive
    columns are null, ``data_sufficient`` is false and the reason is in ``messages`` and the
    ``diagnostics`` frame (``model_diagnostics``); historic and formula CLV are always filled.
    """
    options = dict(model_options or {})
    discount_rate = float(options.get("discount_rate", 0.10))
    discount_period = str(options.get("discount_period", "annual"))
    period, factor, formula = formula_basis(
        activity, window_days=window_days, horizon_days=horizon_days, model_options=options
    )
    messages = [formula]
    if activity is None:
        window_revenue = pl.Series("window_revenue", [0.0] * features.height, pl.Float64)
    else:
        window_revenue = (
            features.select("customer_id")
            .join(activity, on="customer_id", how="left", maintain_order="left")
            .select(
                pl.when(pl.col("active").fill_null(False))
                .then(pl.col("window_revenue").clip(lower_bound=0.0))
                .otherwise(0.0)
                .alias("window_revenue")
            )
            .to_series()
        )
    arrays = {
        name: features.get_column(name).cast(pl.Float64).to_numpy()
        for name in ("frequency", "recency", "T", "monetary_value")
    }
    if fit is None:
        run = fit_and_predict(
            arrays["frequency"],
            arrays["recency"],
            arrays["T"],
            arrays["monetary_value"],
            horizon_days=horizon_days,
            gross_margin=gross_margin,
            holdout=None if holdout is None else holdout_split(holdout, holdout_days=holdout_days),
            **options,
        )
    else:
        run = predict_customers(
            fit,
            *customer_arrays(
                arrays["frequency"], arrays["recency"], arrays["T"], arrays["monetary_value"]
            ),
        )
    messages.extend(run.messages)
    n = features.height
    sufficient = bool(run.data_sufficient and run.selected_model is not None)

    def column(values: np.ndarray | None) -> pl.Series:
        if not sufficient or values is None:
            return pl.Series(values=[None] * n, dtype=pl.Float64)
        return pl.Series(values=np.asarray(values, dtype=np.float64))

    next_days = column(run.expected_days_to_next_purchase)
    clv = features.select(
        "customer_id",
        "as_of",
        pl.lit(run.selected_model if sufficient else None, pl.String).alias("model"),
        pl.lit(sufficient).alias("data_sufficient"),
        column(run.p_alive).alias("p_alive"),
        column(run.expected_purchases).alias("expected_purchases"),
        column(run.prob_active_in_horizon).alias("prob_active_in_horizon"),
        column(run.expected_avg_value).alias("expected_avg_value"),
        column(run.predicted_clv).alias("predicted_clv"),
        (pl.col("total_revenue") * gross_margin).alias("historic_clv"),
        pl.lit(float(horizon_days)).alias("horizon_days"),
        next_days.fill_nan(None).ceil().alias("_next_days"),
        (pl.lit(window_revenue) * gross_margin * pl.lit(factor, pl.Float64)).alias("formula_clv"),
        pl.lit(ALL_GROUPS).alias("fit_group"),
        pl.lit(window_revenue).alias("window_revenue"),
        pl.lit(float(gross_margin)).alias("gross_margin"),
        pl.lit(discount_rate).alias("discount_rate"),
        pl.lit(discount_period).alias("discount_period"),
        pl.lit(currency or None, pl.String).alias("currency"),
    ).with_columns(
        (1.0 - pl.col("p_alive")).alias("churn_probability"),
        (pl.col("historic_clv") + pl.col("predicted_clv")).alias("total_clv"),
        (pl.col("as_of") + pl.duration(days=pl.col("_next_days").cast(pl.Int64))).alias(
            "expected_next_purchase_at"
        ),
    )
    return run_valuation(
        run, clv.select(CUSTOMER_CLV.names), as_of=as_of, period=period, messages=messages
    )


def run_valuation(
    run: ModelRun,
    clv: pl.DataFrame,
    *,
    as_of: date,
    period: PeriodRates | None,
    messages: Sequence[str],
) -> Valuation:
    """The :class:`Valuation` of ``run`` (the fit over everyone) with its ``customer_clv`` rows
    ``clv``: ``model_params`` and ``model_diagnostics`` rows from the run's fits and checks."""
    sufficient = bool(run.data_sufficient and run.selected_model is not None)
    rows = run.params_rows()
    params = (
        pl.DataFrame(
            [{"as_of": as_of, **row, "fit_group": ALL_GROUPS} for row in rows],
            schema=MODEL_PARAMS.schema,
        )
        if rows
        else pl.DataFrame(schema=MODEL_PARAMS.schema)
    )
    checks = run.diagnostics_rows()
    diagnostics = pl.DataFrame(
        [{"as_of": as_of, **row, "fit_group": ALL_GROUPS} for row in checks],
        schema=MODEL_DIAGNOSTICS.schema,
    )
    return Valuation(
        clv=clv,
        params=params.with_columns(pl.col("std_error").fill_nan(None)).select(MODEL_PARAMS.names),
        selected_model=run.selected_model if sufficient else None,
        data_sufficient=sufficient,
        period=period,
        messages=tuple(messages),
        diagnostics=diagnostics.select(MODEL_DIAGNOSTICS.names),
        selection_reason=run.selection_reason,
    )


def _distrusted(valuation: Valuation) -> str | None:
    """Why a group's own fit is not trusted over the population's: its selected purchase model
    did not pass its diagnostics (None when it did, or when nothing was selected)."""
    model = valuation.selected_model
    if model is None:
        return None
    rows = valuation.params.filter(pl.col("model") == model)
    if rows.height and bool(rows["converged"].all()):
        return None
    failed = valuation.diagnostics.filter((pl.col("model") == model) & (pl.col("status") != "ok"))[
        "check"
    ].to_list()
    return f"its selected {model} did not pass its diagnostics: {', '.join(failed) or 'converged'}"


def formula_basis(
    activity: pl.DataFrame | None,
    *,
    window_days: int,
    horizon_days: float,
    model_options: Mapping[str, Any] | None = None,
) -> tuple[PeriodRates | None, float | None, str]:
    """The formula CLV's period rates over everyone in ``activity``, its factor and the
    message saying what it is (the first of :func:`value_customers`' messages)."""
    options = dict(model_options or {})
    period = None if activity is None else period_rates(activity, window_days=window_days)
    factor = formula_clv_factor(
        None if period is None else period.retention,
        window_days=window_days,
        horizon_days=horizon_days,
        discount_rate=float(options.get("discount_rate", 0.10)),
        discount_period=str(options.get("discount_period", "annual")),
    )
    return period, factor, _formula_message(period, factor)


def _formula_message(period: PeriodRates | None, factor: float | None) -> str:
    if period is None:
        return "formula CLV: no churn-period activity given"
    if factor is None:
        return (
            f"formula CLV: null, nobody bought in the previous {period.window_days}-day window "
            "(period retention unknown)"
        )
    return (
        f"formula CLV: period retention {period.retention:.1%} over {period.window_days} days "
        f"({period.retained:,} of {period.previous_active:,}), {period.active:,} customers "
        f"active; window revenue x margin x {factor:.4f}"
    )


def group_labels(groups: pl.DataFrame, features: pl.DataFrame) -> pl.DataFrame:
    """``customer_id, fit_group`` for every customer of ``features``: the group of ``groups``
    (``customer_id, group``; first row per customer), ``unknown`` when missing or empty; a group
    literally named ``all`` becomes ``group:all`` (``all`` is the fit over everyone)."""
    value = pl.col("group").cast(pl.String).str.strip_chars()
    labels = groups.select(
        pl.col("customer_id").cast(pl.String),
        pl.when(value.is_null() | (value == ""))
        .then(pl.lit(UNKNOWN_GROUP))
        .when(value == ALL_GROUPS)
        .then(pl.lit(f"group:{ALL_GROUPS}"))
        .otherwise(value)
        .alias("fit_group"),
    ).unique("customer_id", keep="first", maintain_order=True)
    return (
        features.select("customer_id")
        .join(labels, on="customer_id", how="left", maintain_order="left")
        .with_columns(pl.col("fit_group").fill_null(UNKNOWN_GROUP))
    )


def value_customers_by_group(
    features: pl.DataFrame,
    groups: pl.DataFrame,
    *,
    as_of: date,
    min_repeat_customers: int = 100,
    attribute: str = "group",
    holdout: pl.DataFrame | None = None,
    **options: Any,
) -> Valuation:
    """:func:`value_customers` over everyone, plus a fit of its own for each group with at
    least ``min_repeat_customers`` repeat customers (``frequency > 0``).

    ``groups`` maps ``customer_id`` to ``group`` (:func:`group_labels`); ``options`` are
    :func:`value_customers`' keywords. A customer's predictive columns come from their group's
    fit when the group has one whose purchase model is usable, otherwise from the fit over all
    customers (small groups borrow the population's estimates, and so do groups whose own
    selected model did not pass its diagnostics); the seed-formula CLV is always
    population-wide. ``model_params`` and ``model_diagnostics``
    hold every fit, told apart by ``fit_group``; each group has a ``group_fit`` row saying
    which fit values it and why. The backtest's holdout split is cut per group for the holdout
    selection.
    """
    overall = value_customers(features, as_of=as_of, holdout=holdout, **options)
    labels = group_labels(groups, features)
    labelled = features.with_columns(labels.get_column("fit_group"))
    sizes = (
        labelled.group_by("fit_group")
        .agg(pl.len().alias("customers"), (pl.col("frequency") > 0).sum().alias("repeat"))
        .sort("fit_group")
    )
    params = [overall.params]
    diagnostics = [overall.diagnostics]
    predictive = []
    messages = list(overall.messages)
    fitted: list[str] = []
    group_rows: list[dict[str, object]] = []
    for name, customers, repeat in sizes.iter_rows():
        members = labelled.filter(pl.col("fit_group") == name).drop("fit_group")
        where = f"{attribute} = {name!r} ({customers:,} customers, {repeat:,} repeat)"
        if repeat < min_repeat_customers:
            check = Diagnostic(
                ALL_MODELS,
                GROUP_FIT_CHECK,
                "ok",  # by design: small groups borrow the population's estimates
                float(repeat),
                float(min_repeat_customers),
                f"{where}: too few repeat customers for a fit of its own (fewer than "
                f"{min_repeat_customers:,}); valued with the fit over all customers.",
            )
            group_rows.append({**check.row(), "fit_group": name})
            continue
        own_holdout = (
            None
            if holdout is None
            else holdout.join(members.select("customer_id"), on="customer_id", how="semi")
        )
        own = value_customers(members, as_of=as_of, holdout=own_holdout, **options)
        params.append(own.params.with_columns(pl.lit(name).alias("fit_group")))
        diagnostics.append(own.diagnostics.with_columns(pl.lit(name).alias("fit_group")))
        distrust = _distrusted(own)
        if own.data_sufficient and distrust is None:
            fitted.append(name)
            predictive.append(
                own.clv.select("customer_id", *PREDICTIVE_COLUMNS).with_columns(
                    pl.lit(name).alias("fit_group")
                )
            )
            check = Diagnostic(
                ALL_MODELS,
                GROUP_FIT_CHECK,
                "ok",
                float(repeat),
                float(min_repeat_customers),
                f"{where}: fitted on its own; selected {own.selected_model}.",
            )
        else:
            reason = distrust or next((m for m in reversed(own.messages) if m), "no usable model")
            check = Diagnostic(
                ALL_MODELS,
                GROUP_FIT_CHECK,
                "warn",
                float(repeat),
                float(min_repeat_customers),
                f"{where}: its own fit is not usable ({reason}); valued with the fit over all "
                "customers.",
            )
            messages.append(f"fit_by {name!r}: {reason}")
        group_rows.append({**check.row(), "fit_group": name})
    own_fit = labels.filter(pl.col("fit_group").is_in(fitted))
    pooled = overall.clv.join(own_fit, on="customer_id", how="anti").select(
        "customer_id", *PREDICTIVE_COLUMNS, "fit_group"
    )
    clv = (
        overall.clv.drop(*PREDICTIVE_COLUMNS, "fit_group")
        .join(
            pl.concat([pooled, *predictive], how="vertical"),
            on="customer_id",
            how="left",
            maintain_order="left",
        )
        .select(CUSTOMER_CLV.names)
    )
    group_checks = pl.DataFrame(
        [{"as_of": as_of, **row} for row in group_rows], schema=MODEL_DIAGNOSTICS.schema
    )
    messages.append(
        f"fit_by {attribute}: {len(fitted)} of {sizes.height} group(s) fitted on their own "
        f"(at least {min_repeat_customers:,} repeat customers and a usable model)"
    )
    return replace(
        overall,
        clv=clv,
        params=pl.concat(params, how="vertical"),
        diagnostics=pl.concat([*diagnostics, group_checks], how="vertical").select(
            MODEL_DIAGNOSTICS.names
        ),
        messages=tuple(messages),
    )


@dataclass(frozen=True)
class ModelSummary:
    """What the selected model says, in plain words, and the CLV of a customer acquired today."""

    model: str
    lines: tuple[SummaryLine, ...]
    new_customer_clv: float | None

    def markdown(self) -> str:
        table = summary_markdown(list(self.lines))
        if self.new_customer_clv is None:
            return table
        return table + (
            f"\n| new_customer_clv | {self.new_customer_clv:,.2f} | Expected CLV of a customer "
            "acquired today (repeat purchases x expected spend x margin, discounted). |"
        )


def fit_rows(params: pl.DataFrame, fit_group: str = ALL_GROUPS) -> pl.DataFrame:
    """The ``model_params`` rows of one fit (``all`` also takes rows written before
    ``fit_group`` existed, where it is null or absent)."""
    if "fit_group" not in params.columns:
        return params if fit_group == ALL_GROUPS else params.clear()
    group = pl.col("fit_group")
    if fit_group == ALL_GROUPS:
        return params.filter(group.is_null() | (group == ALL_GROUPS))
    return params.filter(group == fit_group)


def fit_groups(params: pl.DataFrame) -> list[str]:
    """The ``models.fit_by`` groups with a fit of their own in ``model_params``, sorted."""
    if "fit_group" not in params.columns:
        return []
    names = params.get_column("fit_group").drop_nulls().unique().to_list()
    return sorted(n for n in names if n != ALL_GROUPS)


def selected_purchase_model(params: pl.DataFrame, fit_group: str = ALL_GROUPS) -> str | None:
    """The purchase model ``model_params`` marks selected for ``fit_group`` (Gamma-Gamma,
    selected alongside it, is not one); None when there is none."""
    rows = fit_rows(params, fit_group)
    chosen = sorted(
        rows.filter(pl.col("selected") & pl.col("model").is_in(list(TRANSACTION_MODELS)))[
            "model"
        ].unique()
    )
    return chosen[0] if chosen else None


#: The ``customer_features`` columns :func:`describe_fit` reads.
DESCRIBE_COLUMNS = ("customer_id", "frequency", "recency", "T")


def describe_fit(
    params: pl.DataFrame,
    features: pl.DataFrame,
    *,
    horizon_days: float,
    gross_margin: float,
    discount_rate: float,
    discount_period: Any,
    fit_group: str = ALL_GROUPS,
) -> ModelSummary | None:
    """:func:`~clv_pipeline.models.summary.describe_model` of the selected purchase model of
    ``params`` (``model_params``) over ``features`` (``customer_features``) and, with a
    Gamma-Gamma fit, :func:`~clv_pipeline.models.summary.new_customer_clv` (expected spend per
    purchase = p v / (q - 1)); None without a selected purchase model. With ``fit_group``, the
    fit of that ``models.fit_by`` group over ``features`` (pass the group's customers)."""
    params = fit_rows(params, fit_group)
    name = selected_purchase_model(params, fit_group)
    if name is None:
        return None
    values = {(r["model"], r["param"]): r["value"] for r in params.iter_rows(named=True)}
    model = TRANSACTION_MODELS[name]
    if any(values.get((name, p)) is None for p in model.param_names):
        return None
    theta = {p: float(values[(name, p)]) for p in model.param_names}
    arrays = [
        features.get_column(c).cast(pl.Float64).to_numpy() for c in ("frequency", "recency", "T")
    ]
    lines = tuple(describe_model(model, theta, *arrays))
    p, q, v = (values.get(("gamma_gamma", k)) for k in ("p", "q", "v"))
    new = None
    if p is not None and q is not None and v is not None and q > 1:
        new = new_customer_clv(
            model,
            theta,
            float(p) * float(v) / (float(q) - 1.0),
            horizon_days=horizon_days,
            discount_rate=discount_rate,
            discount_period=discount_period,
            gross_margin=gross_margin,
        )
    return ModelSummary(name, lines, new)
