"""Model selection and the pipeline entry point :func:`fit_and_predict`.

:func:`fit_and_predict` fits the transaction models on weighted unique patterns, selects one
by BIC (or a forced choice), fits the Gamma-Gamma spend model and predicts per customer; the
discounted CLV formula is in :mod:`clv_pipeline.models.discount`. Time unit: days.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from clv_pipeline.models.base import (
    FitResult,
    FloatArray,
    Params,
    Patterns,
    TransactionModel,
    as_float_array,
    validate_rft,
)
from clv_pipeline.models.bgnbd import MODEL as BGNBD
from clv_pipeline.models.discount import (
    DiscountPeriod,
    discount_schedule,
    discounted_purchases_and_total,
)
from clv_pipeline.models.gamma_gamma import MODEL as GAMMA_GAMMA
from clv_pipeline.models.mbgnbd import MODEL as MBGNBD
from clv_pipeline.models.pareto_nbd import MODEL as PARETO_NBD

#: Transaction models available to :func:`fit_and_predict`.
TRANSACTION_MODELS: dict[str, TransactionModel] = {
    BGNBD.name: BGNBD,
    PARETO_NBD.name: PARETO_NBD,
    MBGNBD.name: MBGNBD,
}

#: |corr(frequency, monetary_value)| above which the Gamma-Gamma independence assumption
#: is reported as questionable.
GG_CORR_WARN = 0.3


@dataclasses.dataclass(frozen=True)
class ModelRun:
    """Everything :func:`fit_and_predict` produces.

    Per-customer arrays are float64, in input order, or ``None`` when they could not be
    computed (insufficient data, no converged fit; ``messages`` says why). They never
    contain NaN except ``expected_days_to_next_purchase`` (NaN = one purchase is not
    expected within ``max_days``, i.e. no next-purchase date).
    """

    selected_model: str | None
    data_sufficient: bool
    messages: list[str]
    fits: list[FitResult]
    gamma_gamma_corr: float | None
    p_alive: FloatArray | None
    expected_purchases: FloatArray | None
    prob_active_in_horizon: FloatArray | None
    expected_avg_value: FloatArray | None
    predicted_clv: FloatArray | None
    expected_days_to_next_purchase: FloatArray | None
    horizon_days: float = 365.0

    def params_rows(self) -> list[dict[str, Any]]:
        """One row per (model, parameter) for persisting fitted parameters."""
        return [
            {
                "model": f.model,
                "param": name,
                "value": value,
                "log_likelihood": f.log_likelihood,
                "bic": f.bic,
                "n_customers": f.n_customers,
                "n_repeat_customers": f.n_repeat_customers,
                "converged": f.converged,
                "selected": f.selected,
            }
            for f in self.fits
            for name, value in f.params.items()
        ]


def _insufficient(messages: list[str], fits: list[FitResult], corr: float | None) -> ModelRun:
    return ModelRun(
        selected_model=None,
        data_sufficient=False,
        messages=messages,
        fits=fits,
        gamma_gamma_corr=corr,
        p_alive=None,
        expected_purchases=None,
        prob_active_in_horizon=None,
        expected_avg_value=None,
        predicted_clv=None,
        expected_days_to_next_purchase=None,
    )


def _check_options(
    models: Sequence[str],
    selection: str,
    horizon_days: float,
    gross_margin: float,
    penalizer: float,
    min_customers: int,
    min_repeat_customers: int,
) -> list[str]:
    if isinstance(models, str):
        models = [models]
    names = list(dict.fromkeys(models))
    unknown = [m for m in names if m not in TRANSACTION_MODELS]
    if unknown or not names:
        raise ValueError(
            f"models must be a non-empty subset of {sorted(TRANSACTION_MODELS)}, got {models!r}"
        )
    if selection != "bic" and selection not in TRANSACTION_MODELS:
        raise ValueError(
            f"selection must be 'bic' or one of {sorted(TRANSACTION_MODELS)}, got {selection!r}"
        )
    if selection != "bic" and selection not in names:
        names.append(selection)
    if not math.isfinite(horizon_days) or horizon_days <= 0:
        raise ValueError("horizon_days must be a finite number > 0")
    if not math.isfinite(gross_margin) or gross_margin < 0:
        raise ValueError("gross_margin must be a finite number >= 0")
    if not math.isfinite(penalizer) or penalizer < 0:
        raise ValueError("penalizer must be a finite number >= 0")
    if min_customers < 0 or min_repeat_customers < 0:
        raise ValueError("min_customers and min_repeat_customers must be >= 0")
    return names


def _safe_fit(model: TransactionModel, pat: Patterns, penalizer: float) -> FitResult:
    try:
        return model.fit([], [], [], penalizer=penalizer, patterns=pat)
    except (ValueError, FloatingPointError, ArithmeticError) as exc:
        nan = math.nan
        return FitResult(
            model=model.name,
            params={k: nan for k in model.param_names},
            log_likelihood=nan,
            bic=nan,
            n_params=len(model.param_names),
            n_customers=round(pat.n_customers),
            n_repeat_customers=round(pat.n_repeat),
            converged=False,
            message=f"fit failed: {exc}",
        )


def _spend_correlation(x: FloatArray, m: FloatArray, messages: list[str]) -> float | None:
    rep = x > 0
    if np.count_nonzero(rep) < 3:
        return None
    xr, mr = x[rep], m[rep]
    if np.ptp(xr) == 0 or np.ptp(mr) == 0:
        messages.append("frequency/monetary correlation undefined (no variation)")
        return None
    corr = float(np.corrcoef(xr, mr)[0, 1])
    if abs(corr) > GG_CORR_WARN:
        messages.append(
            f"Gamma-Gamma assumes spend independent of frequency, but "
            f"corr(frequency, monetary_value) = {corr:.2f} (|corr| > {GG_CORR_WARN})"
        )
    return corr


# --------------------------------------------------------------------------------------
# Steps of fit_and_predict
# --------------------------------------------------------------------------------------
def _validate_data(
    frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, monetary_value: np.ndarray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Validated copies ``(x, t_x, T, m)`` (``ValueError`` naming the violated rule)."""
    x, tx, t_obs = validate_rft(frequency, recency, T)
    m = as_float_array(monetary_value, "monetary_value")
    if m.shape != x.shape:
        raise ValueError(
            f"monetary_value must have the same length as frequency, got {m.shape[0]} "
            f"and {x.shape[0]}"
        )
    if np.any(m < 0):
        raise ValueError("monetary_value must be >= 0")
    return x, tx, t_obs, m


