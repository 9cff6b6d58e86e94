"""Customer value: historic CLV, the seed formula CLV and predictive CLV from the BTYD models.

Seed formula (documented in docs/data_contract.md)::

    formula_clv = aov x purchase_rate_per_day x lifespan_days x gross_margin

* ``purchase_rate_per_day`` = sum(n_transactions) / sum(T + 1): purchases per customer-day since
  acquisition, over the whole base;
* ``lifespan_days`` = an exponential lifetime fitted with censoring: a customer is churned when
  ``days_since_last_purchase > churn_window_days``; churned customers contribute an observed lifetime
  of ``min(T, recency + churn_window_days)`` days, active ones a censored ``T``; the maximum-likelihood
  mean lifetime is total exposure / number churned, capped at ``max_lifespan_days`` (the cap is used
  when nobody has churned yet).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from clv_pipeline.models import TRANSACTION_MODELS, Holdout, fit_and_predict
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
    lifespan_days: float
    purchase_rate_per_day: float
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


def estimate_lifespan(
    features: pl.DataFrame, *, churn_window_days: int, max_lifespan_days: float
) -> tuple[float, float]:
    """(lifespan_days, purchase_rate_per_day) for the seed formula; see the module docstring."""
    if features.is_empty():
        return max_lifespan_days, 0.0
    churned = pl.col("days_since_last_purchase") > churn_window_days
    stats = features.select(
        churned.sum().alias("n_churned"),
        pl.when(churned)
        .then(pl.min_horizontal("T", pl.col("recency") + churn_window_days))
        .otherwise(pl.col("T"))
        .sum()
        .alias("exposure"),
        pl.col("n_transactions").sum().alias("purchases"),
        (pl.col("T") + 1).sum().alias("customer_days"),
    ).row(0, named=True)
    rate = stats["purchases"] / stats["customer_days"]
    if stats["n_churned"] == 0:
        return max_lifespan_days, rate
    return min(max_lifespan_days, stats["exposure"] / stats["n_churned"]), rate


def value_customers(
    features: pl.DataFrame,
    *,
    as_of: date,
    gross_margin: float = 1.0,
    horizon_days: float = 365.0,
    churn_window_days: int = 180,
    max_lifespan_days: float = 3650.0,
    model_options: Mapping[str, Any] | None = None,
    holdout: pl.DataFrame | None = None,
    holdout_days: float = 90.0,
) -> Valuation:
    """Fit the purchase and spend models on ``features`` and value every customer.

    ``model_options`` go to :func:`clv_pipeline.models.fit_and_predict` (discount rate and period,
    models, selection, penalizer, minimum customers). ``holdout`` is the calibration frame for
    ``selection="holdout"`` (:func:`holdout_split`; ``frequency, recency, T`` as of
    ``as_of - holdout_days`` and ``actual_purchases`` after it); without it the selection uses
    BIC and says so. When the data are insufficient or no model converges, the predictive
    columns are null, ``data_sufficient`` is false and the reason is in ``messages`` and the
    ``diagnostics`` frame (``model_diagnostics``); historic and formula CLV are always filled.
    """
    lifespan, rate = estimate_lifespan(
        features, churn_window_days=churn_window_days, max_lifespan_days=max_lifespan_days
    )
    messages = [f"seed formula: lifespan {lifespan:.1f} days, purchase rate {rate:.5f}/day"]
    arrays = {
        name: features.get_column(name).cast(pl.Float64).to_numpy()
        for name in ("frequency", "recency", "T", "monetary_value")
    }
    run = fit_and_predict(
        arrays["frequency"],
        arrays["recency"],
        arrays["T"],
        arrays["monetary_value"],
        horizon_days=horizon_days,
        gross_margin=gross_margin,
        holdout=None if holdout is None else holdout_split(holdout, holdout_days=holdout_days),
        **dict(model_options or {}),
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
        (pl.col("aov") * rate * lifespan * gross_margin).alias("formula_clv"),
        pl.lit(ALL_GROUPS).alias("fit_group"),
    ).with_columns(
        (1.0 - pl.col("p_alive")).alias("churn_probability"),
        (pl.col("historic_clv") + pl.col("predicted_clv")).alias("total_clv"),
        (pl.col("as_of") + pl.duration(days=pl.col("_next_days").cast(pl.Int64))).alias(
            "expected_next_purchase_at"
        ),
    )
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
        clv=clv.select(CUSTOMER_CLV.names),
        params=params.with_columns(pl.col("std_error").fill_nan(None)).select(MODEL_PARAMS.names),
        selected_model=run.selected_model if sufficient else None,
        data_sufficient=sufficient,
        lifespan_days=lifespan,
        purchase_rate_per_day=rate,
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
