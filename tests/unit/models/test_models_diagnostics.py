"""Fit diagnostics: standard errors from the observed information, degenerate dropout, the
meaning of ``converged`` and the plain-language checks of ``model_diagnostics``."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from clv_pipeline.models import fit_and_predict
from clv_pipeline.models.bgnbd import MODEL as BGNBD
from clv_pipeline.models.diagnostics import (
    ALL_MODELS,
    DROPOUT_CHECK,
    HESSIAN_CHECK,
    REPEAT_CUSTOMERS_CHECK,
    SELECTION_CHECK,
    STATUSES,
    fit_diagnostics,
)
from clv_pipeline.models.gamma_gamma import MODEL as GAMMA_GAMMA
from clv_pipeline.models.information import DEGENERATE_DROPOUT, dropout_measure
from clv_pipeline.models.mbgnbd import MODEL as MBGNBD
from clv_pipeline.models.pareto_nbd import MODEL as PARETO_NBD
from clv_pipeline.models.simulate import (
    simulate_beta_geometric,
    simulate_pareto_nbd,
    simulate_spend,
)

# CDNOW estimates (FHL 2005) in days, as in conftest.py
BG_PARAMS = {"r": 0.24, "alpha": 4.41 * 7, "a": 0.79, "b": 2.43}
GG_PARAMS = {"p": 6.25, "q": 3.74, "v": 15.44}


@pytest.fixture(scope="module")
def cdnow_like() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD with the CDNOW estimates, 2,357 customers observed 27 to 39 weeks (in days)."""
    rng = np.random.default_rng(1)
    t_obs = rng.integers(27 * 7, 39 * 7 + 1, 2357).astype(float)
    x, tx = simulate_beta_geometric(BG_PARAMS, t_obs, seed=2)
    return x, np.floor(tx), t_obs


def _natural_hessian(f, theta: np.ndarray, rel: float = 1e-4) -> np.ndarray:
    """Central second differences of the log-likelihood VALUE in the natural parameters (an
    independent route: no gradient, no log scale)."""
    k = theta.shape[0]
    h = rel * theta
    out = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            ei, ej = np.eye(k)[i] * h[i], np.eye(k)[j] * h[j]
            out[i, j] = (
                f(theta + ei + ej) - f(theta + ei - ej) - f(theta - ei + ej) + f(theta - ei - ej)
            ) / (4 * h[i] * h[j])
    return out


@pytest.mark.parametrize("model", [BGNBD, PARETO_NBD, MBGNBD], ids=lambda m: m.name)
def test_std_errors_match_finite_differences_of_the_likelihood(model, cdnow_like):
    x, tx, t_obs = cdnow_like
    fit = model.fit(x, tx, t_obs)
    assert fit.converged and fit.hessian_positive_definite
    theta = model.theta(fit.params)

    def total(th: np.ndarray) -> float:
        params = dict(zip(model.param_names, th, strict=True))
        return float(model.log_likelihood(params, x, tx, t_obs).sum())

    covariance = np.linalg.inv(-_natural_hessian(total, theta))
    expected = np.sqrt(np.diag(covariance))
    got = np.array([fit.std_errors[n] for n in model.param_names])
    np.testing.assert_allclose(got, expected, rtol=2e-3)
    assert 1 < fit.condition_number < 1e6


def test_bgnbd_std_errors_cover_the_truth_and_match_the_published_scale(cdnow_like):
    fit = BGNBD.fit(*cdnow_like)
    for name, truth in BG_PARAMS.items():
        se = fit.std_errors[name]
        assert abs(fit.params[name] - truth) < 4 * se, name
    # FHL (2005) on the CDNOW sample: SE(r) = 0.0125, SE(a) = 0.185 (same size of sample)
    assert 0.008 < fit.std_errors["r"] < 0.02
    assert 0.08 < fit.std_errors["a"] < 0.4