def _data_sufficient(
    x: FloatArray, min_customers: int, min_repeat_customers: int, messages: list[str]
) -> bool:
    """Whether there are enough (repeat) customers to fit; appends the reasons if not."""
    n = int(x.shape[0])
    n_rep = int(np.count_nonzero(x > 0))
    if n < min_customers:
        messages.append(f"only {n} customers (< {min_customers}): predictive CLV disabled")
    if n_rep < min_repeat_customers:
        messages.append(
            f"only {n_rep} repeat customers (< {min_repeat_customers}): predictive CLV disabled"
        )
    if n_rep == 0 and min_repeat_customers == 0:
        messages.append("no repeat customers: models cannot be fitted")
    return not (n < min_customers or n_rep < min_repeat_customers or n_rep == 0)


def _fit_candidates(
    pat: Patterns, names: list[str], selection: str, penalizer: float, messages: list[str]
) -> tuple[list[FitResult], FitResult | None]:
    """Fit every candidate transaction model and select one: the converged fit with the
    lowest BIC, or the forced ``selection`` if it converged. Returns all fits (the chosen
    one marked ``selected``) and the chosen fit (``None`` if there is none)."""
    with np.errstate(all="ignore"):
        fits = [_safe_fit(TRANSACTION_MODELS[name], pat, penalizer) for name in names]
    for f in fits:
        if not f.converged:
            messages.append(f"{f.model} did not converge: {f.message}")
    ok = [f for f in fits if f.converged and math.isfinite(f.bic)]
    chosen: FitResult | None
    if selection == "bic":
        chosen = min(ok, key=lambda f: f.bic) if ok else None
    else:
        chosen = next((f for f in ok if f.model == selection), None)
    fits = [dataclasses.replace(f, selected=chosen is not None and f is chosen) for f in fits]
    return fits, next((f for f in fits if f.selected), None)


