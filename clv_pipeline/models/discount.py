r"""Discounted customer lifetime value over a horizon, for any transaction model.

CLV over a horizon :math:`H` (days) is computed in **monthly steps** of
:math:`\Delta = 365.25/12 = 30.4375` days (the last step is truncated at :math:`H`):

.. math::
    \mathrm{CLV}_i = \text{margin}\times E[M_i]\times\sum_{k=1}^{K}
        \frac{E[X_i(t_k)] - E[X_i(t_{k-1})]}{(1+d)^{t_k/P}},\qquad
    t_k = \min(k\Delta, H),\ K = \lceil H/\Delta\rceil,

where :math:`E[X_i(t)]` is the model's conditional expected number of purchases in
:math:`(T_i, T_i+t]`, :math:`E[M_i]` the Gamma-Gamma expected average transaction value
(:meth:`~clv_pipeline.models.gamma_gamma.GammaGammaModel.expected_customer_spend`),
:math:`d` the discount rate per period and :math:`P` the period length in days
(``"annual"``: 365.25, ``"monthly"``: 30.4375). Each step's purchases are discounted at the
step *end*. A smaller ``step_days`` approaches continuous discounting
:math:`\int_0^H e^{-\delta t}\,dE[X(t)]` with :math:`\delta=\log(1+d)/P`. With
:math:`d = 0` the sum telescopes to :math:`E[X(H)]`.
"""

from __future__ import annotations

import math
from typing import Literal, TypedDict

import numpy as np
from numpy.typing import ArrayLike

from clv_pipeline.models.base import (
    FloatArray,
    Params,
    TransactionModel,
    as_float_array,
    validate_rft,
)

#: Days per year and per month used for discounting and CLV steps.
DAYS_PER_YEAR = 365.25
DAYS_PER_MONTH = DAYS_PER_YEAR / 12.0

#: Period of ``discount_rate``: a year (365.25 days) or a month (30.4375 days).
DiscountPeriod = Literal["annual", "monthly"]


class ClvOptions(TypedDict, total=False):
    """Keyword options of :func:`predicted_clv`, for functions that pass them on."""

    horizon_days: float
    discount_rate: float
    discount_period: DiscountPeriod
    gross_margin: float
    step_days: float


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
    return discounted_purchases_and_total(
        model, params, x, tx, t_obs, ends, factors, discount_rate
    )[0]


def discounted_purchases_and_total(
    model: TransactionModel,
    params: Params,
    x: FloatArray,
    tx: FloatArray,
    t_obs: FloatArray,
    ends: FloatArray,
    factors: FloatArray,
    discount_rate: float,
    p_alive: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """(discounted expected purchases, expected purchases over the whole horizon).

    The model evaluates its expensive terms once for all step ends
    (:meth:`~clv_pipeline.models.base.TransactionModel.expected_purchases_curve`, reusing
    ``p_alive`` when given); without discounting the increments telescope, so only the
    horizon itself is evaluated.
    """
    if discount_rate == 0:
        ends, factors = ends[-1:], factors[-1:]
    curve = model.expected_purchases_curve(
        params, x, tx, t_obs, horizons=[float(e) for e in ends], p_alive=p_alive
    )
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
    :meth:`~clv_pipeline.models.gamma_gamma.GammaGammaModel.expected_customer_spend`
    (see also its ``expected_customer_lifetime_value``); the result is in its monetary unit
    times ``gross_margin``.
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
