"""What the curvature of the likelihood says about a fit: standard errors, conditioning and
degenerate dropout.

* :func:`observed_information` — the Hessian of the minimised objective with respect to the
  log-parameters the optimiser works in (central differences of the analytic gradient), whether
  it is positive definite, its condition number and the natural-scale standard errors by the
  delta method;
* :func:`dropout_measure` — the dropout probability that tells a working purchase model from a
  collapsed one (``P(alive) ~ 1`` for everyone).

Pure numpy; nothing here imports the models (``base.py`` calls it for every fit).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

#: Step (in log-parameters, i.e. relative) of the central differences of the gradient.
HESSIAN_STEP = 1e-4
#: Below this ratio of the smallest to the largest eigenvalue the Hessian is numerically
#: singular: not positive definite (a flat direction, the parameters are not identified).
SINGULAR_RATIO = 1e-12
#: Days over which the Pareto/NBD dropout probability is stated.
DROPOUT_YEAR_DAYS = 365.0
#: A dropout probability (:func:`dropout_measure`) below this is a collapsed dropout process:
#: the fit is degenerate (``P(alive) ~ 1`` for everyone) and not ``converged``.
DEGENERATE_DROPOUT = 1e-3


@dataclasses.dataclass(frozen=True)
class Information:
    """Observed information at a fitted optimum.

    Attributes
    ----------
    hessian : FloatArray
        ``(k, k)`` Hessian of the minimised total objective ``-LL + N * penalizer * sum(theta^2)``
        with respect to ``log(theta)``.
    positive_definite : bool
        Finite and every eigenvalue above :data:`SINGULAR_RATIO` times the largest: the optimum
        is a strict local maximum of the likelihood.
    condition_number : float
        Largest / smallest eigenvalue (``inf`` when not positive definite, NaN when not finite).
    std_errors : FloatArray
        Natural-scale standard errors ``theta_k * sqrt((H^-1)_kk)`` (delta method from the
        log scale); NaN when the Hessian is not positive definite.
    """

    hessian: FloatArray
    positive_definite: bool
    condition_number: float
    std_errors: FloatArray


def log_param_hessian(
    gradient: Callable[[FloatArray], FloatArray], log_theta: FloatArray, *, step: float
) -> FloatArray:
    """Symmetrised central-difference Hessian of a function whose gradient (with respect to
    ``log_theta``) is ``gradient``: ``2 k`` gradient evaluations."""
    k = log_theta.shape[0]
    hessian = np.empty((k, k))
    for j in range(k):
        shift = np.zeros(k)
        shift[j] = step
        hessian[:, j] = (gradient(log_theta + shift) - gradient(log_theta - shift)) / (2 * step)
    return np.asarray(0.5 * (hessian + hessian.T))


def observed_information(
    loglik_grad: Callable[[FloatArray], tuple[float, FloatArray]],
    theta: FloatArray,
    *,
    penalizer: float,
    n_customers: float,
    step: float = HESSIAN_STEP,
) -> Information:
    """Observed information of the fit at ``theta`` (natural scale, days).

    Parameters
    ----------
    loglik_grad : callable
        Total weighted log-likelihood and its gradient in the natural parameters (the same
        kernel the optimiser used).
    theta : FloatArray
        The optimum.
    penalizer, n_customers : float
        The L2 penalty of the fit: the curvature is that of the objective actually minimised,
        ``-LL(theta) + n_customers * penalizer * sum(theta^2)`` (the plain observed information
        ``-d^2 LL`` when ``penalizer`` is 0).
    step : float
        Central-difference step in log-parameters.
    """
    theta = np.asarray(theta, dtype=np.float64)
    k = theta.shape[0]
    nan = np.full(k, np.nan)
    if not np.all(np.isfinite(theta)) or np.any(theta <= 0):
        return Information(np.full((k, k), np.nan), False, math.nan, nan)
    weight = 2.0 * penalizer * max(n_customers, 1.0)

    def gradient(log_theta: FloatArray) -> FloatArray:
        th = np.exp(log_theta)
        _, g = loglik_grad(th)
        return np.asarray((-np.asarray(g, dtype=np.float64) + weight * th) * th)

    with np.errstate(all="ignore"):
        hessian = log_param_hessian(gradient, np.log(theta), step=step)
    if not np.all(np.isfinite(hessian)):
        return Information(hessian, False, math.nan, nan)
    eigen = np.linalg.eigvalsh(hessian)
    top = float(np.max(np.abs(eigen)))
    low = float(eigen[0])
    if top == 0 or low <= SINGULAR_RATIO * top:
        return Information(hessian, False, math.inf, nan)
    covariance = np.linalg.inv(hessian)
    std_log = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    return Information(hessian, True, float(eigen[-1] / low), theta * std_log)


def dropout_measure(model: str, params: Mapping[str, float]) -> tuple[float, str] | None:
    """The population dropout probability of a purchase model and what it means, or ``None``
    for models without dropout (Gamma-Gamma) or unknown names.

    * BG/NBD, MBG/NBD: the mean chance of dropping out after a purchase, ``a / (a + b)``
      (the mean of Beta(a, b)); it tends to 0 as ``a -> 0`` or ``b -> inf``;
    * Pareto/NBD: the chance that a customer drops out within a year,
      ``1 - (beta / (beta + 365))^s`` (lifetime exponential with a Gamma(s, beta) rate); it tends
      to 0 as ``s -> 0`` or ``beta -> inf``.

    Near 0 the model has no dropout: ``P(alive) ~ 1`` for every customer, whatever their silence.
    """
    with np.errstate(all="ignore"):
        if model in {"bgnbd", "mbgnbd"}:
            a, b = float(params["a"]), float(params["b"])
            return a / (a + b), "chance of dropping out after a purchase"
        if model == "pareto_nbd":
            s, beta = float(params["s"]), float(params["beta"])
            value = -math.expm1(-s * math.log1p(DROPOUT_YEAR_DAYS / beta))
            return value, "chance of dropping out within a year"
    return None


__all__ = [
    "DEGENERATE_DROPOUT",
    "DROPOUT_YEAR_DAYS",
    "HESSIAN_STEP",
    "SINGULAR_RATIO",
    "Information",
    "dropout_measure",
    "log_param_hessian",
    "observed_information",
]
