"""BG/NBD model (Fader, Hardie & Lee 2005, "Counting your customers the easy way").

Time unit: days, so ``alpha`` (scale of the Gamma purchase-rate distribution) is in days.
The likelihood (FHL 2005 eq. 6) and predictions (eq. 10, 13) are implemented once for the
beta-geometric family in :class:`BetaGeometricFamily`, shared with MBG/NBD
(:mod:`clv_pipeline.models.mbgnbd` subclasses it); :class:`BetaGeoModel` fixes the variant
where drop-out can only happen *after a repeat purchase*.

Module-level functions are bound methods of :data:`MODEL`, e.g.::

    from clv_pipeline.models import bgnbd
    fit = bgnbd.fit(frequency, recency, T)
    bgnbd.expected_purchases(fit.params, frequency, recency, T, horizon_days=90)
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from clv_pipeline.models.base import (
    FloatArray,
    Params,
    Patterns,
    TransactionModel,
    horizon_array,
    validate_rft,
)
from clv_pipeline.models.numerics import (
    beta_dropout_expectation,
    for_slices,
    scratch,
)


class BetaGeometricFamily(TransactionModel):
    r"""Shared likelihood/predictions for BG/NBD (``_shift = 0``) and MBG/NBD (``_shift = 1``).

    Purchases follow a Poisson process with rate :math:`\lambda\sim\Gamma(r,\alpha)`
    (``alpha`` in days); after each purchase (BG/NBD), or also at time 0 (MBG/NBD), the
    customer drops out with probability :math:`p\sim\mathrm{Beta}(a,b)`.
    With :math:`\sigma` = ``_shift`` the individual likelihood is

    .. math::
        L = \frac{B(a, b+x+\sigma)}{B(a,b)}\frac{\Gamma(r+x)\alpha^r}{\Gamma(r)}
        \Big[(\alpha+T)^{-(r+x)} + \delta\,\frac{a}{b+x-1+\sigma}(\alpha+t_x)^{-(r+x)}\Big]

    with :math:`\delta = 1_{x>0}` for BG/NBD and :math:`\delta = 1` for MBG/NBD.
    """

    param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")
    #: :math:`\sigma`: 0 for BG/NBD, 1 for MBG/NBD (drop-out also possible at time 0).
    _shift: ClassVar[int]

    def _alive_weight(self, x: FloatArray) -> NDArray[np.bool_]:
        """Indicator :math:`\\delta` of the 'dropped out after the last purchase' term:
        :math:`1_{x>0}` (BG/NBD; MBG/NBD overrides it with 1)."""
        return x > 0

    def _initial_theta(self, pat: Patterns) -> FloatArray:
        w = pat.weights
        rate = float(w @ pat.x) / max(float(w @ pat.T), 1e-9)
        rate = max(rate, 1e-6)
        return np.array([1.0, 1.0 / rate, 1.0, 3.0])

    def _loglik_patterns(
        self, theta: FloatArray, pat: Patterns, *, grad_weights: FloatArray | None
    ) -> tuple[FloatArray, FloatArray | None]:
        r, alpha, a, b = (float(v) for v in theta)
        sh = float(self._shift)
        xu = pat.ux.values
        ix, itx, iT = pat.ux.inverse, pat.utx.inverse, pat.uT.inverse
        # terms of x alone (FHL 2005 eq. 6 / Batislam et al. 2007 eq. 5)
        a12_u = (
            special.gammaln(r + xu)
            - special.gammaln(r)
            + r * math.log(alpha)
            + special.gammaln(a + b)
            + special.gammaln(b + xu + sh)
            - special.gammaln(b)
            - special.gammaln(a + b + xu + sh)
        )
        log_aT_u = np.log(alpha + pat.uT.values)
        log_atx_u = np.log(alpha + pat.utx.values)
        has_u = self._alive_weight(xu)
        denom_u = np.where(has_u, b + xu - 1.0 + sh, 1.0)
        rx_u = r + xu
        with np.errstate(divide="ignore"):
            c4_u = np.where(has_u, math.log(a) - np.log(denom_u), -np.inf)
        # per pattern: a3 = -(r+x) log(alpha+T), a4 = log(a/denom) - (r+x) log(alpha+t_x)
        # (-inf without the dropout term), ll = a12 + logaddexp(a3, a4); element-wise on
        # both cores, the sums below over the whole arrays
        n = pat.n_patterns
        ll = np.empty(n)
        grad = grad_weights is not None
        wt = ll if grad_weights is None else grad_weights  # (unused without a gradient)
        if grad:
            w4, p3, p4, w3t, w4t, w4d = scratch(pat.cache, "bg_gradient", n, 6)

        def body(s: slice) -> None:
            rx = rx_u[ix[s]]
            a3 = -rx * log_aT_u[iT[s]]
            a4 = c4_u[ix[s]] - rx * log_atx_u[itx[s]]
            m = np.logaddexp(a3, a4)
            np.add(a12_u[ix[s]], m, out=ll[s])
            if grad:
                e4 = np.exp(a4 - m, out=w4[s])
                w = wt[s]
                t3 = np.multiply(w, 1.0 - e4, out=w3t[s])
                t4 = np.multiply(w, e4, out=w4t[s])
                np.multiply(t3, rx, out=p3[s])
                np.multiply(t4, rx, out=p4[s])
                np.divide(e4, denom_u[ix[s]], out=w4d[s])

        for_slices(body, n)
        if not grad:
            return ll, None
        # x-only, T-only and t_x-only factors are summed per unique value first
        if wt is pat.weights:  # the fit's weights: the same per-x sums at every evaluation
            wx = pat.cache.get("weights_per_x")
            if not isinstance(wx, np.ndarray):
                wx = pat.cache["weights_per_x"] = np.bincount(ix, weights=wt, minlength=xu.shape[0])
        else:
            wx = np.bincount(ix, weights=wt, minlength=xu.shape[0])
        c3 = np.bincount(iT, weights=p3, minlength=log_aT_u.shape[0])
        c4 = np.bincount(itx, weights=p4, minlength=log_atx_u.shape[0])
        c3r = np.bincount(iT, weights=w3t, minlength=log_aT_u.shape[0])
        c4r = np.bincount(itx, weights=w4t, minlength=log_atx_u.shape[0])
        dr_u = special.digamma(r + xu) - special.digamma(r) + math.log(alpha)
        da_u = special.digamma(a + b) - special.digamma(a + b + xu + sh)
        db_u = da_u + special.digamma(b + xu + sh) - special.digamma(b)
        sum_w4 = float(wt @ w4)
        g = np.array(
            [
                wx @ dr_u - c3r @ log_aT_u - c4r @ log_atx_u,
                float(wt.sum()) * r / alpha
                - c3 @ (1.0 / (alpha + pat.uT.values))
                - c4 @ (1.0 / (alpha + pat.utx.values)),
                wx @ da_u + sum_w4 / a,
                wx @ db_u - float(wt @ w4d),
            ]
        )
        return ll, g

    # ---- predictions (FHL 2005 eq. 10/11; Batislam et al. 2007 eq. 8/9) -------------
    def _log_odds_dead(
        self, theta: FloatArray, x: FloatArray, tx: FloatArray, T: FloatArray
    ) -> FloatArray:
        r, alpha, a, b = theta
        has = self._alive_weight(x)
        denom = np.where(has, b + x - 1.0 + self._shift, 1.0)
        # log((alpha+T)/(alpha+t_x)) as log1p: no cancellation when alpha >> T - t_x
        val = math.log(a) - np.log(denom) + (r + x) * np.log1p((T - tx) / (alpha + tx))
        return np.where(has, val, -np.inf)

    def _p_alive(
        self, theta: FloatArray, x: FloatArray, tx: FloatArray, T: FloatArray
    ) -> FloatArray:
        r"""P(alive at T): :math:`1/(1+\delta\frac{a}{b+x-1+\sigma}
        (\frac{\alpha+T}{\alpha+t_x})^{r+x})` (FHL 2005 eq. 13), via ``expit``."""
        return np.asarray(special.expit(-self._log_odds_dead(theta, x, tx, T)))

    def _alive_expectation(
        self, theta: FloatArray, x: FloatArray, T: FloatArray, t: FloatArray | float
    ) -> FloatArray:
        r"""Expected purchases in :math:`(T, T+t]` of an alive customer (FHL 2005 eq. 10).

        :math:`E[(1-e^{-\lambda p t})/p]` under the alive posterior
        :math:`\lambda\sim\Gamma(r+x,\alpha+T)`, :math:`p\sim\mathrm{Beta}(a, b')`,
        :math:`b'=b+x+\sigma`, i.e. :math:`E_p[(1-(1+kp)^{-(r+x)})/p]` with
        :math:`k = t/(\alpha+T)`; in closed form

        .. math:: \frac{a+b'-1}{a-1}\Big[1-(1-z)^{a-1}\,
                  {}_2F_1(a+b'-1-r-x,\ a-1;\ a+b'-1;\ z)\Big],\quad z=\frac{t}{\alpha+T+t},

        eq. 10's :math:`(1-z)^{r+x}{}_2F_1(r+x,b+x;a+b+x-1;z)` after Euler's transformation.
        Evaluated by :func:`~clv_pipeline.models.numerics.beta_dropout_expectation`: this
        closed form where ``scipy.special.hyp2f1`` is accurate, a power series for short
        horizons and a log-space quadrature elsewhere (large ``a``, ``b``, ``x``, ``a`` near 1),
        so the result is finite and accurate for every allowed parameter.
        """
        r, alpha, a, b = theta
        k = t / (alpha + T)
        return beta_dropout_expectation(r + x, k, a, b + x + self._shift)

    def purchase_probability(
        self,
        params: Params,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        *,
        horizon_days: float | ArrayLike,
        p_alive: FloatArray | None = None,
    ) -> FloatArray:
        r"""P(>= 1 purchase in :math:`(T, T+t]`) (``p_alive``: :meth:`probability_alive` of the
        same customers, when the caller has it).

        Drop-out can only happen right after a purchase, so an alive customer makes a
        purchase in the horizon iff the next Poisson event falls in it:

        .. math:: P(\text{alive})\Big[1-\Big(\frac{\alpha+T}{\alpha+T+t}\Big)^{r+x}\Big].
        """
        theta = self.theta(params)
        x, tx, t_obs = validate_rft(frequency, recency, T)
        t = horizon_array(horizon_days, x.shape[0])
        r, alpha = theta[0], theta[1]
        alive = self._alive_or(p_alive, theta, x, tx, t_obs)
        return np.asarray(alive * -np.expm1(-(r + x) * np.log1p(t / (alpha + t_obs))))


class BetaGeoModel(BetaGeometricFamily):
    """BG/NBD: parameters ``r``, ``alpha`` (days), ``a``, ``b``."""

    name: ClassVar[str] = "bgnbd"
    _shift: ClassVar[int] = 0


MODEL = BetaGeoModel()
fit = MODEL.fit
log_likelihood = MODEL.log_likelihood
probability_alive = MODEL.probability_alive
expected_purchases = MODEL.expected_purchases
purchase_probability = MODEL.purchase_probability
expected_days_to_next_purchase = MODEL.expected_days_to_next_purchase

__all__ = [
    "MODEL",
    "BetaGeoModel",
    "BetaGeometricFamily",
    "expected_days_to_next_purchase",
    "expected_purchases",
    "fit",
    "log_likelihood",
    "probability_alive",
    "purchase_probability",
]