def _fit_spend(
    x: FloatArray, m: FloatArray, keep: NDArray[np.bool_], penalizer: float, messages: list[str]
) -> FitResult | None:
    """Gamma-Gamma fit on the ``keep`` customers (repeat, spend > 0), or ``None`` (with a
    message) when there are none or the fit raised."""
    if not np.any(keep):
        messages.append("no repeat customer with monetary_value > 0: Gamma-Gamma not fitted")
        return None
    try:
        return GAMMA_GAMMA.fit(x[keep], m[keep], penalizer=penalizer)
    except ValueError as exc:
        messages.append(f"gamma_gamma fit failed: {exc}")
        return None


@dataclasses.dataclass(frozen=True)
class _Purchases:
    """Purchase predictions of the selected model per customer (input order)."""

    p_alive: FloatArray
    expected: FloatArray
    prob_active: FloatArray
    discounted: FloatArray
    days_next: FloatArray | None


def _predict_purchases(
    model: TransactionModel,
    params: Params,
    pat: Patterns,
    schedule: tuple[FloatArray, FloatArray],
    *,
    discount_rate: float,
    horizon_days: float,
    next_purchase: bool,
) -> _Purchases:
    """Predictions computed once per unique pattern and scattered back to the customers;
    ``schedule`` is :func:`~clv_pipeline.models.discount.discount_schedule`'s output."""
    px, ptx, pT = pat.x, pat.tx, pat.T
    inv = pat.inverse
    ends, factors = schedule
    with np.errstate(all="ignore"):
        p_alive = model.probability_alive(params, px, ptx, pT)[inv]
        disc_pat, exp_purch = discounted_purchases_and_total(
            model, params, px, ptx, pT, ends, factors, discount_rate
        )
        prob_active = model.purchase_probability(params, px, ptx, pT, horizon_days=horizon_days)
        days_next = (
            model.expected_days_to_next_purchase(params, px, ptx, pT)[inv]
            if next_purchase
            else None
        )
    return _Purchases(
        p_alive=p_alive,
        expected=exp_purch[inv],
        prob_active=prob_active[inv],
        discounted=disc_pat[inv],
        days_next=days_next,
    )


def _expected_spend(
    params: Params, x: FloatArray, m: FloatArray, keep: NDArray[np.bool_], messages: list[str]
) -> FloatArray:
    """Gamma-Gamma expected spend per customer. Fallback: where it is undefined (q <= 1,
    customers without repeat purchases) the observed mean spend of the ``keep`` customers."""
    avg_value = GAMMA_GAMMA.expected_customer_spend(params, x, m)
    if not np.all(np.isfinite(avg_value)):
        fallback = float(np.mean(m[keep]))
        messages.append(
            "Gamma-Gamma q <= 1 (population mean spend undefined): customers without "
            f"repeat purchases get the observed mean repeat spend {fallback:.4g}"
        )
        avg_value = np.where(np.isfinite(avg_value), avg_value, fallback)
    return avg_value


def _assemble(
    selected: str,
    purchases: _Purchases,
    avg_value: FloatArray | None,
    clv: FloatArray | None,
    *,
    messages: list[str],
    fits: list[FitResult],
    corr: float | None,
    horizon_days: float,
) -> ModelRun:
    """The final :class:`ModelRun`, or the disabled one if a purchase column is not finite."""
    arrays = [purchases.p_alive, purchases.expected, purchases.prob_active]
    if not all(np.all(np.isfinite(a)) for a in arrays):
        messages.append(f"{selected} produced non-finite predictions: disabled")
        return _insufficient(messages, fits, corr)
    return ModelRun(
        selected_model=selected,
        data_sufficient=True,
        messages=messages,
        fits=fits,
        gamma_gamma_corr=corr,
        p_alive=purchases.p_alive,
        expected_purchases=purchases.expected,
        prob_active_in_horizon=purchases.prob_active,
        expected_avg_value=avg_value,
        predicted_clv=clv,
        expected_days_to_next_purchase=purchases.days_next,
        horizon_days=float(horizon_days),
    )


