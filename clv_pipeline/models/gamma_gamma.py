r"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV", and Fader & Hardie
2013 note "The Gamma-Gamma Model of Monetary Value").

A customer's transaction values are i.i.d. :math:`\mathrm{Gamma}(p, \nu)` with
:math:`\nu\sim\mathrm{Gamma}(q, v)`, so the mean transaction value is :math:`p/\nu` and the
population mean is :math:`pv/(q-1)` (finite for ``q > 1``). For a customer with
:math:`x > 0` repeat transactions of average value :math:`m_x` (FHL 2005 eq. 1-3):

.. math::
    L(p,q,v\mid x, m_x) = \frac{\Gamma(px+q)}{\Gamma(px)\Gamma(q)}
        \frac{v^q\, m_x^{px-1}\, x^{px}}{(v + x m_x)^{px+q}}

and the conditional expected average transaction value (eq. 5) is

.. math::
    E[M\mid x, m_x] = \frac{p(v + x m_x)}{px + q - 1}.

Only customers with ``frequency > 0`` and ``monetary_value > 0`` enter the fit. The
monetary unit is that of the input; no time unit is involved.

:class:`GammaGammaModel` has the same method style as the transaction models (``fit``,
``log_likelihood``, predictions taking ``params`` first); the predictions are named as in
pymc-marketing: :meth:`~GammaGammaModel.expected_customer_spend` and
:meth:`~GammaGammaModel.expected_customer_lifetime_value`. Module-level functions are bound
methods of :data:`MODEL` (``expected_avg_value`` is ``expected_customer_spend``).
"""

from __future__ import annotations

import math
from typing import ClassVar, Unpack

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from clv_pipeline.models.base import (
    FitResult,
    FloatArray,
    ParametricModel,
    Params,
    TransactionModel,
    UniqueValues,
    as_float_array,
)
from clv_pipeline.models.data import unique_inverse
from clv_pipeline.models.discount import ClvOptions, predicted_clv
from clv_pipeline.models.numerics import for_slices, scratch


def _validate(frequency: ArrayLike, monetary_value: ArrayLike) -> tuple[FloatArray, FloatArray]:
    x = as_float_array(frequency, "frequency")
    m = as_float_array(monetary_value, "monetary_value")
    if x.shape != m.shape:
        raise ValueError(
            f"frequency and monetary_value must have the same length, got {x.shape[0]} and "
            f"{m.shape[0]}"
        )
    if np.any(x < 0):
        raise ValueError("frequency must be >= 0")
    if np.any(m < 0):
        raise ValueError("monetary_value must be >= 0")
    return x, m


class SpendData:
    """Weighted unique (x, m) pairs with unique-x indexing, for fast likelihood sums."""

    def __init__(self, x: FloatArray, m: FloatArray) -> None:
        cx, cm = UniqueValues.of(x), UniqueValues.of(m)
        n_m = cm.values.shape[0]
        ukey, inverse = unique_inverse(cx.inverse.astype(np.int64) * n_m + cm.inverse)
        counts = np.bincount(inverse, minlength=ukey.shape[0])
        self.x = cx.values[ukey // n_m]
        self.m = cm.values[ukey % n_m]
        self.weights = counts.astype(np.float64)
        self.ux = UniqueValues.of(self.x)
        self.wx = np.bincount(self.ux.inverse, weights=self.weights)  # weight per unique x
        self.log_m = np.log(self.m)
        self.log_x = np.log(self.x)
        self.n = float(self.weights.sum())
        # constants of every likelihood evaluation
        self.xm = self.x * self.m
        self.log_mx = self.log_m + self.log_x
        self.cache: dict[str, object] = {}


class GammaGammaModel(ParametricModel):
    """Gamma-Gamma spend model: parameters ``p``, ``q``, ``v`` (currency)."""

    name: ClassVar[str] = "gamma_gamma"
    param_names: ClassVar[tuple[str, ...]] = ("p", "q", "v")

    # ---- estimation ----------------------------------------------------------------
    def _loglik_terms(
        self, theta: FloatArray, d: SpendData
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Per-pair log-likelihood, ``log(v + x m)``, ``x (log m + log x - log(v + x m))`` and
        ``(p x + q) / (v + x m)`` (the last two: gradient terms), element-wise on all cores."""
        p, q, v = (float(t) for t in theta)
        xu = d.ux.values
        g_u = special.gammaln(p * xu + q) - special.gammaln(p * xu) - special.gammaln(q)
        q_log_v = q * math.log(v)
        inv = d.ux.inverse
        ll, log_vxm, dp_t, dv_t = scratch(d.cache, "gg", d.x.shape[0], 4)

        def body(s: slice) -> None:
            x = d.x[s]
            vxm = v + d.xm[s]
            lv = np.log(vxm, out=log_vxm[s])
            px = p * x
            out = np.add(g_u[inv[s]], q_log_v, out=ll[s])
            out += (px - 1.0) * d.log_m[s]
            out += px * d.log_x[s]
            pxq = px + q
            out -= pxq * lv
            np.multiply(x, d.log_mx[s] - lv, out=dp_t[s])
            np.divide(pxq, vxm, out=dv_t[s])

        for_slices(body, d.x.shape[0])
        return ll, log_vxm, dp_t, dv_t

    def loglik_and_grad(self, theta: FloatArray, d: SpendData) -> tuple[float, FloatArray]:
        """Total weighted log-likelihood and its gradient w.r.t. ``(p, q, v)``."""
        p, q, v = (float(t) for t in theta)
        ll, log_vxm, dp_t, dv_t = self._loglik_terms(theta, d)
        xu = d.ux.values
        w = d.weights
        psi_pxq = special.digamma(p * xu + q)
        # sum_i w_i x_i [psi(px+q) - psi(px)] computed on unique x
        dp = float(d.wx @ (xu * (psi_pxq - special.digamma(p * xu))))
        dp += float(w @ dp_t)
        dq = float(d.wx @ psi_pxq) - d.n * special.digamma(q) + d.n * math.log(v)
        dq -= float(w @ log_vxm)
        dv = d.n * q / v - float(w @ dv_t)
        return float(w @ ll), np.array([dp, dq, dv])

    def _initial_theta(self, d: SpendData) -> FloatArray:
        """Method-of-moments style start: p from the dispersion of m, q = 3, v from the mean."""
        x, m = d.x, d.m
        mean = float(np.mean(m))
        var = float(np.var(m)) if m.shape[0] > 1 else mean**2
        cv2 = max(var / max(mean**2, 1e-300), 1e-3)
        p = float(np.clip(1.0 / (cv2 * float(np.mean(x))), 0.5, 50.0))
        q = 3.0
        v = mean * (q - 1.0) / p
        return np.array([p, q, max(v, 1e-6)])

    def fit(
        self,
        frequency: ArrayLike,
        monetary_value: ArrayLike,
        *,
        penalizer: float = 0.0,
        initial_params: Params | None = None,
    ) -> FitResult:
        """Fit the Gamma-Gamma model on customers with ``frequency > 0`` and spend > 0.

        Fits on weighted unique ``(frequency, monetary_value)`` pairs with L-BFGS-B on
        log-parameters and analytic gradient (objective as in
        :func:`clv_pipeline.models.numerics.minimize_log_params`).

        Raises
        ------
        ValueError
            On invalid input or when no customer has ``frequency > 0`` and spend > 0.
        """
        x, m = _validate(frequency, monetary_value)
        keep = (x > 0) & (m > 0)
        if not np.any(keep):
            raise ValueError("gamma_gamma: no customer with frequency > 0 and monetary_value > 0")
        d = SpendData(x[keep], m[keep])
        theta0 = self._initial_theta(d) if initial_params is None else self.theta(initial_params)
        return self._fit_log_params(
            lambda th: self.loglik_and_grad(th, d),
            theta0,
            penalizer=penalizer,
            n_customers=d.n,
            n_repeat=d.n,
            n_patterns=int(d.x.shape[0]),
        )

    def log_likelihood(
        self, params: Params, frequency: ArrayLike, monetary_value: ArrayLike
    ) -> FloatArray:
        """Per-customer log-likelihood (FHL 2005 RFM/CLV eq. 3); requires x > 0 and m > 0."""
        theta = self.theta(params)
        x, m = _validate(frequency, monetary_value)
        if np.any(x <= 0) or np.any(m <= 0):
            raise ValueError(
                "gamma_gamma log-likelihood needs frequency > 0 and monetary_value > 0"
            )
        p, q, v = theta
        px = p * x
        return np.asarray(
            special.gammaln(px + q)
            - special.gammaln(px)
            - special.gammaln(q)
            + q * math.log(v)
            + (px - 1.0) * np.log(m)
            + px * np.log(x)
            - (px + q) * np.log(v + x * m)
        )

    # ---- predictions ---------------------------------------------------------------
    def population_mean(self, params: Params) -> float:
        """Population mean transaction value ``p v / (q - 1)``; NaN if ``q <= 1`` (infinite)."""
        p, q, v = self.theta(params)
        return float(p * v / (q - 1.0)) if q > 1.0 else math.nan

    def expected_customer_spend(
        self, params: Params, frequency: ArrayLike, monetary_value: ArrayLike
    ) -> FloatArray:
        r"""Conditional expected average transaction value (FHL 2005 RFM/CLV eq. 5).

        :math:`E[M\mid x,m_x] = p(v + x m_x)/(px + q - 1)`, a weighted average of the
        population mean :math:`pv/(q-1)` and the observed mean :math:`m_x`. Customers with
        ``frequency == 0`` get the population mean (the formula at ``x = 0``); it is NaN when
        ``q <= 1`` (undefined population mean) — :func:`clv_pipeline.models.fit_and_predict`
        replaces it by the observed mean spend of repeat customers and says so.
        """
        p, q, v = self.theta(params)
        x, m = _validate(frequency, monetary_value)
        denom = p * x + q - 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(denom > 0, p * (v + x * m) / np.where(denom > 0, denom, 1.0), np.nan)
        return np.asarray(out, dtype=np.float64)

    def expected_customer_lifetime_value(
        self,
        params: Params,
        transaction_model: TransactionModel,
        transaction_params: Params,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        monetary_value: ArrayLike,
        **options: Unpack[ClvOptions],
    ) -> FloatArray:
        """Discounted CLV per customer: :func:`~clv_pipeline.models.discount.predicted_clv`
        of ``transaction_model`` (with its keyword ``options``: horizon, discounting, margin)
        and :meth:`expected_customer_spend` as the value.

        NaN where the expected spend is undefined (``q <= 1`` and ``frequency == 0``);
        :func:`clv_pipeline.models.fit_and_predict` substitutes the observed mean instead.
        """
        spend = self.expected_customer_spend(params, frequency, monetary_value)
        return predicted_clv(
            transaction_model, transaction_params, frequency, recency, T, spend, **options
        )


MODEL = GammaGammaModel()
fit = MODEL.fit
log_likelihood = MODEL.log_likelihood
population_mean = MODEL.population_mean
expected_customer_spend = MODEL.expected_customer_spend
expected_customer_lifetime_value = MODEL.expected_customer_lifetime_value
#: Former name of :meth:`GammaGammaModel.expected_customer_spend`.
expected_avg_value = MODEL.expected_customer_spend

__all__ = [
    "MODEL",
    "GammaGammaModel",
    "SpendData",
    "expected_avg_value",
    "expected_customer_lifetime_value",
    "expected_customer_spend",
    "fit",
    "log_likelihood",
    "population_mean",
]