def test_gamma_gamma_has_std_errors_too():
    rng = np.random.default_rng(3)
    x = rng.integers(1, 8, 3000).astype(float)
    m = simulate_spend(GG_PARAMS, x, seed=4)
    fit = GAMMA_GAMMA.fit(x, m)
    assert fit.converged and fit.dropout is None and not fit.degenerate
    assert all(0 < fit.std_errors[n] < fit.params[n] for n in GAMMA_GAMMA.param_names)


@pytest.mark.parametrize(
    ("model", "params", "degenerate"),
    [
        ("bgnbd", {"a": 2.8e-5, "b": 4130.0}, True),  # the collapsed retail fit of issue 19
        ("pareto_nbd", {"s": 1.5e-6, "beta": 7.4e6}, True),  # the same, Pareto/NBD
        ("mbgnbd", {"a": 1e-4, "b": 1.0}, True),  # a -> 0
        ("bgnbd", {"a": 1.0, "b": 1e7}, True),  # b -> inf
        ("bgnbd", {"a": 0.79, "b": 2.43}, False),  # CDNOW: p = 0.245
        ("pareto_nbd", {"s": 0.61, "beta": 81.7}, False),  # CDNOW: 64% leave within a year
    ],
)
def test_dropout_measure(model, params, degenerate):
    value, meaning = dropout_measure(model, params) or (math.nan, "")
    assert (value < DEGENERATE_DROPOUT) is degenerate
    assert "dropping out" in meaning
    assert dropout_measure("gamma_gamma", {"p": 1.0, "q": 2.0, "v": 3.0}) is None


