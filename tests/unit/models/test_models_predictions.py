"""Conditional predictions vs Monte Carlo, by importance sampling the posterior.

Prior draws of the latent rates are weighted by the individual likelihood of the observed
(x, t_x, T); for each draw the customer's state at T (alive/dead) and the future
purchases in (T, T+t] are then *simulated* from the generative process, so the test checks
the whole derivation (posterior + future process), not only an integral.
"""

from __future__ import annotations

import numpy as np
import pytest

from clv_pipeline.models import bgnbd, mbgnbd, pareto_nbd

N_DRAWS = 1_000_000
HORIZON = 120.0
PATTERNS = [(0, 0.0, 100.0), (2, 50.0, 200.0), (6, 280.0, 300.0), (4, 40.0, 300.0)]


def _summaries(w: np.ndarray, alive: np.ndarray, future: np.ndarray):
    w = w / w.sum()
    out = {}
    for name, vals in (("alive", alive), ("ep", future), ("pp", future >= 1)):
        vals = vals.astype(float)
        mean = float(w @ vals)
        se = float(np.sqrt(w**2 @ (vals - mean) ** 2))
        out[name] = (mean, se)
    return out


def _check(out, model, params, x, tx, t_obs):
    got = {
        "alive": model.probability_alive(params, [x], [tx], [t_obs])[0],
        "ep": model.expected_purchases(params, [x], [tx], [t_obs], horizon_days=HORIZON)[0],
        "pp": model.purchase_probability(params, [x], [tx], [t_obs], horizon_days=HORIZON)[0],
    }
    for k, (mean, se) in out.items():
        assert got[k] == pytest.approx(mean, abs=5 * se + 2e-3), (k, got[k], mean, se)


@pytest.mark.slow
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("module,shift", [(bgnbd, 0), (mbgnbd, 1)])
def test_beta_geometric_predictions_match_monte_carlo(module, shift, pattern, bg_params):
    x, tx, t_obs = pattern
    rng = np.random.default_rng(100 + x)
    lam = rng.gamma(bg_params["r"], 1 / bg_params["alpha"], N_DRAWS)
    p = rng.beta(bg_params["a"], bg_params["b"], N_DRAWS)
    l_alive = (1 - p) ** (x + shift) * lam**x * np.exp(-lam * t_obs)
    dead_possible = x > 0 or shift == 1
    l_dead = p * (1 - p) ** max(x - 1 + shift, 0) * lam**x * np.exp(-lam * tx) * dead_possible
    w = l_alive + l_dead
    alive = rng.uniform(size=N_DRAWS) * w < l_alive
    # alive customers: Poisson purchases, drop out after each with probability p
    n_future = rng.poisson(lam * HORIZON)
    k_drop = rng.geometric(p)
    future = np.where(alive, np.minimum(n_future, k_drop), 0)
    _check(_summaries(w, alive, future), module.MODEL, bg_params, x, tx, t_obs)


@pytest.mark.slow
@pytest.mark.parametrize("pattern", PATTERNS)
def test_pareto_predictions_match_monte_carlo(pattern, pareto_params):
    x, tx, t_obs = pattern
    rng = np.random.default_rng(200 + x)
    lam = rng.gamma(pareto_params["r"], 1 / pareto_params["alpha"], N_DRAWS)
    mu = rng.gamma(pareto_params["s"], 1 / pareto_params["beta"], N_DRAWS)
    k = lam + mu
    l_alive = lam**x * np.exp(-k * t_obs)
    l_dead = lam**x * mu / k * (np.exp(-k * tx) - np.exp(-k * t_obs))
    w = l_alive + l_dead
    alive = rng.uniform(size=N_DRAWS) * w < l_alive
    # memoryless lifetime: remaining life ~ Exp(mu); purchases Poisson while alive
    active = np.minimum(rng.exponential(1 / mu), HORIZON)
    future = np.where(alive, rng.poisson(lam * active), 0)
    _check(_summaries(w, alive, future), pareto_nbd.MODEL, pareto_params, x, tx, t_obs)


