"""Shared machinery for the probabilistic customer-base models.

Everything that is common to the transaction models (BG/NBD, MBG/NBD, Pareto/NBD)
and to the Gamma-Gamma spend model lives here:

* input validation (:func:`validate_rft`),
* compression of customers to weighted unique ``(frequency, recency, T)`` patterns with
  per-column unique values (:class:`Patterns`),
* the L-BFGS-B fit loop on log-parameters with an optional L2 penalty
  (:func:`minimize_log_params`) and its result record (:class:`FitResult`),
* the abstract :class:`TransactionModel` interface (identical method names on every model),
* the beta-geometric family (:class:`BetaGeometricFamily`) shared by BG/NBD and MBG/NBD,
* a Euler-integral quadrature for Gauss hypergeometric terms of the Pareto/NBD model
  (:func:`log_euler_integral`),
* vectorised bisection (:func:`solve_increasing`).

Time unit is **days** throughout: rate/scale parameters (``alpha``, ``beta``) are in days.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

#: Bounds for every log-parameter during optimisation (parameters in [1e-9, 1e9]).
LOG_PARAM_BOUNDS = (math.log(1e-9), math.log(1e9))


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class FitResult:
    """Outcome of one maximum-likelihood fit.

    Attributes
    ----------
    model : str
        Model name (``"bgnbd"``, ``"pareto_nbd"``, ``"mbgnbd"`` or ``"gamma_gamma"``).
    params : dict[str, float]
        Fitted parameters on their natural scale (time unit: days).
    log_likelihood : float
        Total (un-penalised) log-likelihood over all customers used in the fit.
    bic : float
        Bayesian information criterion ``n_params * ln(n_customers) - 2 * log_likelihood``.
    n_params : int
        Number of free parameters.
    n_customers : int
        Customers used in the fit (for Gamma-Gamma: repeat customers with spend > 0).
    n_repeat_customers : int
        Customers with ``frequency > 0`` among them.
    converged : bool
        Whether the optimiser reported convergence (or stopped at a point whose projected
        gradient is negligible) and the log-likelihood is finite.
    message : str
        Optimiser message, or the reason for failure.
    selected : bool
        Set by model selection in :func:`clv_pipeline.models.fit_and_predict`.
    n_patterns : int
        Number of weighted unique data patterns the likelihood was evaluated on.
    n_evaluations : int
        Number of objective/gradient evaluations.
    """

    model: str
    params: dict[str, float]
    log_likelihood: float
    bic: float
    n_params: int
    n_customers: int
    n_repeat_customers: int
    converged: bool
    message: str
    selected: bool = False
    n_patterns: int = 0
    n_evaluations: int = 0


# --------------------------------------------------------------------------------------
# Validation and compression
# --------------------------------------------------------------------------------------
def as_float_array(values: ArrayLike, name: str) -> FloatArray:
    """Return a fresh 1-D float64 copy of ``values`` (never a view of the caller's array).

    Raises
    ------
    ValueError
        If the input is not one-dimensional, not numeric or contains NaN/inf.
    """
    try:
        arr = np.array(values, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        n_bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise ValueError(f"{name} contains {n_bad} non-finite value(s) (NaN or inf)")
    return arr


def validate_rft(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Validate and copy ``(frequency, recency, T)`` arrays.

    Rules: equal lengths, finite, ``frequency`` non-negative whole numbers,
    ``0 <= recency <= T`` and ``recency == 0`` where ``frequency == 0``.

    Raises
    ------
    ValueError
        With a message naming the first violated rule.
    """
    x = as_float_array(frequency, "frequency")
    tx = as_float_array(recency, "recency")
    t_obs = as_float_array(T, "T")
    if not (x.shape == tx.shape == t_obs.shape):
        raise ValueError(
            "frequency, recency and T must have the same length, got "
            f"{x.shape[0]}, {tx.shape[0]} and {t_obs.shape[0]}"
        )
    if np.any(x < 0):
        raise ValueError("frequency must be >= 0")
    if np.any(x != np.round(x)):
        raise ValueError("frequency must contain whole numbers (repeat purchase counts)")
    if np.any(tx < 0):
        raise ValueError("recency must be >= 0")
    if np.any(t_obs < 0):
        raise ValueError("T must be >= 0")
    if np.any(tx > t_obs):
        n_bad = int(np.count_nonzero(tx > t_obs))
        raise ValueError(f"recency must be <= T ({n_bad} customer(s) have recency > T)")
    if np.any((x == 0) & (tx != 0)):
        raise ValueError("recency must be 0 for customers with frequency 0")
    return x, tx, t_obs


@dataclasses.dataclass(frozen=True)
class UniqueValues:
    """Sorted unique values of one column and the index of each element into them."""

    values: FloatArray
    inverse: IntArray

    @classmethod
    def of(cls, arr: FloatArray) -> UniqueValues:
        """Compute the unique values of ``arr`` with inverse indices."""
        values, inverse = np.unique(arr, return_inverse=True)
        return cls(values=values.astype(np.float64), inverse=inverse.astype(np.intp))


@dataclasses.dataclass(frozen=True)
class Patterns:
    """Customers compressed to weighted unique ``(x, t_x, T)`` patterns.

    Attributes
    ----------
    x, tx, T : FloatArray
        Unique patterns (length ``n_patterns``).
    weights : FloatArray
        Number of customers (or summed caller weights) per pattern.
    inverse : IntArray
        For each input customer the index of its pattern (``x[inverse]`` restores input).
    ux, utx, uT : UniqueValues
        Unique values of each column *over the patterns*, so that terms depending on one
        column alone (``gammaln(r + x)``, ``log(alpha + T)``...) are computed once per value.
    """

    x: FloatArray
    tx: FloatArray
    T: FloatArray
    weights: FloatArray
    inverse: IntArray
    ux: UniqueValues
    utx: UniqueValues
    uT: UniqueValues
    #: Scratch space for model-specific derived data (e.g. Pareto/NBD (x, t) pairs).
    cache: dict[str, object] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @property
    def n_patterns(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_customers(self) -> float:
        return float(self.weights.sum())

    @property
    def n_repeat(self) -> float:
        return float(self.weights[self.x > 0].sum())

    @classmethod
    def from_arrays(
        cls,
        x: FloatArray,
        tx: FloatArray,
        T: FloatArray,
        weights: FloatArray | None = None,
    ) -> Patterns:
        """Compress validated arrays (see :func:`validate_rft`) to unique patterns.

        Uses one ``np.unique`` per column and a single integer key per row instead of a
        (much slower) row-wise ``np.unique(axis=0)``.
        """
        cx, ctx, cT = UniqueValues.of(x), UniqueValues.of(tx), UniqueValues.of(T)
        n_tx, n_T = ctx.values.shape[0], cT.values.shape[0]
        key = (cx.inverse.astype(np.int64) * n_tx + ctx.inverse) * n_T + cT.inverse
        ukey, inverse = np.unique(key, return_inverse=True)
        w = np.ones_like(x) if weights is None else weights
        counts = np.bincount(inverse, weights=w, minlength=ukey.shape[0])
        ix = ukey // (n_tx * n_T)
        itx = (ukey // n_T) % n_tx
        iT = ukey % n_T
        px, ptx, pT = cx.values[ix], ctx.values[itx], cT.values[iT]
        return cls(
            x=px,
            tx=ptx,
            T=pT,
            weights=counts.astype(np.float64),
            inverse=inverse.astype(np.intp),
            ux=UniqueValues.of(px),
            utx=UniqueValues.of(ptx),
            uT=UniqueValues.of(pT),
        )


# --------------------------------------------------------------------------------------
# Optimisation
# --------------------------------------------------------------------------------------
#: Signature of a model's likelihood kernel: natural parameters -> (total weighted
#: log-likelihood, gradient of it with respect to the natural parameters).
LogLikGrad = Callable[[FloatArray], tuple[float, FloatArray]]


@dataclasses.dataclass(frozen=True)
class Optimum:
    """Raw optimiser outcome on the natural parameter scale."""

    theta: FloatArray
    log_likelihood: float
    converged: bool
    message: str
    n_evaluations: int


def minimize_log_params(
    loglik_grad: LogLikGrad,
    theta0: FloatArray,
    *,
    total_weight: float,
    penalizer: float = 0.0,
    maxiter: int = 2000,
) -> Optimum:
    r"""Maximise a weighted log-likelihood over log-parameters with L-BFGS-B.

    The minimised objective is (the same convention as ``lifetimes``' ``penalizer_coef``)

    .. math:: f(\log\theta) = -\frac{1}{N}\sum_i w_i \ell_i(\theta)
              + \lambda \sum_k \theta_k^2,

    where :math:`N = \sum_i w_i` is the number of customers, :math:`\theta` are the
    natural-scale parameters (rates/scales in **days**) and :math:`\lambda` is
    ``penalizer``. The gradient with respect to :math:`\log\theta_k` is
    :math:`\theta_k\,\partial f/\partial\theta_k`.

    Parameters
    ----------
    loglik_grad : callable
        Returns the total weighted log-likelihood and its gradient in ``theta``.
    theta0 : FloatArray
        Positive starting values.
    total_weight : float
        :math:`N`, used to average the log-likelihood.
    penalizer : float
        L2 penalty coefficient :math:`\lambda \ge 0`.
    maxiter : int
        Maximum L-BFGS-B iterations.
    """
    if penalizer < 0 or not math.isfinite(penalizer):
        raise ValueError("penalizer must be a finite number >= 0")
    n_eval = 0
    scale = 1.0 / max(total_weight, 1.0)

    cache: dict[bytes, tuple[float, FloatArray]] = {}

    def evaluate(theta: FloatArray) -> tuple[float, FloatArray]:
        nonlocal n_eval
        key = theta.tobytes()
        if key not in cache:
            n_eval += 1
            cache.clear()
            cache[key] = loglik_grad(theta)
        return cache[key]

    def objective(log_theta: FloatArray) -> tuple[float, FloatArray]:
        theta = np.exp(log_theta)
        ll, grad = evaluate(theta)
        if not math.isfinite(ll) or not np.all(np.isfinite(grad)):
            return 1e100, np.zeros_like(theta)
        f = -ll * scale + penalizer * float(np.sum(theta**2))
        g = (-grad * scale + 2.0 * penalizer * theta) * theta
        return f, g

    x0 = np.clip(np.log(np.asarray(theta0, dtype=np.float64)), *LOG_PARAM_BOUNDS)
    res = optimize.minimize(
        objective,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=[LOG_PARAM_BOUNDS] * x0.shape[0],
        options={"maxiter": maxiter, "ftol": 1e-12, "gtol": 1e-8, "maxcor": 20},
    )
    theta = np.exp(res.x)
    ll, _ = evaluate(theta)
    _, g = objective(res.x)
    at_bound = np.isclose(res.x, LOG_PARAM_BOUNDS[0]) | np.isclose(res.x, LOG_PARAM_BOUNDS[1])
    # L-BFGS-B sometimes stops with ABNORMAL_TERMINATION_IN_LNSRCH at the optimum because
    # the objective cannot be decreased within float precision; accept a tiny gradient.
    small_grad = bool(np.max(np.abs(g[~at_bound]), initial=0.0) < 1e-6)
    converged = bool((res.success or small_grad) and math.isfinite(ll) and not at_bound.any())
    message = str(res.message)
    if at_bound.any():
        message += "; parameter(s) at optimisation bound (degenerate fit)"
    return Optimum(
        theta=theta,
        log_likelihood=float(ll),
        converged=converged,
        message=message,
        n_evaluations=n_eval,
    )


def bic(log_likelihood: float, n_params: int, n_obs: float) -> float:
    """Bayesian information criterion ``k ln(n) - 2 LL``."""
    return float(n_params * math.log(max(n_obs, 1.0)) - 2.0 * log_likelihood)


# --------------------------------------------------------------------------------------
# Numerics helpers
# --------------------------------------------------------------------------------------
def solve_increasing(
    func: Callable[[FloatArray, IntArray], FloatArray],
    target: float,
    n: int,
    *,
    upper: float,
    tol: float = 1e-4,
) -> FloatArray:
    """Smallest ``t`` in ``[0, upper]`` with ``func(t) >= target`` (vectorised root search).

    ``func(t, idx)`` evaluates a non-decreasing function for the elements ``idx`` at times
    ``t`` (same length as ``idx``). Elements whose value at ``upper`` is below ``target``
    get NaN. Illinois false position on the bracket ``[0, upper]`` (superlinear: about 8
    evaluations instead of bisection's 22 at ``tol=1e-3``), with a bisection step whenever the
    bracket did not halve, until the bracket is narrower than ``tol`` (days) or the value hits
    ``target`` to 1e-12 relative; only unfinished elements are evaluated.
    """
    out = np.full(n, np.nan)
    idx = np.arange(n, dtype=np.intp)
    g_hi = func(np.full(n, upper), idx) - target
    reach = g_hi >= 0
    idx, g_hi = idx[reach], g_hi[reach]
    lo = np.zeros(idx.shape[0])
    hi = np.full(idx.shape[0], upper)
    g_lo = func(lo, idx) - target
    done = g_lo >= 0  # already there at t = 0
    out[idx[done]] = 0.0
    idx, lo, hi, g_lo, g_hi = idx[~done], lo[~done], hi[~done], g_lo[~done], g_hi[~done]
    side = np.zeros(idx.shape[0], dtype=np.int8)  # endpoint kept last time: -1 lo, +1 hi
    width = hi - lo
    max_iter = 4 * max(1, math.ceil(math.log2(max(upper, tol) / tol)))
    for step in range(max_iter):
        if idx.shape[0] == 0:
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            t = hi - g_hi * (hi - lo) / (g_hi - g_lo)
        bisect = ~np.isfinite(t) | (t <= lo) | (t >= hi)
        if step % 3 == 2:  # guarantee progress: bisect where the bracket did not halve
            bisect |= (hi - lo) > 0.5 * width
            width = hi - lo
        t = np.where(bisect, 0.5 * (lo + hi), t)
        g = func(t, idx) - target
        up = g >= 0
        hit = np.abs(g) <= 1e-12 * abs(target)
        # Illinois: halve the value at an endpoint kept twice in a row
        g_lo = np.where(~up & (side == -1), g_lo, np.where(up & (side == -1), 0.5 * g_lo, g_lo))
        g_hi = np.where(up & (side == 1), g_hi, np.where(~up & (side == 1), 0.5 * g_hi, g_hi))
        hi, g_hi = np.where(up, t, hi), np.where(up, g, g_hi)
        lo, g_lo = np.where(up, lo, t), np.where(up, g_lo, g)
        side = np.where(up, -1, 1).astype(np.int8)  # up: hi moved, lo kept
        finished = hit | (hi - lo < tol)
        out[idx[finished]] = hi[finished]
        keep = ~finished
        idx, lo, hi, g_lo, g_hi = idx[keep], lo[keep], hi[keep], g_lo[keep], g_hi[keep]
        side, width = side[keep], width[keep]
    out[idx] = hi
    return out


# Gauss-Legendre rule used on every panel of the Euler-integral quadrature.
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(8)


def _panel_rule(delta: float, y_max: float) -> tuple[FloatArray, FloatArray]:
    """Composite Gauss-Legendre nodes/weights on ``[0, y_max]``, graded geometrically.

    Panels are ``[0, delta], [delta, 2 delta], [2 delta, 4 delta], ...``: on a panel
    ``[h, 2h]`` every singularity of the integrand lies at distance >= ``h`` from it, so
    8 nodes per panel give ~1e-12 relative accuracy.
    """
    edges = [0.0, delta]
    while edges[-1] < y_max:
        edges.append(edges[-1] * 2.0)
    e = np.asarray(edges)
    lo, hi = e[:-1], e[1:]
    half = 0.5 * (hi - lo)
    mid = 0.5 * (hi + lo)
    nodes = (mid[:, None] + half[:, None] * _GL_NODES[None, :]).ravel()
    weights = (half[:, None] * _GL_WEIGHTS[None, :]).ravel()
    return nodes, weights


@dataclasses.dataclass(frozen=True)
class EulerIntegral:
    r"""Result of :func:`log_euler_integral`.

    ``log_j`` is :math:`\log J`; the ``mean_*`` attributes are expectations under the
    normalised integrand :math:`u^{a-1}(1-zu)^{-e}/J` (``None`` unless requested):
    ``mean_log_u`` = :math:`\langle\log u\rangle` (= ``d log J / da``),
    ``mean_mlog1mzu`` = :math:`\langle-\log(1-zu)\rangle` (= ``d log J / de``),
    ``mean_u_over`` = :math:`\langle u/(1-zu)\rangle` (``e`` times it is ``d log J / dz``).
    """

    log_j: FloatArray
    mean_log_u: FloatArray | None = None
    mean_mlog1mzu: FloatArray | None = None
    mean_u_over: FloatArray | None = None


def log_euler_integral(
    a: FloatArray,
    e: FloatArray,
    z: FloatArray,
    *,
    a_index: IntArray | None = None,
    grad: bool = False,
) -> EulerIntegral:
    r"""Log of Euler's integral :math:`J(a,e,z)=\int_0^1 u^{a-1}(1-zu)^{-e}\,du`.

    :math:`J = {}_2F_1(e, a; a+1; z)/a`, the Gauss hypergeometric term of the Pareto/NBD
    likelihood (Fader & Hardie 2005 note, eq. 22-24). With :math:`v=u^a`,
    :math:`y=-\log v` it becomes
    :math:`J = a^{-1}\int_0^\infty e^{-y}(1 - z e^{-y/a})^{-e}dy`, evaluated in log space
    (the integrand is normalised by its maximum :math:`(1-z)^{-e}`, so large ``e`` cannot
    overflow) with composite Gauss-Legendre panels graded towards ``y = 0``. The grading
    is chosen from the distance of the nearest complex singularity (``a |log z|``) and the
    width of the boundary layer, so the rule is accurate to ~1e-13 for all inputs with
    ``0 <= z < 1``, ``a > 0``, ``e >= 0``.

    Parameters
    ----------
    a, e, z : FloatArray
        Broadcastable 1-D arrays. ``a`` may instead be given on a small set of unique
        values with ``a_index`` mapping each element to it (saves ``exp`` evaluations).
    a_index : IntArray, optional
        Index of each element into ``a``.
    grad : bool
        Also return the expectations needed for exact derivatives.
    """
    a = np.asarray(a, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    e = np.asarray(e, dtype=np.float64)
    a_el = a if a_index is None else a[a_index]
    n = max(a_el.shape[0] if a_el.ndim else 1, z.shape[0] if z.ndim else 1)
    a_el = np.broadcast_to(a_el, (n,))
    z_el = np.broadcast_to(z, (n,))
    e_el = np.broadcast_to(e, (n,))
    with np.errstate(divide="ignore"):
        log_z = np.log(z_el)
    sing = a_el * -log_z  # distance of the nearest singularity y = a log z from 0
    width = np.where(z_el > 0, a_el * (1.0 - z_el) / np.maximum(e_el * z_el, 1e-300), np.inf)
    delta = float(np.clip(np.min(np.minimum(sing, width), initial=1.0), 1e-10, 1.0))
    y_max = 30.0 + max(0.0, -math.log(delta))
    nodes, weights = _panel_rule(delta, y_max)
    w_exp = weights * np.exp(-nodes)  # e^{-y} folded into the weights

    if a_index is None:
        a_src, a_index = np.unique(a_el, return_inverse=True)
    else:
        a_src = a
    u_src = np.exp(-nodes[None, :] / a_src[:, None])  # u = e^{-y/a}
    log_u_src = -nodes[None, :] / a_src[:, None]
    log_j = np.empty(n)
    means = [np.empty(n) for _ in range(3)] if grad else []
    chunk = max(1, (1 << 19) // nodes.shape[0])
    for lo in range(0, n, chunk):
        sl = slice(lo, min(n, lo + chunk))
        rows = a_index[sl]
        u = u_src[rows]
        zc, ec = z_el[sl, None], e_el[sl, None]
        one_m_zu = 1.0 - zc * u
        log_1mz = np.log1p(-zc)
        log_ratio = np.log(one_m_zu) - log_1mz  # log((1-zu)/(1-z)) >= 0
        fw = np.exp(-ec * log_ratio) * w_exp  # normalised integrand (<= 1) times weights
        total = fw.sum(axis=1)
        log_j[sl] = np.log(total) - np.log(a_el[sl]) - e_el[sl] * log_1mz[:, 0]
        if grad:
            means[0][sl] = (fw * log_u_src[rows]).sum(axis=1) / total
            means[1][sl] = -(fw * (log_ratio + log_1mz)).sum(axis=1) / total
            means[2][sl] = (fw * (u / one_m_zu)).sum(axis=1) / total
    if not grad:
        return EulerIntegral(log_j=log_j)
    return EulerIntegral(
        log_j=log_j, mean_log_u=means[0], mean_mlog1mzu=means[1], mean_u_over=means[2]
    )


# --------------------------------------------------------------------------------------
# Model interface
# --------------------------------------------------------------------------------------
Params = Mapping[str, float]


class TransactionModel(abc.ABC):
    """Common interface of the purchase-count models (time unit: days).

    Every model exposes the same methods, all vectorised over customers and never mutating
    their inputs: :meth:`fit`, :meth:`log_likelihood`, :meth:`probability_alive`,
    :meth:`expected_purchases`, :meth:`purchase_probability` and
    :meth:`expected_days_to_next_purchase`.
    """

    name: ClassVar[str]
    param_names: ClassVar[tuple[str, ...]]

    # ---- to implement ------------------------------------------------------------
    @abc.abstractmethod
    def _loglik_patterns(
        self, theta: FloatArray, pat: Patterns, *, grad_weights: FloatArray | None
    ) -> tuple[FloatArray, FloatArray | None]:
        """Per-pattern log-likelihood and, if ``grad_weights`` is given, the gradient of
        ``sum(grad_weights * loglik)`` w.r.t. the natural parameters (shape (n_params,))."""

    @abc.abstractmethod
    def _initial_theta(self, pat: Patterns) -> FloatArray:
        """Moment-based starting values."""

    @abc.abstractmethod
    def _p_alive(
        self, theta: FloatArray, x: FloatArray, tx: FloatArray, T: FloatArray
    ) -> FloatArray:
        """P(alive at T | x, t_x, T) on validated arrays."""

    @abc.abstractmethod
    def _alive_expectation(
        self, theta: FloatArray, x: FloatArray, T: FloatArray, t: FloatArray | float
    ) -> FloatArray:
        """E[purchases in (T, T+t] | alive at T, x, T]: depends on x and T only, not on t_x."""

    def probability_alive(
        self, params: Params, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """P(customer still alive at T | x, t_x, T) (the model's ``_p_alive``)."""
        x, tx, t_obs = validate_rft(frequency, recency, T)
        return np.asarray(self._p_alive(self.theta(params), x, tx, t_obs))

    def expected_purchases(
        self,
        params: Params,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        *,
        horizon_days: float | ArrayLike,
    ) -> FloatArray:
        """E[number of purchases in (T, T + horizon_days] | x, t_x, T] =
        P(alive) x the model's ``_alive_expectation``."""
        theta = self.theta(params)
        x, tx, t_obs = validate_rft(frequency, recency, T)
        t = horizon_array(horizon_days, x.shape[0])
        return np.asarray(
            self._p_alive(theta, x, tx, t_obs) * self._alive_expectation(theta, x, t_obs, t)
        )

    def expected_purchases_curve(
        self,
        params: Params,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        *,
        horizons: Sequence[float],
    ) -> list[FloatArray]:
        """:meth:`expected_purchases` at several scalar horizons, sharing the work: P(alive)
        once, the alive expectation once per unique (x, T) pair and horizon."""
        theta = self.theta(params)
        x, tx, t_obs = validate_rft(frequency, recency, T)
        alive = self._p_alive(theta, x, tx, t_obs)
        key = x * (float(t_obs.max(initial=0.0)) + 1.0) + t_obs
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        ux, ut = x[first], t_obs[first]
        return [
            np.asarray(
                alive
                * self._alive_expectation(theta, ux, ut, float(horizon_array(h, 1)[0]))[inverse]
            )
            for h in horizons
        ]

    @abc.abstractmethod
    def purchase_probability(
        self,
        params: Params,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        *,
        horizon_days: float | ArrayLike,
    ) -> FloatArray:
        """P(at least one purchase in (T, T + horizon_days] | x, t_x, T)."""

    # ---- shared ------------------------------------------------------------------
    def theta(self, params: Params) -> FloatArray:
        """Parameter mapping -> array in ``param_names`` order (validated positive)."""
        try:
            theta = np.array([float(params[k]) for k in self.param_names])
        except KeyError as exc:
            raise ValueError(f"{self.name}: missing parameter {exc}") from None
        if not np.all(np.isfinite(theta)) or np.any(theta <= 0):
            raise ValueError(f"{self.name}: parameters must be finite and > 0, got {params}")
        return theta

    def log_likelihood(
        self, params: Params, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """Per-customer log-likelihood (same order as the input)."""
        x, tx, t_obs = validate_rft(frequency, recency, T)
        pat = Patterns.from_arrays(x, tx, t_obs)
        ll, _ = self._loglik_patterns(self.theta(params), pat, grad_weights=None)
        return ll[pat.inverse]

    def loglik_and_grad(self, theta: FloatArray, pat: Patterns) -> tuple[float, FloatArray]:
        """Total weighted log-likelihood and its gradient w.r.t. natural parameters."""
        ll, g = self._loglik_patterns(theta, pat, grad_weights=pat.weights)
        assert g is not None  # noqa: S101 - internal invariant
        return float(pat.weights @ ll), g

    def fit(
        self,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        *,
        penalizer: float = 0.0,
        initial_params: Params | None = None,
        patterns: Patterns | None = None,
    ) -> FitResult:
        """Maximum-likelihood fit on weighted unique patterns.

        Parameters
        ----------
        frequency, recency, T : array_like
            Per-customer repeat-purchase count, days first->last purchase, days first
            purchase->end of observation.
        penalizer : float
            L2 coefficient, see :func:`minimize_log_params`.
        initial_params : mapping, optional
            Starting values (default: moment-based).
        patterns : Patterns, optional
            Pre-compressed data (skips validation/compression; the arrays are then only
            used for nothing and may be empty).
        """
        if patterns is None:
            x, tx, t_obs = validate_rft(frequency, recency, T)
            patterns = Patterns.from_arrays(x, tx, t_obs)
        pat = patterns
        if pat.n_patterns == 0:
            raise ValueError(f"{self.name}: cannot fit on zero customers")
        theta0 = self._initial_theta(pat) if initial_params is None else self.theta(initial_params)
        with np.errstate(over="ignore", under="ignore"):
            opt = minimize_log_params(
                lambda th: self.loglik_and_grad(th, pat),
                theta0,
                total_weight=pat.n_customers,
                penalizer=penalizer,
            )
        k = len(self.param_names)
        return FitResult(
            model=self.name,
            params={n: float(v) for n, v in zip(self.param_names, opt.theta, strict=True)},
            log_likelihood=opt.log_likelihood,
            bic=bic(opt.log_likelihood, k, pat.n_customers),
            n_params=k,
            n_customers=round(pat.n_customers),
            n_repeat_customers=round(pat.n_repeat),
            converged=opt.converged,
            message=opt.message,
            n_patterns=pat.n_patterns,
            n_evaluations=opt.n_evaluations,
        )

    def expected_days_to_next_purchase(
        self,
        params: Params,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        *,
        max_days: float = 3650.0,
        tol_days: float = 1e-3,
    ) -> FloatArray:
        """Days after ``T`` until one purchase is expected.

        Defined as the smallest horizon ``t`` with
        ``expected_purchases(..., horizon_days=t) >= 1``, found by vectorised bisection
        (to ``tol_days``). NaN when the expectation stays below 1 up to ``max_days``
        (e.g. customers that have most likely churned).
        """
        x, tx, t_obs = validate_rft(frequency, recency, T)

        def func(t: FloatArray, idx: IntArray) -> FloatArray:
            return self.expected_purchases(params, x[idx], tx[idx], t_obs[idx], horizon_days=t)

        return solve_increasing(func, 1.0, x.shape[0], upper=max_days, tol=tol_days)


def horizon_array(horizon_days: float | ArrayLike, n: int) -> FloatArray:
    """Broadcast a scalar or per-customer horizon to a validated float array."""
    t = np.broadcast_to(np.asarray(horizon_days, dtype=np.float64), (n,))
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("horizon_days must be finite and >= 0")
    return np.array(t)


# --------------------------------------------------------------------------------------
# Beta-geometric family: BG/NBD and MBG/NBD
# --------------------------------------------------------------------------------------
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
    _shift: ClassVar[int]

    def _alive_weight(self, x: FloatArray) -> NDArray[np.bool_]:
        """Indicator :math:`\\delta` of the 'dropped out after the last purchase' term."""
        return (x > 0) if self._shift == 0 else np.ones(x.shape, dtype=bool)

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
        x = pat.x
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
        has = self._alive_weight(x)
        denom = np.where(has, b + x - 1.0 + sh, 1.0)
        a3 = -(r + x) * log_aT_u[iT]
        with np.errstate(divide="ignore"):
            a4 = np.where(has, math.log(a) - np.log(denom) - (r + x) * log_atx_u[itx], -np.inf)
        m = np.logaddexp(a3, a4)
        ll = a12_u[ix] + m
        if grad_weights is None:
            return ll, None
        wt = grad_weights
        w4 = np.exp(a4 - m)
        w3 = 1.0 - w4
        # x-only, T-only and t_x-only factors are summed per unique value first
        wx = np.bincount(ix, weights=wt, minlength=xu.shape[0])
        c3 = np.bincount(iT, weights=wt * w3 * (r + x), minlength=log_aT_u.shape[0])
        c4 = np.bincount(itx, weights=wt * w4 * (r + x), minlength=log_atx_u.shape[0])
        c3r = np.bincount(iT, weights=wt * w3, minlength=log_aT_u.shape[0])
        c4r = np.bincount(itx, weights=wt * w4, minlength=log_atx_u.shape[0])
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
                wx @ db_u - float(wt @ (w4 / denom)),
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
        val = math.log(a) - np.log(denom) + (r + x) * (np.log(alpha + T) - np.log(alpha + tx))
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
        :math:`b'=b+x+\sigma`:

        .. math:: \frac{a+b'-1}{a-1}\Big[1-(1-z)^{a-1}\,
                  {}_2F_1(a+b'-1-r-x,\ a-1;\ a+b'-1;\ z)\Big],\quad z=\frac{t}{\alpha+T+t},

        which is eq. 10's :math:`(1-z)^{r+x}{}_2F_1(r+x,b+x;a+b+x-1;z)` after Euler's
        transformation (no overflow for large ``x``). ``a`` within 1e-7 of 1 is nudged by
        1e-7 (removable singularity).
        """
        r, alpha, a, b = theta
        if abs(a - 1.0) < 1e-7:
            a = 1.0 + math.copysign(1e-7, a - 1.0)
        b_post = b + x + self._shift
        c = a + b_post - 1.0
        z = t / (alpha + T + t)
        with np.errstate(divide="ignore"):
            log_1mz = np.log1p(-z)
        hyp = special.hyp2f1(c - r - x, a - 1.0, c, z)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            bracket = np.where(
                hyp > 0,
                -np.expm1((a - 1.0) * log_1mz + np.log(np.where(hyp > 0, hyp, 1.0))),
                1.0 - np.exp((a - 1.0) * log_1mz) * hyp,
            )
        return np.asarray(c / (a - 1.0) * bracket)

    def purchase_probability(
        self,
        params: Params,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        *,
        horizon_days: float | ArrayLike,
    ) -> FloatArray:
        r"""P(>= 1 purchase in :math:`(T, T+t]`).

        Drop-out can only happen right after a purchase, so an alive customer makes a
        purchase in the horizon iff the next Poisson event falls in it:

        .. math:: P(\text{alive})\Big[1-\Big(\frac{\alpha+T}{\alpha+T+t}\Big)^{r+x}\Big].
        """
        theta = self.theta(params)
        x, tx, t_obs = validate_rft(frequency, recency, T)
        t = horizon_array(horizon_days, x.shape[0])
        r, alpha = theta[0], theta[1]
        alive = self._p_alive(theta, x, tx, t_obs)
        return np.asarray(alive * -np.expm1(-(r + x) * np.log1p(t / (alpha + t_obs))))
