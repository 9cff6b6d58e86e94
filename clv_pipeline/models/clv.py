r"""Discounted customer lifetime value, model selection and the pipeline entry point.

CLV over a horizon :math:`H` (days) is computed in **monthly steps** of
:math:`\Delta = 365.25/12 = 30.4375` days (the last step is truncated at :math:`H`):

.. math::
    \mathrm{CLV}_i = \text{margin}\times E[M_i]\times\sum_{k=1}^{K}
        \frac{E[X_i(t_k)] - E[X_i(t_{k-1})]}{(1+d)^{t_k/P}},\qquad
    t_k = \min(k\Delta, H),\ K = \lceil H/\Delta\rceil,

where :math:`E[X_i(t)]` is the model's conditional expected number of purchases in
:math:`(T_i, T_i+t]`, :math:`E[M_i]` the Gamma-Gamma expected average transaction value,
:math:`d` the discount rate per period and :math:`P` the period length in days
(``"annual"``: 365.25, ``"monthly"``: 30.4375). Each step's purchases are discounted at the
step *end*. A smaller ``step_days`` approaches continuous discounting
:math:`\int_0^H e^{-\delta t}\,dE[X(t)]` with :math:`\delta=\log(1+d)/P`. With
:math:`d = 0` the sum telescopes to :math:`E[X(H)]`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from clv_pipeline.models import gamma_gamma
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
from clv_pipeline.models.mbgnbd import MODEL as MBGNBD
from clv_pipeline.models.pareto_nbd import MODEL as PARETO_NBD

#: Days per year and per month used for discounting and CLV steps.
DAYS_PER_YEAR = 365.25
DAYS_PER_MONTH = DAYS_PER_YEAR / 12.0

#: Transaction models available to :func:`fit_and_predict`.
TRANSACTION_MODELS: dict[str, TransactionModel] = {
    BGNBD.name: BGNBD,
    PARETO_NBD.name: PARETO_NBD,
    MBGNBD.name: MBGNBD,
}

#: |corr(frequency, monetary_value)| above which the Gamma-Gamma independence assumption
#: is reported as questionable.
GG_CORR_WARN = 0.3

DiscountPeriod = Literal["annual", "monthly"]


def discount_schedule(
    horizon_days: float,
    *,
    discount_rate: float = 0.10,
    discount_period: DiscountPeriod = "annual",
    step_days: float = DAYS_PER_MONTH,
) -> tuple[FloatArray, FloatArray]:
    """Step end times ``t_k`` (days) and discount factors ``(1+d)^(-t_k / P)``.

    Raises
    ------
    ValueError
        For a non-positive horizon/step, a negative rate or an unknown period.
    """
    if not math.isfinite(horizon_days) or horizon_days <= 0:
        raise ValueError("horizon_days must be a finite number > 0")
    if not math.isfinite(step_days) or step_days <= 0:
        raise ValueError("step_days must be a finite number > 0")
    if not math.isfinite(discount_rate) or discount_rate < 0:
        raise ValueError("discount_rate must be a finite number >= 0")
    if discount_period == "annual":
        period = DAYS_PER_YEAR
    elif discount_period == "monthly":
        period = DAYS_PER_MONTH
    else:
        raise ValueError(f"discount_period must be 'annual' or 'monthly', got {discount_period!r}")
    n_steps = max(1, math.ceil(horizon_days / step_days - 1e-9))
    ends = np.minimum(np.arange(1, n_steps + 1) * step_days, horizon_days)
    factors = np.power(1.0 + discount_rate, -ends / period)
    return ends, factors


def discounted_expected_purchases(
    model: TransactionModel,
    params: Params,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    *,
    horizon_days: float = 365.0,
    discount_rate: float = 0.10,
    discount_period: DiscountPeriod = "annual",
    step_days: float = DAYS_PER_MONTH,
) -> FloatArray:
    r""":math:`\sum_k (E[X(t_k)] - E[X(t_{k-1})])(1+d)^{-t_k/P}` per customer."""
    ends, factors = discount_schedule(
        horizon_days,
        discount_rate=discount_rate,
        discount_period=discount_period,
        step_days=step_days,
    )
    x, tx, t_obs = validate_rft(frequency, recency, T)
    return _discounted_and_total(model, params, x, tx, t_obs, ends, factors, discount_rate)[0]


def _discounted_and_total(
    model: TransactionModel,
    params: Params,
    x: FloatArray,
    tx: FloatArray,
    t_obs: FloatArray,
    ends: FloatArray,
    factors: FloatArray,
    discount_rate: float,
) -> tuple[FloatArray, FloatArray]:
    """(discounted expected purchases, expected purchases over the whole horizon).

    The model evaluates its expensive terms once for all step ends
    (:meth:`~clv_pipeline.models.base.TransactionModel.expected_purchases_curve`); without
    discounting the increments telescope, so only the horizon itself is evaluated.
    """
    if discount_rate == 0:
        ends, factors = ends[-1:], factors[-1:]
    curve = model.expected_purchases_curve(params, x, tx, t_obs, horizons=[float(e) for e in ends])
    total = np.zeros(x.shape[0])
    prev = np.zeros(x.shape[0])
    for cur, factor in zip(curve, factors, strict=True):
        total += (cur - prev) * factor
        prev = cur
    return total, prev


def predicted_clv(
    model: TransactionModel,
    params: Params,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    expected_avg_value: ArrayLike,
    *,
    horizon_days: float = 365.0,
    discount_rate: float = 0.10,
    discount_period: DiscountPeriod = "annual",
    gross_margin: float = 1.0,
    step_days: float = DAYS_PER_MONTH,
) -> FloatArray:
    """Discounted CLV per customer (see module docstring for the formula).

    ``expected_avg_value`` is typically
    :func:`clv_pipeline.models.gamma_gamma.expected_avg_value`; the result is in its
    monetary unit times ``gross_margin``.
    """
    if not math.isfinite(gross_margin) or gross_margin < 0:
        raise ValueError("gross_margin must be a finite number >= 0")
    value = as_float_array(expected_avg_value, "expected_avg_value")
    dep = discounted_expected_purchases(
        model,
        params,
        frequency,
        recency,
        T,
        horizon_days=horizon_days,
        discount_rate=discount_rate,
        discount_period=discount_period,
        step_days=step_days,
    )
    if value.shape != dep.shape:
        raise ValueError("expected_avg_value must have one value per customer")
    return np.asarray(dep * value * gross_margin)


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


def fit_and_predict(
    frequency: np.ndarray,
    recency: np.ndarray,
    T: np.ndarray,
    monetary_value: np.ndarray,
    *,
    horizon_days: float = 365.0,
    discount_rate: float = 0.10,
    discount_period: Literal["annual", "monthly"] = "annual",
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
    discount_schedule(horizon_days, discount_rate=discount_rate, discount_period=discount_period)
    x, tx, t_obs = validate_rft(frequency, recency, T)
    m = as_float_array(monetary_value, "monetary_value")
    if m.shape != x.shape:
        raise ValueError(
            f"monetary_value must have the same length as frequency, got {m.shape[0]} "
            f"and {x.shape[0]}"
        )
    if np.any(m < 0):
        raise ValueError("monetary_value must be >= 0")

    messages: list[str] = []
    n = int(x.shape[0])
    n_rep = int(np.count_nonzero(x > 0))
    if n == 0:
        return _insufficient(["no customers: predictive CLV disabled"], [], None)
    corr = _spend_correlation(x, m, messages)
    if n < min_customers:
        messages.append(f"only {n} customers (< {min_customers}): predictive CLV disabled")
    if n_rep < min_repeat_customers:
        messages.append(
            f"only {n_rep} repeat customers (< {min_repeat_customers}): predictive CLV disabled"
        )
    if n_rep == 0 and min_repeat_customers == 0:
        messages.append("no repeat customers: models cannot be fitted")
    if n < min_customers or n_rep < min_repeat_customers or n_rep == 0:
        return _insufficient(messages, [], corr)

    pat = Patterns.from_arrays(x, tx, t_obs)
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

    keep = (x > 0) & (m > 0)
    gg_fit: FitResult | None = None
    if np.any(keep):
        try:
            gg_fit = gamma_gamma.fit(x[keep], m[keep], penalizer=penalizer)
        except ValueError as exc:
            messages.append(f"gamma_gamma fit failed: {exc}")
    else:
        messages.append("no repeat customer with monetary_value > 0: Gamma-Gamma not fitted")

    fits = [dataclasses.replace(f, selected=chosen is not None and f is chosen) for f in fits]
    if gg_fit is not None:
        fits.append(gg_fit)
        if not gg_fit.converged:
            messages.append(f"gamma_gamma did not converge: {gg_fit.message}")
    if chosen is None:
        what = "no model converged" if selection == "bic" else f"{selection} did not converge"
        messages.append(f"{what}: predictive CLV disabled")
        return _insufficient(messages, fits, corr)
    messages.append(f"selected {chosen.model} (BIC {chosen.bic:.1f})")

    model = TRANSACTION_MODELS[chosen.model]
    params = chosen.params
    px, ptx, pT = pat.x, pat.tx, pat.T
    inv = pat.inverse
    with np.errstate(all="ignore"):
        p_alive = model.probability_alive(params, px, ptx, pT)[inv]
        ends, factors = discount_schedule(
            horizon_days, discount_rate=discount_rate, discount_period=discount_period
        )
        disc_pat, exp_purch = _discounted_and_total(
            model, params, px, ptx, pT, ends, factors, discount_rate
        )
        disc = disc_pat[inv]
        prob_active = model.purchase_probability(params, px, ptx, pT, horizon_days=horizon_days)
        days_next = (
            model.expected_days_to_next_purchase(params, px, ptx, pT)[inv]
            if next_purchase
            else None
        )
    avg_value: FloatArray | None = None
    clv: FloatArray | None = None
    if gg_fit is not None and gg_fit.converged:
        avg_value = gamma_gamma.expected_avg_value(gg_fit.params, x, m)
        if not np.all(np.isfinite(avg_value)):
            fallback = float(np.mean(m[keep]))
            messages.append(
                "Gamma-Gamma q <= 1 (population mean spend undefined): customers without "
                f"repeat purchases get the observed mean repeat spend {fallback:.4g}"
            )
            avg_value = np.where(np.isfinite(avg_value), avg_value, fallback)
        clv = disc * avg_value * gross_margin
        fits = [dataclasses.replace(f, selected=True) if f is gg_fit else f for f in fits]
    else:
        messages.append("expected_avg_value and predicted_clv unavailable (Gamma-Gamma failed)")
    arrays = [p_alive, exp_purch[inv], prob_active[inv]]
    if not all(np.all(np.isfinite(a)) for a in arrays):
        messages.append(f"{chosen.model} produced non-finite predictions: disabled")
        return _insufficient(messages, fits, corr)
    return ModelRun(
        selected_model=chosen.model,
        data_sufficient=True,
        messages=messages,
        fits=fits,
        gamma_gamma_corr=corr,
        p_alive=p_alive,
        expected_purchases=exp_purch[inv],
        prob_active_in_horizon=prob_active[inv],
        expected_avg_value=avg_value,
        predicted_clv=clv,
        expected_days_to_next_purchase=days_next,
        horizon_days=float(horizon_days),
    )