@pytest.fixture(scope="module")
def no_dropout() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Customers who never leave (pure NBD purchasing): every dropout process collapses."""
    rng = np.random.default_rng(3)
    t_obs = rng.integers(100, 400, 3000).astype(float)
    x, tx = simulate_pareto_nbd({"r": 0.5, "alpha": 30.0, "s": 0.5, "beta": 1e12}, t_obs, seed=4)
    return x, np.floor(tx), t_obs


@pytest.mark.parametrize("model", [BGNBD, PARETO_NBD, MBGNBD], ids=lambda m: m.name)
def test_collapsed_dropout_is_degenerate_and_not_converged(model, no_dropout):
    fit = model.fit(*no_dropout)
    assert fit.optimizer_converged  # the optimiser is happy ...
    assert fit.degenerate and fit.dropout is not None and fit.dropout < DEGENERATE_DROPOUT
    assert not fit.converged  # ... but the fit is not to be trusted
    checks = {d.check: d for d in fit_diagnostics(fit)}
    assert checks[DROPOUT_CHECK].status == "warn"
    assert "P(alive) ~ 1" in checks[DROPOUT_CHECK].message
    assert checks[DROPOUT_CHECK].threshold == DEGENERATE_DROPOUT


def test_collapsed_history_still_values_customers_and_says_why(no_dropout):
    x, tx, t_obs = no_dropout
    m = simulate_spend(GG_PARAMS, x, seed=5)
    run = fit_and_predict(x, tx, t_obs, m, models=("bgnbd", "pareto_nbd"))
    assert run.data_sufficient and run.selected_model in {"bgnbd", "pareto_nbd"}
    rows = {(d.model, d.check): d for d in run.diagnostics}
    selection = rows[(ALL_MODELS, SELECTION_CHECK)]
    assert selection.status == "warn"
    assert "no model passed every diagnostic" in selection.message
    assert "dropout collapsed" in selection.message
    for model in ("bgnbd", "pareto_nbd"):
        assert rows[(model, DROPOUT_CHECK)].status == "warn"
    assert not any(f.converged for f in run.fits if f.model != "gamma_gamma")


def test_one_time_buyers_only():
    rng = np.random.default_rng(6)
    t_obs = rng.integers(30, 400, 500).astype(float)
    zeros = np.zeros(500)
    # the models themselves cannot identify anything: not converged, no standard errors
    for model in (BGNBD, PARETO_NBD):
        fit = model.fit(zeros, zeros, t_obs)
        assert not fit.converged and fit.hessian_positive_definite is False
        assert all(math.isnan(v) for v in fit.std_errors.values())
        statuses = {d.check: d.status for d in fit_diagnostics(fit)}
        assert statuses[HESSIAN_CHECK] == "fail"
    # the pipeline does not even fit: the data check fails and says why
    run = fit_and_predict(zeros, zeros, t_obs, np.zeros(500), min_repeat_customers=0)
    assert not run.data_sufficient and run.fits == []
    rows = {(d.model, d.check): d for d in run.diagnostics}
    repeat = rows[(ALL_MODELS, REPEAT_CUSTOMERS_CHECK)]
    assert repeat.status == "fail" and repeat.value == 0
    assert "every customer bought once" in repeat.message
    assert rows[(ALL_MODELS, SELECTION_CHECK)].status == "fail"


def test_few_repeat_customers_warn():
    rng = np.random.default_rng(7)
    t_obs = rng.integers(200, 400, 400).astype(float)
    x, tx = simulate_beta_geometric(BG_PARAMS, t_obs, seed=8)
    x[60:] = 0.0
    tx[60:] = 0.0
    run = fit_and_predict(x, np.floor(tx), t_obs, np.where(x > 0, 25.0, 0.0), models=("bgnbd",))
    repeat = next(d for d in run.diagnostics if d.check == REPEAT_CUSTOMERS_CHECK)
    assert repeat.status == "warn" and repeat.value == np.count_nonzero(x > 0)


def test_converged_means_optimizer_hessian_and_dropout(cdnow_like, no_dropout):
    fits = [m.fit(*data) for m in (BGNBD, PARETO_NBD) for data in (cdnow_like, no_dropout)]
    for fit in fits:
        assert fit.converged == (
            fit.optimizer_converged and bool(fit.hessian_positive_definite) and not fit.degenerate
        )
    assert {f.converged for f in fits} == {True, False}
    # without the Hessian (calibration fits of the holdout selection) it is not required
    quick = BGNBD.fit(*cdnow_like, diagnose=False)
    assert quick.converged and quick.hessian_positive_definite is None
    assert all(math.isnan(v) for v in quick.std_errors.values())
    assert {d.check for d in fit_diagnostics(quick)}.isdisjoint({HESSIAN_CHECK})


def test_a_non_positive_definite_hessian_is_not_converged(cdnow_like, monkeypatch):
    from clv_pipeline.models import base
    from clv_pipeline.models.information import observed_information

    def flat(*args, **kwargs):
        info = observed_information(*args, **kwargs)
        return dataclasses.replace(info, positive_definite=False)

    monkeypatch.setattr(base, "observed_information", flat)
    fit = BGNBD.fit(*cdnow_like)
    assert fit.optimizer_converged and not fit.degenerate and not fit.converged


def test_every_diagnostic_row_is_well_formed(cdnow_like):
    x, tx, t_obs = cdnow_like
    m = simulate_spend(GG_PARAMS, x, seed=9)
    run = fit_and_predict(x, tx, t_obs, m, models=("bgnbd", "pareto_nbd", "mbgnbd"))
    rows = run.diagnostics_rows()
    keys = [(r["model"], r["check"]) for r in rows]
    assert len(keys) == len(set(keys))
    assert all(r["status"] in STATUSES and r["message"] for r in rows)
    assert [r for r in rows if r["status"] == "fail"] == []
    assert sum(r["check"] == SELECTION_CHECK for r in rows) == 1
    for f in run.fits:
        assert set(f.std_errors) == set(f.params)
    params = run.params_rows()
    assert all(r["std_error"] > 0 for r in params)
    assert all(r["selection_reason"] for r in params)
