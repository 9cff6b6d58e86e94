r"""Pareto/NBD model (Schmittlein, Morrison & Colombo 1987).

Expressions follow Fader & Hardie (2005), "A Note on Deriving the Pareto/NBD Model and
Related Expressions". Time unit: days (``alpha`` and ``beta`` are in days).

While alive a customer buys with Poisson rate :math:`\lambda\sim\Gamma(r,\alpha)`; the
lifetime is exponential with rate :math:`\mu\sim\Gamma(s,\beta)`. The likelihood
(note eq. 18-24) is

.. math::
    L = \frac{\Gamma(r+x)\alpha^r\beta^s}{\Gamma(r)}\Big[
        (\alpha+T)^{-(r+x)}(\beta+T)^{-s} + s\,\big(G(x,t_x) - G(x,T)\big)\Big],\qquad
    G(x,t) = \int_t^\infty(\alpha+\tau)^{-(r+x)}(\beta+\tau)^{-(s+1)}d\tau,

and :math:`s\,G(x,t)` is the note's
:math:`\frac{s}{r+s+x}\,{}_2F_1(r+s+x, s+1; r+s+x+1; \frac{\alpha-\beta}{\alpha+t})
(\alpha+t)^{-(r+s+x)}` for :math:`\alpha\ge\beta` and
:math:`\frac{s}{r+s+x}\,{}_2F_1(r+s+x, r+x; r+s+x+1; \frac{\beta-\alpha}{\beta+t})
(\beta+t)^{-(r+s+x)}` for :math:`\alpha<\beta` (eq. 22/23). The hypergeometric terms are
evaluated through Euler's integral by :func:`clv_pipeline.models.numerics.log_euler_integral`
entirely in log space, which also yields the *exact analytic gradient* (derivatives under
the integral sign, evaluated by the same quadrature). ``G`` depends on ``(x, t)`` only, so
it is computed once per unique ``(x, t_x)`` / ``(x, T)`` pair.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from clv_pipeline.models.base import (
    FloatArray,
    IntArray,
    Params,
    Patterns,
    TransactionModel,
    horizon_array,
    validate_rft,
)
from clv_pipeline.models.data import unique_inverse
from clv_pipeline.models.numerics import for_slices, log_euler_integral, scratch


@dataclasses.dataclass(frozen=True)
class TailIntegral:
    """``log G`` and its gradient w.r.t. ``(p, q, alpha, beta)``, shape (4, n)."""

    log_g: FloatArray
    grad: FloatArray | None


def log_tail_integral(
    alpha: float,
    beta: float,
    p: FloatArray,
    q: float,
    t: FloatArray,
    *,
    p_index: IntArray | None = None,
    grad: bool = False,
    scale_at: FloatArray | None = None,
) -> TailIntegral:
    r"""``log G`` with :math:`G = \int_t^\infty(\alpha+\tau)^{-p}(\beta+\tau)^{-q}d\tau`.

    Requires :math:`p + q > 1`. Substituting :math:`u = (c+t)/(c+\tau)` with
    :math:`c=\max(\alpha,\beta)` gives :math:`G = (c+t)^{-(p+q-1)}J(p+q-1, e, z)` with
    :math:`z = |\alpha-\beta|/(c+t)\in[0,1)` and :math:`e = q` if :math:`\alpha\ge\beta`
    else :math:`e = p` — exactly the branch choice of the Fader-Hardie note (eq. 22/23).

    Parameters
    ----------
    alpha, beta, q : float
        Scalars.
    p : FloatArray
        Exponent per element, or per unique value with ``p_index``.
    t : FloatArray
        Lower integration limits (days).
    grad : bool
        Also return derivatives w.r.t. ``p, q, alpha, beta``.
    scale_at : FloatArray, optional
        Return :math:`\log(G\,(c+s)^{p+q-1})` for these :math:`s` (one per element) instead:
        :math:`\log J - (p+q-1)\,\mathrm{log1p}((t-s)/(c+s))`, without the two large terms
        :math:`(p+q-1)\log(c+\cdot)` that cancel when :math:`G(t)` is compared with
        :math:`(c+s)^{-(p+q-1)}` (no gradient).
    """
    p_el = p if p_index is None else p[p_index]
    a_src = p + q - 1.0
    if alpha >= beta:
        c, other, e = alpha, beta, np.broadcast_to(q, p_el.shape)
    else:
        c, other, e = beta, alpha, p_el
    ct = c + t
    z = (c - other) / ct
    log_ct = np.log(ct)
    # 1 - z = (other + t)/(c + t) exactly: z is within 1e-8 of 1 when alpha/beta is ~1e8
    res = log_euler_integral(a_src, e, z, a_index=p_index, grad=grad, one_minus_z=(other + t) / ct)
    a = p_el + q - 1.0
    if scale_at is not None:
        return TailIntegral(
            log_g=res.log_j - a * np.log1p((t - scale_at) / (c + scale_at)), grad=None
        )
    log_g = res.log_j - a * log_ct
    if not grad:
        return TailIntegral(log_g=log_g, grad=None)
    assert res.mean_log_u is not None and res.mean_mlog1mzu is not None  # noqa: S101
    assert res.mean_u_over is not None  # noqa: S101
    d_common = -log_ct + res.mean_log_u
    d_c = -a / ct + e * res.mean_u_over * (other + t) / ct**2
    d_other = -e * res.mean_u_over / ct
    g = np.empty((4, log_g.shape[0]))
    if alpha >= beta:  # e = q
        g[0], g[1] = d_common, d_common + res.mean_mlog1mzu
        g[2], g[3] = d_c, d_other
    else:  # e = p
        g[0], g[1] = d_common + res.mean_mlog1mzu, d_common
        g[2], g[3] = d_other, d_c
    return TailIntegral(log_g=log_g, grad=g)


def _log1mexp(d: FloatArray) -> FloatArray:
    """``log(1 - exp(d))`` for ``d <= 0`` (``-inf`` at 0), accurate near both ends."""
    d = np.minimum(d, 0.0)
    with np.errstate(divide="ignore"):
        return np.where(d > -math.log(2.0), np.log(-np.expm1(d)), np.log1p(-np.exp(d)))


@dataclasses.dataclass(frozen=True)
class _Pairs:
    """Unique ``(x, t)`` pairs needed by ``G`` and where each pattern finds its two."""

    ix: IntArray  # pair -> index into unique x
    t: FloatArray  # pair -> t
    tx_pair: IntArray  # pattern -> pair of (x, t_x)
    T_pair: IntArray  # pattern -> pair of (x, T)


def _pairs(pat: Patterns) -> _Pairs:
    cached = pat.cache.get("pareto_pairs")
    if isinstance(cached, _Pairs):
        return cached
    ut = np.unique(np.concatenate([pat.utx.values, pat.uT.values]))
    it_tx = np.searchsorted(ut, pat.utx.values)[pat.utx.inverse]
    it_T = np.searchsorted(ut, pat.uT.values)[pat.uT.inverse]
    n_t = ut.shape[0]
    ix = pat.ux.inverse.astype(np.int64)
    keys = np.concatenate([ix * n_t + it_tx, ix * n_t + it_T])
    ukeys, inv = unique_inverse(keys)
    n = pat.n_patterns
    out = _Pairs(
        ix=(ukeys // n_t).astype(np.intp),
        t=ut[ukeys % n_t],
        tx_pair=inv[:n].astype(np.intp),
        T_pair=inv[n:].astype(np.intp),
    )
    pat.cache["pareto_pairs"] = out
    return out


class ParetoNBDModel(TransactionModel):
    """Pareto/NBD: parameters ``r``, ``alpha`` (days), ``s``, ``beta`` (days)."""

    name: ClassVar[str] = "pareto_nbd"
    param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "s", "beta")

    def _initial_theta(self, pat: Patterns) -> FloatArray:
        w = pat.weights
        mean_T = max(float(w @ pat.T) / max(float(w.sum()), 1.0), 1.0)
        rate = max(float(w @ pat.x) / max(float(w @ pat.T), 1e-9), 1e-6)
        return np.array([1.0, 1.0 / rate, 1.0, mean_T])

    def _loglik_patterns(
        self, theta: FloatArray, pat: Patterns, *, grad_weights: FloatArray | None
    ) -> tuple[FloatArray, FloatArray | None]:
        r, alpha, s, beta = (float(v) for v in theta)
        pr = _pairs(pat)
        xu = pat.ux.values
        ix, iT = pat.ux.inverse, pat.uT.inverse
        x = pat.x
        want_grad = grad_weights is not None
        tail = log_tail_integral(alpha, beta, r + xu, s + 1.0, pr.t, p_index=pr.ix, grad=want_grad)
        log_g = tail.log_g
        log_aT_u = np.log(alpha + pat.uT.values)
        log_bT_u = np.log(beta + pat.uT.values)
        const_u = (
            special.gammaln(r + xu) - special.gammaln(r) + r * math.log(alpha) + s * math.log(beta)
        )
        log_s = math.log(s)
        n = pat.n_patterns
        ll = np.empty(n)
        wt = ll if grad_weights is None else grad_weights  # (unused without a gradient)
        if want_grad:
            w2, k, k_rho, w1t, w1tx = scratch(pat.cache, "pareto_gradient", n, 5)

        def body(sl: slice) -> None:
            # per pattern, element-wise on the cores (the sums below are over whole arrays)
            log_g1 = log_g[pr.tx_pair[sl]]
            rho = np.exp(np.minimum(log_g[pr.T_pair[sl]] - log_g1, 0.0))  # G(x,T)/G(x,t_x)
            i_T = iT[sl]
            rx = r + x[sl]
            # eq. 19: first term (alive through T); second: died in (t_x, T]
            log_t1 = -rx * log_aT_u[i_T] - s * log_bT_u[i_T]
            with np.errstate(divide="ignore"):
                log_t2 = log_s + log_g1 + np.log1p(-rho)
            diff = log_t2 - log_t1
            ed = np.exp(-np.abs(diff))
            m = np.maximum(log_t1, log_t2) + np.log1p(ed)
            np.add(const_u[ix[sl]], m, out=ll[sl])
            if want_grad:
                w = wt[sl]
                # weight of the 'died' term
                w2s = np.divide(np.where(diff > 0, 1.0, ed), 1.0 + ed, out=w2[sl])
                w1 = 1.0 - w2s
                # d log(G1 - G2) = (dG1/G1 - rho dG2/G2) / (1 - rho); aggregated onto pairs
                with np.errstate(divide="ignore", invalid="ignore"):
                    ks = np.where(rho < 1.0, w * w2s / (1.0 - rho), 0.0)
                k[sl] = ks
                np.multiply(ks, rho, out=k_rho[sl])
                np.multiply(np.multiply(w, w1, out=w1t[sl]), rx, out=w1tx[sl])

        for_slices(body, n)
        if grad_weights is None:
            return ll, None
        assert tail.grad is not None  # noqa: S101
        n_pairs = pr.t.shape[0]
        coef = np.bincount(pr.tx_pair, weights=k, minlength=n_pairs) - np.bincount(
            pr.T_pair, weights=k_rho, minlength=n_pairs
        )
        d_i = tail.grad @ coef  # (d/dp, d/dq, d/dalpha, d/dbeta) of sum w w2 log I
        wx = np.bincount(ix, weights=wt, minlength=xu.shape[0])
        n_t = pat.uT.values.shape[0]
        c1 = np.bincount(iT, weights=w1t, minlength=n_t)
        c1x = np.bincount(iT, weights=w1tx, minlength=n_t)
        n_w = float(wt.sum())
        dr_u = special.digamma(r + xu) - special.digamma(r)
        g = np.array(
            [
                wx @ dr_u + n_w * math.log(alpha) - c1 @ log_aT_u + d_i[0],
                n_w * r / alpha - c1x @ (1.0 / (alpha + pat.uT.values)) + d_i[2],
                n_w * math.log(beta) - c1 @ log_bT_u + float(wt @ w2) / s + d_i[1],
                n_w * s / beta - s * (c1 @ (1.0 / (beta + pat.uT.values))) + d_i[3],
            ]
        )
        return ll, g

    # ---- predictions -------------------------------------------------------------
    @staticmethod
    def _log_scale(
        r: float, alpha: float, s: float, beta: float, x: FloatArray, T: FloatArray
    ) -> FloatArray:
        r""":math:`(r+x)\log(\alpha+T) + s\log(\beta+T) - (r+x+s)\log(\max(\alpha,\beta)+T)`
        as one log of a ratio: the three terms are each of size ~(r+x+s) log T and cancel."""
        if alpha >= beta:
            return s * np.log((beta + T) / (alpha + T))
        return (r + x) * np.log((alpha + T) / (beta + T))

    def _log_p_alive(
        self, theta: FloatArray, x: FloatArray, tx: FloatArray, T: FloatArray
    ) -> FloatArray:
        r"""Log of eq. 19's first term over the bracket: :math:`-\log(1 + t_2/t_1)` with
        :math:`t_2/t_1 = s\,(G(t_x) - G(T))(\alpha+T)^{r+x}(\beta+T)^s`, both :math:`G`
        scaled at :math:`T` (:func:`log_tail_integral` ``scale_at``) so no large logs cancel."""
        r, alpha, s, beta = (float(v) for v in theta)
        xu, ixu = np.unique(x, return_inverse=True)
        t_both = np.concatenate([tx, T])
        idx_both = np.concatenate([ixu, ixu])
        log_g = log_tail_integral(
            alpha, beta, r + xu, s + 1.0, t_both, p_index=idx_both, scale_at=np.tile(T, 2)
        ).log_g
        n = x.shape[0]
        log_g1, log_g2 = log_g[:n], log_g[n:]
        log_odds = (
            math.log(s)
            + log_g1
            + _log1mexp(log_g2 - log_g1)
            + self._log_scale(r, alpha, s, beta, x, T)
        )
        return np.asarray(-np.logaddexp(0.0, log_odds))

    def _p_alive(
        self, theta: FloatArray, x: FloatArray, tx: FloatArray, T: FloatArray
    ) -> FloatArray:
        r"""P(alive at T) = first likelihood term / bracket of eq. 19 (note eq. 27)."""
        return np.exp(self._log_p_alive(theta, x, tx, T))

    def _alive_expectation(
        self, theta: FloatArray, x: FloatArray, T: FloatArray, t: FloatArray | float
    ) -> FloatArray:
        r"""Expected purchases in :math:`(T, T+t]` of an alive customer (note eq. 41).

        .. math:: \frac{(r+x)(\beta+T)}{(\alpha+T)(s-1)}
                  \Big[1-\Big(\frac{\beta+T}{\beta+T+t}\Big)^{s-1}\Big]

        with the :math:`s\to1` limit :math:`\log(1+t/(\beta+T))` handled by ``expm1``.
        """
        r, alpha, s, beta = (float(v) for v in theta)
        log_h = np.log1p(t / (beta + T))
        h = log_h if abs(s - 1.0) < 1e-12 else -np.expm1(-(s - 1.0) * log_h) / (s - 1.0)
        return np.asarray((r + x) * (beta + T) / (alpha + T) * h)

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
        r"""P(>= 1 purchase in :math:`(T, T+t]`), accounting for drop-out in the horizon.
        ``p_alive`` is accepted for the common interface and not used: the product is formed in
        log space, with P(alive)'s own logarithm.

        Given alive at T the posterior is :math:`\lambda\sim\Gamma(r+x,\alpha+T)`,
        :math:`\mu\sim\Gamma(s,\beta+T)` (independent). The next purchase happens at
        :math:`T+u` before death with density :math:`\lambda e^{-(\lambda+\mu)u}`, so

        .. math:: P = P(\text{alive})\,(r+x)(\alpha+T)^{r+x}(\beta+T)^s
                  \int_T^{T+t}(\alpha+\tau)^{-(r+x+1)}(\beta+\tau)^{-s}\,d\tau,

        the integral being a difference of two :func:`log_tail_integral` values.
        """
        theta = self.theta(params)
        x, tx, t_obs = validate_rft(frequency, recency, T)
        t = horizon_array(horizon_days, x.shape[0])
        r, alpha, s, beta = (float(v) for v in theta)
        n = x.shape[0]
        xu, ixu = np.unique(x, return_inverse=True)
        log_g = log_tail_integral(
            alpha,
            beta,
            r + xu + 1.0,
            s,
            np.concatenate([t_obs, t_obs + t]),
            p_index=np.concatenate([ixu, ixu]),
            scale_at=np.tile(t_obs, 2),
        ).log_g
        log_int = log_g[:n] + _log1mexp(log_g[n:] - log_g[:n])  # times (max(alpha,beta)+T)^a
        log_prob = (
            np.log(r + x)
            + self._log_scale(r, alpha, s, beta, x, t_obs)
            + log_int
            + self._log_p_alive(theta, x, tx, t_obs)
        )
        return np.minimum(np.exp(log_prob), 1.0)

    def expected_days_to_next_purchase(
        self,
        params: Params,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        *,
        max_days: float = 3650.0,
        p_alive: FloatArray | None = None,
    ) -> FloatArray:
        r"""Smallest ``t`` with ``expected_purchases(t) = 1``, in closed form (``p_alive``:
        :meth:`probability_alive` of the same customers, when the caller has it).

        With :math:`C = P(\text{alive})(r+x)(\beta+T)/(\alpha+T)` the expectation is
        :math:`C\,h(t)`, :math:`h = (1-(1+t/(\beta+T))^{1-s})/(s-1)`, so
        :math:`t = (\beta+T)\,\mathrm{expm1}(-\mathrm{log1p}(-(s-1)/C)/(s-1))` (``log1p``:
        exact for ``s`` near 1, where :math:`t \to (\beta+T)\,\mathrm{expm1}(1/C)`) when
        :math:`(s-1) < C`, else the expectation never reaches 1 (NaN). NaN also beyond
        ``max_days``.
        """
        theta = self.theta(params)
        x, tx, t_obs = validate_rft(frequency, recency, T)
        r, alpha, s, beta = (float(v) for v in theta)
        alive = self._alive_or(p_alive, theta, x, tx, t_obs)
        c = alive * (r + x) * (beta + t_obs)
        c = c / (alpha + t_obs)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if s == 1.0:
                log_h = 1.0 / c
            else:
                # log(1 - (s-1)/C) as log1p: no cancellation for s near 1 or large C
                ratio = (s - 1.0) / c
                log_h = np.where(
                    ratio < 1.0, -np.log1p(-np.where(ratio < 1.0, ratio, 0.0)) / (s - 1.0), np.inf
                )
            days = (beta + t_obs) * np.expm1(np.minimum(log_h, 700.0))
        return np.where(np.isfinite(log_h) & (days <= max_days), days, np.nan)


MODEL = ParetoNBDModel()
fit = MODEL.fit
log_likelihood = MODEL.log_likelihood
probability_alive = MODEL.probability_alive
expected_purchases = MODEL.expected_purchases
purchase_probability = MODEL.purchase_probability
expected_days_to_next_purchase = MODEL.expected_days_to_next_purchase

__all__ = [
    "MODEL",
    "ParetoNBDModel",
    "expected_days_to_next_purchase",
    "expected_purchases",
    "fit",
    "log_likelihood",
    "log_tail_integral",
    "probability_alive",
    "purchase_probability",
]
