"""Shared interface of the probabilistic customer-base models (time unit: days).

* :class:`FitResult` — the outcome of one maximum-likelihood fit;
* the input contract and pattern compression are in :mod:`~clv_pipeline.models.data`
  (re-exported here: :func:`validate_rft`, :func:`as_float_array`, :func:`horizon_array`,
  :class:`Patterns`, :class:`UniqueValues`);
* :class:`ParametricModel` — parameter mapping and the fit on log-parameters shared by every
  model, and :class:`TransactionModel`, the interface of the purchase-count models
  (identical method names on every model), with :func:`bic`.

The models themselves live in :mod:`~clv_pipeline.models.bgnbd` (BG/NBD and the shared
beta-geometric family), :mod:`~clv_pipeline.models.mbgnbd`,
:mod:`~clv_pipeline.models.pareto_nbd` and :mod:`~clv_pipeline.models.gamma_gamma`; the
optimiser, root search and quadrature in :mod:`~clv_pipeline.models.numerics`.

Time unit is **days** throughout: rate/scale parameters (``alpha``, ``beta``) are in days.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike

from clv_pipeline.models.data import (
    Patterns,
    UniqueValues,
    as_float_array,
    horizon_array,
    validate_rft,
)
from clv_pipeline.models.information import (
    DEGENERATE_DROPOUT,
    dropout_measure,
    observed_information,
)
from clv_pipeline.models.numerics import (
    LOG_PARAM_BOUNDS,
    FloatArray,
    IntArray,
    LogLikGrad,
    minimize_log_params,
    solve_increasing,
)

#: Horizon precision (days) of the generic root search in
#: :meth:`TransactionModel.expected_days_to_next_purchase`.
NEXT_PURCHASE_TOL_DAYS = 1e-3


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
        The fit can be trusted: ``optimizer_converged``, a positive-definite Hessian
        (``hessian_positive_definite``) and no degenerate dropout (``degenerate``).
    message : str
        Optimiser message, or the reason for failure.
    selected : bool
        Set by model selection in :func:`clv_pipeline.models.fit_and_predict`.
    n_patterns : int
        Number of weighted unique data patterns the likelihood was evaluated on.
    n_evaluations : int
        Number of objective/gradient evaluations (the Hessian's not included).
    optimizer_converged : bool
        The optimiser reported convergence (or stopped at a point whose projected gradient is
        negligible), no parameter is at an optimisation bound and the log-likelihood is finite.
    at_bounds : tuple[str, ...]
        Parameters stopped at an optimisation bound (1e-9 or 1e9).
    hessian_positive_definite : bool | None
        The observed information (Hessian of the negative log-likelihood in log-parameters,
        :func:`~clv_pipeline.models.information.observed_information`) is positive definite;
        None when it was not computed (``fit(..., diagnose=False)``).
    condition_number : float
        Its condition number (``inf`` when singular, NaN when not computed).
    std_errors : dict[str, float]
        Natural-scale standard errors (delta method from the log scale); NaN when the Hessian
        is not positive definite.
    dropout : float | None
        The population dropout probability of a purchase model
        (:func:`~clv_pipeline.models.information.dropout_measure`); None for Gamma-Gamma.
    degenerate : bool
        ``dropout`` below :data:`~clv_pipeline.models.information.DEGENERATE_DROPOUT`: the
        model has collapsed to "nobody drops out" (``P(alive) ~ 1`` for everyone).
    selection_reason : str | None
        Why model selection chose (or passed over) this fit, in plain words.
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
    optimizer_converged: bool = False
    at_bounds: tuple[str, ...] = ()
    hessian_positive_definite: bool | None = False
    condition_number: float = math.nan
    std_errors: dict[str, float] = dataclasses.field(default_factory=dict)
    dropout: float | None = None
    degenerate: bool = False
    selection_reason: str | None = None


def bic(log_likelihood: float, n_params: int, n_obs: float) -> float:
    """Bayesian information criterion ``k ln(n) - 2 LL``."""
    return float(n_params * math.log(max(n_obs, 1.0)) - 2.0 * log_likelihood)


# --------------------------------------------------------------------------------------
# Model interface
# --------------------------------------------------------------------------------------
Params = Mapping[str, float]


class ParametricModel(abc.ABC):
    """A model with named positive parameters, fitted by maximum likelihood on log-parameters.

    ``params`` arguments are mappings name -> float (e.g. :attr:`FitResult.params`).
    """

    name: ClassVar[str]
    param_names: ClassVar[tuple[str, ...]]

    def theta(self, params: Params) -> FloatArray:
        """Parameter mapping -> array in ``param_names`` order (validated positive)."""
        try:
            theta = np.array([float(params[k]) for k in self.param_names])
        except KeyError as exc:
            raise ValueError(f"{self.name}: missing parameter {exc}") from None
        if not np.all(np.isfinite(theta)) or np.any(theta <= 0):
            raise ValueError(f"{self.name}: parameters must be finite and > 0, got {params}")
        return theta

    def _fit_log_params(
        self,
        loglik_grad: LogLikGrad,
        theta0: FloatArray,
        *,
        penalizer: float,
        n_customers: float,
        n_repeat: float,
        n_patterns: int,
        diagnose: bool = True,
    ) -> FitResult:
        """Run :func:`~clv_pipeline.models.numerics.minimize_log_params` (averaging over
        ``n_customers``) and report the optimum as a :class:`FitResult` with its diagnostics:
        the observed information (:func:`~clv_pipeline.models.information.observed_information`,
        ``2 k`` extra gradient evaluations; skipped when ``diagnose`` is false), parameters at
        bounds and degenerate dropout."""
        with np.errstate(over="ignore", under="ignore"):
            opt = minimize_log_params(
                loglik_grad, theta0, total_weight=n_customers, penalizer=penalizer
            )
        k = len(self.param_names)
        params = {n: float(v) for n, v in zip(self.param_names, opt.theta, strict=True)}
        log_theta = np.log(opt.theta)
        at_bounds = tuple(
            n
            for n, v in zip(self.param_names, log_theta, strict=True)
            if np.isclose(v, LOG_PARAM_BOUNDS[0]) or np.isclose(v, LOG_PARAM_BOUNDS[1])
        )
        info = (
            observed_information(
                loglik_grad, opt.theta, penalizer=penalizer, n_customers=n_customers
            )
            if diagnose
            else None
        )
        dropout = dropout_measure(self.name, params)
        degenerate = dropout is not None and not dropout[0] >= DEGENERATE_DROPOUT
        return FitResult(
            model=self.name,
            params=params,
            log_likelihood=opt.log_likelihood,
            bic=bic(opt.log_likelihood, k, n_customers),
            n_params=k,
            n_customers=round(n_customers),
            n_repeat_customers=round(n_repeat),
            converged=opt.converged and (info is None or info.positive_definite) and not degenerate,
            message=opt.message,
            n_patterns=n_patterns,
            n_evaluations=opt.n_evaluations,
            optimizer_converged=opt.converged,
            at_bounds=at_bounds,
            hessian_positive_definite=None if info is None else info.positive_definite,
            condition_number=math.nan if info is None else info.condition_number,
            std_errors=dict(
                zip(
                    self.param_names,
                    [math.nan] * k if info is None else info.std_errors.tolist(),
                    strict=True,
                )
            ),
            dropout=None if dropout is None else dropout[0],
            degenerate=degenerate,
        )


class TransactionModel(ParametricModel):
    """Common interface of the purchase-count models (time unit: days).

    Every model exposes the same methods, all vectorised over customers and never mutating
    their inputs: :meth:`fit`, :meth:`log_likelihood`, :meth:`probability_alive`,
    :meth:`expected_purchases`, :meth:`purchase_probability` and
    :meth:`expected_days_to_next_purchase`.
    """

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

    def _alive_or(
        self,
        p_alive: FloatArray | None,
        theta: FloatArray,
        x: FloatArray,
        tx: FloatArray,
        T: FloatArray,
    ) -> FloatArray:
        """The caller's P(alive) of these customers (checked for shape), else computed."""
        if p_alive is None:
            return self._p_alive(theta, x, tx, T)
        if np.shape(p_alive) != x.shape:
            raise ValueError("p_alive must have one value per customer")
        return p_alive

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
        p_alive: FloatArray | None = None,
    ) -> FloatArray:
        """E[number of purchases in (T, T + horizon_days] | x, t_x, T] =
        P(alive) x the model's ``_alive_expectation`` (``p_alive``: :meth:`probability_alive`
        of the same customers, when the caller has it)."""
        theta = self.theta(params)
        x, tx, t_obs = validate_rft(frequency, recency, T)
        t = horizon_array(horizon_days, x.shape[0])
        return np.asarray(
            self._alive_or(p_alive, theta, x, tx, t_obs)
            * self._alive_expectation(theta, x, t_obs, t)
        )

    def expected_purchases_curve(
        self,
        params: Params,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        *,
        horizons: Sequence[float],
        p_alive: FloatArray | None = None,
    ) -> list[FloatArray]:
        """:meth:`expected_purchases` at several scalar horizons, sharing the work: P(alive)
        once (or ``p_alive``, :meth:`probability_alive` of the same customers, when the caller
        has it already), the alive expectation once per unique (x, T) pair and horizon."""
        theta = self.theta(params)
        x, tx, t_obs = validate_rft(frequency, recency, T)
        if p_alive is None:
            alive = self._p_alive(theta, x, tx, t_obs)
        elif np.shape(p_alive) != x.shape:
            raise ValueError("p_alive must have one value per customer")
        else:
            alive = p_alive
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
        p_alive: FloatArray | None = None,
    ) -> FloatArray:
        """P(at least one purchase in (T, T + horizon_days] | x, t_x, T). ``p_alive``:
        :meth:`probability_alive` of the same customers when the caller has it (the models that
        use it do not compute it again)."""

    # ---- shared ------------------------------------------------------------------
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
        diagnose: bool = True,
    ) -> FitResult:
        """Maximum-likelihood fit on weighted unique patterns, with its diagnostics.

        Parameters
        ----------
        frequency, recency, T : array_like
            Per-customer repeat-purchase count, days first->last purchase, days first
            purchase->end of observation.
        penalizer : float
            L2 coefficient, see :func:`~clv_pipeline.models.numerics.minimize_log_params`.
        initial_params : mapping, optional
            Starting values (default: moment-based).
        patterns : Patterns, optional
            Pre-compressed data (skips validation/compression; the arrays are then ignored
            and may be empty).
        diagnose : bool
            Compute the observed information (standard errors, positive definiteness,
            condition number; ``2 k`` gradient evaluations). ``False`` leaves them NaN/None
            (``converged`` then does not require a positive-definite Hessian).
        """
        if patterns is None:
            x, tx, t_obs = validate_rft(frequency, recency, T)
            patterns = Patterns.from_arrays(x, tx, t_obs)
        pat = patterns
        if pat.n_patterns == 0:
            raise ValueError(f"{self.name}: cannot fit on zero customers")
        theta0 = self._initial_theta(pat) if initial_params is None else self.theta(initial_params)
        return self._fit_log_params(
            lambda th: self.loglik_and_grad(th, pat),
            theta0,
            penalizer=penalizer,
            n_customers=pat.n_customers,
            n_repeat=pat.n_repeat,
            n_patterns=pat.n_patterns,
            diagnose=diagnose,
        )

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
        """Days after ``T`` until one purchase is expected.

        Defined as the smallest horizon ``t`` with
        ``expected_purchases(..., horizon_days=t) >= 1``, found by vectorised root search
        (:func:`~clv_pipeline.models.numerics.solve_increasing`, to
        :data:`NEXT_PURCHASE_TOL_DAYS`). NaN when the expectation stays below 1 up to
        ``max_days`` (e.g. customers that have most likely churned), and only then: a
        non-finite expectation raises ``FloatingPointError`` instead of becoming NaN (the
        expectations are finite for every allowed parameter, see
        :func:`~clv_pipeline.models.numerics.beta_dropout_expectation`). ``p_alive``:
        :meth:`probability_alive` of the same customers when the caller has it; P(alive) does
        not depend on the horizon, so it is computed once, not at every step of the search.
        """
        x, tx, t_obs = validate_rft(frequency, recency, T)
        alive = self._alive_or(p_alive, self.theta(params), x, tx, t_obs)

        def func(t: FloatArray, idx: IntArray) -> FloatArray:
            return self.expected_purchases(
                params, x[idx], tx[idx], t_obs[idx], horizon_days=t, p_alive=alive[idx]
            )

        return solve_increasing(func, 1.0, x.shape[0], upper=max_days, tol=NEXT_PURCHASE_TOL_DAYS)


__all__ = [
    "NEXT_PURCHASE_TOL_DAYS",
    "FitResult",
    "FloatArray",
    "IntArray",
    "ParametricModel",
    "Params",
    "Patterns",
    "TransactionModel",
    "UniqueValues",
    "as_float_array",
    "bic",
    "horizon_array",
    "validate_rft",
]