def fit_and_predict(
    frequency: np.ndarray,
    recency: np.ndarray,
    T: np.ndarray,
    monetary_value: np.ndarray,
    *,
    horizon_days: float = 365.0,
    discount_rate: float = 0.10,
    discount_period: DiscountPeriod = "annual",
    gross_margin: float = 1.0,
    models: Sequence[str] = ("bgnbd", "pareto_nbd"),
    selection: str = "bic",
    penalizer: float = 0.0,
    min_customers: int = 50,
    min_repeat_customers: int = 20,
    next_purchase: bool = True,
) -> ModelRun:
    """Fit transaction + spend models, select one and predict per customer.

    Steps: validate input (``ValueError`` with a clear message on length mismatch,
    non-finite, negative values, ``recency > T``, non-integer frequency, or bad options);
    check data sufficiency (``min_customers``, ``min_repeat_customers``); fit every model in
    ``models`` on weighted unique patterns; select the converged fit with the lowest BIC
    (or the forced ``selection``); fit Gamma-Gamma on repeat customers with spend > 0;
    predict per customer over ``horizon_days`` (time unit: days).

    When data is insufficient or no fit converged, ``data_sufficient`` is False,
    ``selected_model`` None and every per-customer array None (never NaN-filled); the
    reasons are in ``messages``. If only Gamma-Gamma fails, the purchase predictions are
    kept and ``expected_avg_value``/``predicted_clv`` are None. ``next_purchase=False`` skips
    ``expected_days_to_next_purchase`` (a root search per pattern; None in the result).
    """
    names = _check_options(
        models,
        selection,
        horizon_days,
        gross_margin,
        penalizer,
        min_customers,
        min_repeat_customers,
    )
    schedule = discount_schedule(
        horizon_days, discount_rate=discount_rate, discount_period=discount_period
    )
    x, tx, t_obs, m = _validate_data(frequency, recency, T, monetary_value)
    if x.shape[0] == 0:
        return _insufficient(["no customers: predictive CLV disabled"], [], None)
    messages: list[str] = []
    corr = _spend_correlation(x, m, messages)
    if not _data_sufficient(x, min_customers, min_repeat_customers, messages):
        return _insufficient(messages, [], corr)

    # fit the candidates and the spend model; no selected model -> disabled
    pat = Patterns.from_arrays(x, tx, t_obs)
    fits, chosen = _fit_candidates(pat, names, selection, penalizer, messages)
    keep = (x > 0) & (m > 0)
    gg_fit = _fit_spend(x, m, keep, penalizer, messages)
    if gg_fit is not None:
        fits.append(gg_fit)
        if not gg_fit.converged:
            messages.append(f"gamma_gamma did not converge: {gg_fit.message}")
    if chosen is None:
        what = "no model converged" if selection == "bic" else f"{selection} did not converge"
        messages.append(f"{what}: predictive CLV disabled")
        return _insufficient(messages, fits, corr)
    messages.append(f"selected {chosen.model} (BIC {chosen.bic:.1f})")

    # predict the columns; without a converged spend model the value columns stay None
    purchases = _predict_purchases(
        TRANSACTION_MODELS[chosen.model],
        chosen.params,
        pat,
        schedule,
        discount_rate=discount_rate,
        horizon_days=horizon_days,
        next_purchase=next_purchase,
    )
    avg_value: FloatArray | None = None
    clv: FloatArray | None = None
    if gg_fit is not None and gg_fit.converged:
        avg_value = _expected_spend(gg_fit.params, x, m, keep, messages)
        clv = purchases.discounted * avg_value * gross_margin
        fits = [dataclasses.replace(f, selected=True) if f is gg_fit else f for f in fits]
    else:
        messages.append("expected_avg_value and predicted_clv unavailable (Gamma-Gamma failed)")
    return _assemble(
        chosen.model,
        purchases,
        avg_value,
        clv,
        messages=messages,
        fits=fits,
        corr=corr,
        horizon_days=horizon_days,
    )
