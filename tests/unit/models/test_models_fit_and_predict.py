"""fit_and_predict: sufficiency flags, selection, validation, discounting, outputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from clv_pipeline.models import ModelRun, discount_schedule, fit_and_predict
from clv_pipeline.models.simulate import simulate_pareto_nbd, simulate_spend

ARRAYS = (
    "p_alive",
    "expected_purchases",
    "prob_active_in_horizon",
    "expected_avg_value",
    "predicted_clv",
    "expected_days_to_next_purchase",
)


def _a(arr: np.ndarray | None) -> np.ndarray:
    assert arr is not None
    return arr


@pytest.fixture(scope="module")
def data():
    params = {"r": 0.55, "alpha": 74.0, "s": 0.61, "beta": 82.0}
    rng = np.random.default_rng(7)
    t_obs = rng.integers(30, 500, 4000).astype(float)
    x, tx = simulate_pareto_nbd(params, t_obs, seed=8)
    m = simulate_spend({"p": 6.25, "q": 3.74, "v": 15.44}, x, seed=9)
    return x, np.floor(tx), t_obs, m


@pytest.mark.filterwarnings("error")
def test_full_run_outputs(data):
    x, tx, t_obs, m = data
    copies = [a.copy() for a in data]
    run = fit_and_predict(x, tx, t_obs, m, models=("bgnbd", "pareto_nbd", "mbgnbd"))
    assert run.data_sufficient and run.selected_model is not None
    for name in ARRAYS:
        arr = getattr(run, name)
        assert arr is not None and arr.dtype == np.float64 and arr.shape == x.shape
        if name != "expected_days_to_next_purchase":
            assert np.all(np.isfinite(arr)), name
    assert np.all((_a(run.p_alive) >= 0) & (_a(run.p_alive) <= 1))
    assert np.all(_a(run.prob_active_in_horizon) <= _a(run.p_alive) + 1e-12)
    for a, b in zip(data, copies, strict=True):
        np.testing.assert_array_equal(a, b)  # inputs not mutated
    # selection by BIC among converged fits, exactly one selected
    tried = [f for f in run.fits if f.model != "gamma_gamma"]
    assert [f.model for f in tried] == ["bgnbd", "pareto_nbd", "mbgnbd"]
    best = min((f for f in tried if f.converged), key=lambda f: f.bic)
    assert best.model == run.selected_model == "pareto_nbd"
    assert sum(f.selected for f in tried) == 1
    # the spend model that produced expected_avg_value is marked selected too
    assert next(f for f in run.fits if f.model == "gamma_gamma").selected
    rows = run.params_rows()
    assert len(rows) == 4 * 3 + 3
    assert set(rows[0]) == {
        "model",
        "param",
        "value",
        "std_error",
        "log_likelihood",
        "bic",
        "n_customers",
        "n_repeat_customers",
        "converged",
        "selected",
        "selection_reason",
    }
    assert run.gamma_gamma_corr is not None and abs(run.gamma_gamma_corr) < 0.3


def test_forced_selection(data):
    run = fit_and_predict(*data, models=("pareto_nbd",), selection="bgnbd")
    assert run.selected_model == "bgnbd"
    assert {f.model for f in run.fits} == {"pareto_nbd", "bgnbd", "gamma_gamma"}


def test_discounting_and_margin(data):
    x, tx, t_obs, m = data
    kw: dict[str, Any] = {"models": ("bgnbd",)}
    flat = fit_and_predict(x, tx, t_obs, m, discount_rate=0.0, **kw)
    # zero rate: the discounted sum telescopes to E[X(H)] * value
    np.testing.assert_allclose(
        _a(flat.predicted_clv),
        _a(flat.expected_purchases) * _a(flat.expected_avg_value),
        rtol=1e-10,
    )
    disc = fit_and_predict(x, tx, t_obs, m, discount_rate=0.10, **kw)
    assert np.all(_a(disc.predicted_clv) <= _a(flat.predicted_clv) + 1e-12)
    assert np.all(_a(disc.predicted_clv) >= _a(flat.predicted_clv) / 1.1 - 1e-12)
    half = fit_and_predict(x, tx, t_obs, m, discount_rate=0.10, gross_margin=0.5, **kw)
    np.testing.assert_allclose(_a(half.predicted_clv), 0.5 * _a(disc.predicted_clv), rtol=1e-12)
    monthly = fit_and_predict(
        x, tx, t_obs, m, discount_rate=1.1 ** (1 / 12) - 1, discount_period="monthly", **kw
    )
    np.testing.assert_allclose(_a(monthly.predicted_clv), _a(disc.predicted_clv), rtol=1e-10)


def test_gamma_gamma_model_predictions_match_fit_and_predict(data):
    from clv_pipeline.models import TRANSACTION_MODELS, gamma_gamma

    x, tx, t_obs, m = data
    run = fit_and_predict(x, tx, t_obs, m, models=("bgnbd",), gross_margin=0.4)
    fits = {f.model: f for f in run.fits}
    gg = fits["gamma_gamma"].params
    spend = gamma_gamma.MODEL.expected_customer_spend(gg, x, m)
    np.testing.assert_array_equal(spend, _a(run.expected_avg_value))
    np.testing.assert_array_equal(gamma_gamma.expected_avg_value(gg, x, m), spend)  # old name
    clv = gamma_gamma.MODEL.expected_customer_lifetime_value(
        gg, TRANSACTION_MODELS["bgnbd"], fits["bgnbd"].params, x, tx, t_obs, m, gross_margin=0.4
    )
    np.testing.assert_allclose(clv, _a(run.predicted_clv), rtol=1e-12)


def test_discount_schedule_steps():
    ends, factors = discount_schedule(365.0, discount_rate=0.1)
    assert ends.shape == (12,) and ends[-1] == 365.0
    assert ends[0] == pytest.approx(365.25 / 12)
    assert factors[-1] == pytest.approx(1.1 ** (-365 / 365.25))


@pytest.mark.parametrize(
    "n,n_rep,expect",
    [
        (0, 0, "no customers"),
        (1, 1, "only 1 customers"),
        (200, 7, "only 7 repeat customers"),
        (200, 0, "only 0 repeat customers"),
    ],
)
def test_insufficient_data(n, n_rep, expect):
    x = np.zeros(n)
    x[:n_rep] = 2
    tx = np.where(x > 0, 5.0, 0.0)
    t_obs = np.full(n, 30.0)
    m = np.where(x > 0, 10.0, 0.0)
    run = fit_and_predict(x, tx, t_obs, m)
    assert isinstance(run, ModelRun)
    assert not run.data_sufficient and run.selected_model is None
    assert any(expect in msg for msg in run.messages), run.messages
    assert all(getattr(run, name) is None for name in ARRAYS)
    assert run.params_rows() == []


def test_no_convergence_gives_none_arrays(data, monkeypatch):
    from clv_pipeline.models import clv

    real = clv._safe_fit

    def failing(model, pat, penalizer):
        import dataclasses

        fit = real(model, pat, penalizer)
        return dataclasses.replace(fit, converged=False, optimizer_converged=False)

    monkeypatch.setattr(clv, "_safe_fit", failing)
    run = fit_and_predict(*data)
    assert not run.data_sufficient and run.selected_model is None
    assert run.p_alive is None and run.fits
    assert any("no model converged" in msg for msg in run.messages)


def _valid():
    return [np.array([1.0, 0.0]), np.array([5.0, 0.0]), np.array([10.0, 3.0]), np.array([2.0, 0.0])]


@pytest.mark.parametrize(
    "index,value,match",
    [
        (0, [-1.0, 0.0], "frequency must be >= 0"),
        (0, [1.5, 0.0], "whole numbers"),
        (1, [11.0, 0.0], "recency must be <= T"),
        (2, [10.0, np.nan], "non-finite"),
        (3, [np.inf, 0.0], "non-finite"),
        (3, [-2.0, 0.0], "monetary_value must be >= 0"),
        (2, [10.0], "same length"),
        (1, [5.0, 1.0], "recency must be 0"),
    ],
)
def test_invalid_input_raises_value_error(index, value, match):
    args = _valid()
    args[index] = np.array(value)
    with pytest.raises(ValueError, match=match):
        fit_and_predict(*args)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"models": ("nope",)}, "models must be"),
        ({"selection": "aic"}, "selection must be"),
        ({"discount_period": "weekly"}, "discount_period"),
        ({"discount_rate": -0.1}, "discount_rate"),
        ({"horizon_days": 0.0}, "horizon_days"),
        ({"gross_margin": float("nan")}, "gross_margin"),
        ({"penalizer": -1.0}, "penalizer"),
    ],
)
def test_invalid_options_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_and_predict(*_valid(), **kwargs)


def test_spend_correlation_warning():
    rng = np.random.default_rng(3)
    n = 500
    x = rng.integers(1, 20, n).astype(float)
    t_obs = np.full(n, 400.0)
    tx = np.floor(rng.uniform(0.5, 1, n) * 400)
    m = 5.0 * x + rng.gamma(2.0, 1.0, n)
    run = fit_and_predict(x, tx, t_obs, m, models=("bgnbd",))
    assert run.gamma_gamma_corr is not None and run.gamma_gamma_corr > 0.3
    assert any("corr(frequency, monetary_value)" in msg for msg in run.messages)