@pytest.mark.parametrize("module", [bgnbd, mbgnbd, pareto_nbd])
def test_days_to_next_purchase_solves_expectation_equal_one(module, bg_params, pareto_params):
    params = pareto_params if module is pareto_nbd else bg_params
    x = np.array([0.0, 3.0, 10.0, 25.0, 1.0])
    tx = np.array([0.0, 100.0, 280.0, 295.0, 10.0])
    t_obs = np.array([300.0, 300.0, 300.0, 300.0, 700.0])
    days = module.expected_days_to_next_purchase(params, x, tx, t_obs)
    ok = ~np.isnan(days)
    assert ok.any()
    ep = module.expected_purchases(params, x[ok], tx[ok], t_obs[ok], horizon_days=days[ok])
    np.testing.assert_allclose(ep, 1.0, rtol=1e-4)
    # NaN means the expectation stays below 1 up to the cap
    cap = module.expected_purchases(params, x[~ok], tx[~ok], t_obs[~ok], horizon_days=3650.0)
    assert np.all(cap < 1.0)


def test_pareto_closed_form_days_match_generic_bisection(pareto_params):
    from clv_pipeline.models.base import TransactionModel

    x = np.array([0.0, 3.0, 10.0, 25.0])
    tx = np.array([0.0, 100.0, 280.0, 295.0])
    t_obs = np.full(4, 300.0)
    closed = pareto_nbd.expected_days_to_next_purchase(pareto_params, x, tx, t_obs)
    generic = TransactionModel.expected_days_to_next_purchase(
        pareto_nbd.MODEL, pareto_params, x, tx, t_obs
    )
    np.testing.assert_allclose(closed, generic, atol=2e-3, equal_nan=True)


@pytest.mark.parametrize("module", [bgnbd, mbgnbd, pareto_nbd])
def test_predictions_monotone_and_bounded(module, bg_params, pareto_params):
    params = pareto_params if module is pareto_nbd else bg_params
    x, tx, t_obs = np.array([2.0]), np.array([50.0]), np.array([200.0])
    horizons = np.array([0.0, 10.0, 100.0, 1000.0])
    ep = module.expected_purchases(
        params, np.repeat(x, 4), np.repeat(tx, 4), np.repeat(t_obs, 4), horizon_days=horizons
    )
    pp = module.purchase_probability(
        params, np.repeat(x, 4), np.repeat(tx, 4), np.repeat(t_obs, 4), horizon_days=horizons
    )
    assert ep[0] == 0 and pp[0] == 0
    assert np.all(np.diff(ep) > 0) and np.all(np.diff(pp) > 0)
    alive = module.probability_alive(params, x, tx, t_obs)[0]
    assert pp[-1] <= alive + 1e-12


@pytest.mark.parametrize("module", [bgnbd, mbgnbd, pareto_nbd])
def test_expected_purchases_curve_equals_one_call_per_horizon(module, bg_params, pareto_params):
    params = pareto_params if module is pareto_nbd else bg_params
    rng = np.random.default_rng(3)
    t_obs = rng.integers(1, 700, 400).astype(float)
    x = rng.integers(0, 40, 400).astype(float)
    tx = np.where(x > 0, np.floor(rng.uniform(0, 1, 400) * t_obs), 0.0)
    x[:50], t_obs[:50], tx[:50] = 3.0, 300.0, np.linspace(1, 300, 50)  # same (x, T), other t_x
    horizons = [30.4, 91.3, 365.0]
    curve = module.MODEL.expected_purchases_curve(params, x, tx, t_obs, horizons=horizons)
    for h, got in zip(horizons, curve, strict=True):
        want = module.expected_purchases(params, x, tx, t_obs, horizon_days=h)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
