"""Vectorised simulation from the generative processes of the models (for tests/benchmarks).

No Python loop over customers: every draw is a numpy array operation. Time unit: days.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike

from clv_pipeline.models.base import FloatArray


def _rates(rng: np.random.Generator, shape: float, scale_days: float, n: int) -> FloatArray:
    """Gamma(shape, rate=scale_days) draws, i.e. numpy scale = 1 / scale_days."""
    return rng.gamma(shape, 1.0 / scale_days, size=n)


def _last_event_time(
    rng: np.random.Generator, x: FloatArray, n_events: FloatArray, window: FloatArray
) -> FloatArray:
    """Time of the x-th of ``n_events`` uniform events on ``(0, window)`` (0 if x = 0)."""
    xi = np.maximum(x, 1.0)
    frac = rng.beta(xi, np.maximum(n_events - x, 0.0) + 1.0)
    return np.where(x > 0, window * frac, 0.0)


def simulate_beta_geometric(
    params: Mapping[str, float],
    T: ArrayLike,
    *,
    seed: int | np.random.Generator = 0,
    dropout_at_zero: bool = False,
) -> tuple[FloatArray, FloatArray]:
    """Simulate BG/NBD (or MBG/NBD with ``dropout_at_zero=True``) ``(x, t_x)`` for each T.

    Repeat purchases follow Poisson(lambda); after each repeat purchase (and at time 0 for
    MBG/NBD) the customer drops out with probability p. The number of purchases made
    before dropping out is geometric, so ``x = min(N(T), K)``.
    """
    rng = np.random.default_rng(seed)
    t_obs = np.asarray(T, dtype=np.float64)
    n = t_obs.shape[0]
    lam = _rates(rng, params["r"], params["alpha"], n)
    p = rng.beta(params["a"], params["b"], size=n)
    k = np.asarray(rng.geometric(p), dtype=np.float64)  # purchase index at which the customer drops
    if dropout_at_zero:
        k = k - 1.0
    n_events = rng.poisson(lam * t_obs).astype(np.float64)
    x = np.minimum(n_events, k)
    return x, _last_event_time(rng, x, n_events, t_obs)


def simulate_pareto_nbd(
    params: Mapping[str, float], T: ArrayLike, *, seed: int | np.random.Generator = 0
) -> tuple[FloatArray, FloatArray]:
    """Simulate Pareto/NBD ``(x, t_x)``: Poisson(lambda) purchases until Exp(mu) death."""
    rng = np.random.default_rng(seed)
    t_obs = np.asarray(T, dtype=np.float64)
    n = t_obs.shape[0]
    lam = _rates(rng, params["r"], params["alpha"], n)
    mu = _rates(rng, params["s"], params["beta"], n)
    with np.errstate(divide="ignore", over="ignore"):  # a rate of 0 (underflow): never dies
        active = np.minimum(rng.exponential(1.0 / mu), t_obs)
    x = rng.poisson(lam * active).astype(np.float64)
    return x, _last_event_time(rng, x, x, active)


def simulate_spend(
    params: Mapping[str, float], frequency: ArrayLike, *, seed: int | np.random.Generator = 0
) -> FloatArray:
    """Gamma-Gamma mean spend of ``frequency`` transactions (0 where frequency is 0)."""
    rng = np.random.default_rng(seed)
    x = np.asarray(frequency, dtype=np.float64)
    nu = rng.gamma(params["q"], 1.0 / params["v"], size=x.shape[0])
    total = rng.gamma(np.maximum(params["p"] * x, 1e-300), 1.0 / nu)
    return np.where(x > 0, total / np.maximum(x, 1.0), 0.0)
