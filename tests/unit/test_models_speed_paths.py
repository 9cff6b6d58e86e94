"""The fast paths of the model kernels give the results of their reference paths.

* pattern compression: packed whole-number keys / ``np.bincount`` uniques == ``np.unique``;
* likelihood kernels: chunked and spread over threads == one whole-array pass, bit for bit;
* predictions sharing P(alive) == computing it again.
"""

from __future__ import annotations

import numpy as np
import pytest

from clv_pipeline.models import data as model_data
from clv_pipeline.models import discount, numerics
from clv_pipeline.models.base import Patterns, TransactionModel, UniqueValues, validate_rft
from clv_pipeline.models.bgnbd import MODEL as BGNBD
from clv_pipeline.models.gamma_gamma import MODEL as GAMMA_GAMMA
from clv_pipeline.models.gamma_gamma import SpendData
from clv_pipeline.models.mbgnbd import MODEL as MBGNBD
from clv_pipeline.models.pareto_nbd import MODEL as PARETO_NBD


def _customers(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t_obs = rng.integers(0, 400, n).astype(np.float64)
    x = rng.poisson(3.0, n).astype(np.float64)
    tx = np.floor(rng.uniform(0.0, 1.0, n) * (t_obs + 1.0))
    tx = np.where(x > 0, np.minimum(tx, t_obs), 0.0)
    return x, tx, t_obs


def _reference_patterns(
    x: np.ndarray, tx: np.ndarray, t_obs: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> Patterns:
    with monkeypatch.context() as m:
        m.setattr(model_data, "_small_whole_numbers", lambda arr: None)
        return Patterns.from_arrays(x, tx, t_obs)


def _assert_same_patterns(a: Patterns, b: Patterns) -> None:
    for name in ("x", "tx", "T", "weights", "inverse"):
        va, vb = getattr(a, name), getattr(b, name)
        assert va.dtype == vb.dtype, name
        np.testing.assert_array_equal(va, vb, err_msg=name)
    for name in ("ux", "utx", "uT"):
        ua, ub = getattr(a, name), getattr(b, name)
        assert ua.values.dtype == ub.values.dtype and ua.inverse.dtype == ub.inverse.dtype
        np.testing.assert_array_equal(ua.values, ub.values, err_msg=name)
        np.testing.assert_array_equal(ua.inverse, ub.inverse, err_msg=name)


@pytest.mark.parametrize("n", [1, 7, 5000])
def test_packed_patterns_equal_reference(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    x, tx, t_obs = validate_rft(*_customers(n, seed=n))
    fast = Patterns.from_arrays(x, tx, t_obs)
    assert model_data._packed_key(x, tx, t_obs) is not None  # the fast path was taken
    _assert_same_patterns(fast, _reference_patterns(x, tx, t_obs, monkeypatch))


def test_fractional_days_fall_back_to_unique(monkeypatch: pytest.MonkeyPatch) -> None:
    x, tx, t_obs = _customers(3000, seed=3)
    tx = np.where(x > 0, tx * 0.5, 0.0)  # half days: not whole numbers
    assert model_data._packed_key(x, tx, t_obs) is None
    fast = Patterns.from_arrays(x, tx, t_obs)
    _assert_same_patterns(fast, _reference_patterns(x, tx, t_obs, monkeypatch))


@pytest.mark.parametrize(
    "values",
    [
        np.array([3.0, 0.0, 3.0, 7.0, 1.0]),
        np.array([2.5, 1.0, 2.5]),
        np.array([-1.0, 4.0, 4.0]),
        np.array([float(1 << 21), 2.0]),
    ],
)
def test_unique_values_equal_np_unique(values: np.ndarray) -> None:
    got = UniqueValues.of(values)
    want, inverse = np.unique(values, return_inverse=True)
    np.testing.assert_array_equal(got.values, want)
    np.testing.assert_array_equal(got.inverse, inverse)
    assert got.inverse.dtype == np.intp


def _one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(numerics, "CHUNK_SIZE", 1 << 40)
    monkeypatch.setattr(numerics, "PARALLEL_MIN_SIZE", 1 << 40)


@pytest.mark.parametrize("model", [BGNBD, MBGNBD], ids=lambda m: m.name)
def test_purchase_kernel_chunks_are_bit_identical(
    model: TransactionModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, tx, t_obs = _customers(6000, seed=11)
    pat = Patterns.from_arrays(*validate_rft(x, tx, t_obs))
    theta = np.array([0.8, 30.0, 0.7, 3.5])
    with monkeypatch.context() as m:
        # small chunks, and several of them per thread
        m.setattr(numerics, "CHUNK_SIZE", 257)
        m.setattr(numerics, "PARALLEL_MIN_SIZE", 1)
        ll_chunked, g_chunked = model._loglik_patterns(theta, pat, grad_weights=pat.weights)
    with monkeypatch.context() as m:
        _one_pass(m)
        ll_whole, g_whole = model._loglik_patterns(theta, pat, grad_weights=pat.weights)
    np.testing.assert_array_equal(ll_chunked, ll_whole)
    np.testing.assert_array_equal(g_chunked, g_whole)


def test_bgnbd_kernel_matches_the_textbook_formula() -> None:
    from scipy import special

    x, tx, t_obs = _customers(4000, seed=5)
    pat = Patterns.from_arrays(*validate_rft(x, tx, t_obs))
    r, alpha, a, b = 0.9, 25.0, 0.8, 2.5
    ll, _ = BGNBD._loglik_patterns(np.array([r, alpha, a, b]), pat, grad_weights=None)
    px, ptx, pT = pat.x, pat.tx, pat.T
    a12 = (
        special.gammaln(r + px)
        - special.gammaln(r)
        + r * np.log(alpha)
        + special.betaln(a, b + px)
        - special.betaln(a, b)
    )
    term = (alpha + pT) ** -(r + px) + np.where(
        px > 0, a / np.maximum(b + px - 1.0, 1e-300) * (alpha + ptx) ** -(r + px), 0.0
    )
    np.testing.assert_allclose(ll, a12 + np.log(term), rtol=1e-12)


def test_gradient_weights_cache_follows_the_weights() -> None:
    x, tx, t_obs = _customers(2000, seed=8)
    pat = Patterns.from_arrays(*validate_rft(x, tx, t_obs))
    theta = np.array([0.8, 30.0, 0.7, 3.5])
    _, g_fit = BGNBD._loglik_patterns(theta, pat, grad_weights=pat.weights)
    other = pat.weights * 2.0
    _, g_other = BGNBD._loglik_patterns(theta, pat, grad_weights=other)
    assert g_fit is not None and g_other is not None
    np.testing.assert_allclose(g_other, 2.0 * g_fit, rtol=1e-12)


def test_spend_kernel_chunks_are_bit_identical(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    x = rng.integers(1, 20, 7000).astype(np.float64)
    m = np.round(rng.gamma(4.0, 10.0, 7000), 2) + 0.01
    theta = np.array([5.0, 3.0, 12.0])
    with monkeypatch.context() as mp:
        mp.setattr(numerics, "CHUNK_SIZE", 301)
        mp.setattr(numerics, "PARALLEL_MIN_SIZE", 1)
        chunked = GAMMA_GAMMA.loglik_and_grad(theta, SpendData(x, m))
    with monkeypatch.context() as mp:
        _one_pass(mp)
        whole = GAMMA_GAMMA.loglik_and_grad(theta, SpendData(x, m))
    assert chunked[0] == whole[0]
    np.testing.assert_array_equal(chunked[1], whole[1])
    params = dict(zip(GAMMA_GAMMA.param_names, theta, strict=True))
    per_customer = GAMMA_GAMMA.log_likelihood(params, x, m)
    np.testing.assert_allclose(whole[0], per_customer.sum(), rtol=1e-12)


def test_shared_p_alive_gives_the_same_clv() -> None:
    x, tx, t_obs = _customers(3000, seed=9)
    x, tx, t_obs = validate_rft(x, tx, t_obs)
    params = {"r": 0.8, "alpha": 30.0, "a": 0.7, "b": 3.5}
    ends, factors = discount.discount_schedule(365.0)
    alive = BGNBD.probability_alive(params, x, tx, t_obs)
    shared = discount.discounted_purchases_and_total(
        BGNBD, params, x, tx, t_obs, ends, factors, 0.1, p_alive=alive
    )
    again = discount.discounted_purchases_and_total(BGNBD, params, x, tx, t_obs, ends, factors, 0.1)
    np.testing.assert_array_equal(shared[0], again[0])
    np.testing.assert_array_equal(shared[1], again[1])
    with pytest.raises(ValueError, match="one value per customer"):
        BGNBD.expected_purchases_curve(params, x, tx, t_obs, horizons=[30.0], p_alive=alive[:-1])


@pytest.mark.parametrize(
    ("model", "params"),
    [
        (BGNBD, {"r": 0.8, "alpha": 30.0, "a": 0.7, "b": 3.5}),
        (MBGNBD, {"r": 0.8, "alpha": 30.0, "a": 0.7, "b": 3.5}),
        (PARETO_NBD, {"r": 0.9, "alpha": 40.0, "s": 0.8, "beta": 300.0}),
        (PARETO_NBD, {"r": 0.9, "alpha": 40.0, "s": 1.6, "beta": 300.0}),
    ],
)
def test_shared_p_alive_gives_the_same_predictions(
    model: TransactionModel, params: dict[str, float]
) -> None:
    """purchase_probability and expected_days_to_next_purchase with the caller's P(alive) (as
    the valuation passes it) are bit-identical to computing it themselves."""
    x, tx, t_obs = validate_rft(*_customers(3000, seed=11))
    alive = model.probability_alive(params, x, tx, t_obs)
    for shared in (alive, None):
        got = (
            model.purchase_probability(params, x, tx, t_obs, horizon_days=90.0, p_alive=shared),
            model.expected_days_to_next_purchase(params, x, tx, t_obs, p_alive=shared),
        )
        if shared is not None:
            first = got
    np.testing.assert_array_equal(first[0], got[0])
    np.testing.assert_array_equal(first[1], got[1])
    assert np.isfinite(first[1]).any()
    with pytest.raises(ValueError, match="one value per customer"):
        model.expected_days_to_next_purchase(params, x, tx, t_obs, p_alive=alive[:-1])


def test_next_purchase_search_uses_the_given_p_alive() -> None:
    """The search scales the alive expectation by the given P(alive) (not one of its own)."""
    x, tx, t_obs = validate_rft(*_customers(500, seed=12))
    params = {"r": 0.8, "alpha": 30.0, "a": 0.7, "b": 3.5}
    certain = BGNBD.expected_days_to_next_purchase(params, x, tx, t_obs, p_alive=np.ones(500))
    own = BGNBD.expected_days_to_next_purchase(params, x, tx, t_obs)
    alive = BGNBD.probability_alive(params, x, tx, t_obs)
    sooner = np.isfinite(own) & (alive < 0.99)
    assert sooner.any() and np.all(certain[sooner] < own[sooner])
