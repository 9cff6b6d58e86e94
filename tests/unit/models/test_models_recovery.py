"""Parameter recovery from data simulated with the models' generative processes."""

from __future__ import annotations

import numpy as np
import pytest

from clv_pipeline.models import bgnbd, gamma_gamma, mbgnbd, pareto_nbd
from clv_pipeline.models.simulate import (
    simulate_beta_geometric,
    simulate_pareto_nbd,
    simulate_spend,
)

N = 30_000


def _T(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(180, 731, N).astype(float)


def _assert_close(got: dict[str, float], true: dict[str, float], rtol: dict[str, float]):
    for k, v in true.items():
        assert got[k] == pytest.approx(v, rel=rtol[k]), (k, got, true)


@pytest.mark.slow
def test_bgnbd_recovers_cdnow_parameters(bg_params):
    t_obs = _T(1)
    x, tx = simulate_beta_geometric(bg_params, t_obs, seed=11)
    fit = bgnbd.fit(x, np.floor(tx), t_obs)
    assert fit.converged
    _assert_close(fit.params, bg_params, {"r": 0.06, "alpha": 0.08, "a": 0.15, "b": 0.2})


@pytest.mark.slow
def test_mbgnbd_recovers_parameters(bg_params):
    params = {"r": 0.24, "alpha": 30.0, "a": 0.79, "b": 2.43}
    t_obs = _T(2)
    x, tx = simulate_beta_geometric(params, t_obs, seed=12, dropout_at_zero=True)
    fit = mbgnbd.fit(x, tx, t_obs)
    assert fit.converged
    _assert_close(fit.params, params, {"r": 0.08, "alpha": 0.1, "a": 0.15, "b": 0.2})


@pytest.mark.slow
def test_pareto_nbd_recovers_cdnow_parameters(pareto_params):
    t_obs = _T(3)
    x, tx = simulate_pareto_nbd(pareto_params, t_obs, seed=13)
    fit = pareto_nbd.fit(x, tx, t_obs)
    assert fit.converged
    _assert_close(fit.params, pareto_params, {"r": 0.1, "alpha": 0.12, "s": 0.25, "beta": 0.35})


@pytest.mark.slow
def test_gamma_gamma_recovers_parameters(gg_params):
    rng = np.random.default_rng(4)
    x = rng.integers(1, 15, N).astype(float)
    m = simulate_spend(gg_params, x, seed=14)
    fit = gamma_gamma.fit(x, m)
    assert fit.converged
    _assert_close(fit.params, gg_params, {"p": 0.12, "q": 0.05, "v": 0.12})
    mean = gamma_gamma.population_mean(fit.params)
    assert mean == pytest.approx(gamma_gamma.population_mean(gg_params), rel=0.02)


def test_penalizer_shrinks_parameters(bg_params):
    t_obs = np.random.default_rng(5).integers(30, 365, 3000).astype(float)
    x, tx = simulate_beta_geometric(bg_params, t_obs, seed=15)
    free = bgnbd.fit(x, tx, t_obs)
    pen = bgnbd.fit(x, tx, t_obs, penalizer=0.01)
    assert sum(v**2 for v in pen.params.values()) < sum(v**2 for v in free.params.values())
    assert pen.log_likelihood < free.log_likelihood
