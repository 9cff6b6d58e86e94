"""The fit as a reduce over shards (issue 23): :class:`FitInputs` of disjoint customer sets merge
into the whole base's inputs, :func:`fit_models` on them is the unsharded fit, and
:func:`predict_customers` over each shard gives the unsharded run's values bit for bit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from clv_pipeline.models.clv import (
    FitInputs,
    customer_arrays,
    fit_and_predict,
    fit_models,
    predict_customers,
)
from clv_pipeline.models.simulate import simulate_pareto_nbd, simulate_spend

N = 6000
ARRAYS = ("p_alive", "expected_purchases", "prob_active_in_horizon", "expected_avg_value")


def _base(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    T = rng.integers(30, 730, size=N).astype(np.float64)
    x, tx = simulate_pareto_nbd({"r": 0.8, "alpha": 60.0, "s": 0.7, "beta": 200.0}, T, seed=rng)
    m = simulate_spend({"p": 6.0, "q": 3.5, "v": 15.0}, x, seed=rng)
    return customer_arrays(np.round(x), np.round(tx), T, m)


@pytest.mark.parametrize("selection", ["pareto_nbd", "bgnbd", "bic"])
def test_four_shards_predict_the_unsharded_values(selection: str) -> None:
    x, tx, t_obs, m = _base(5)
    options = {"models": ("bgnbd", "pareto_nbd"), "selection": selection, "horizon_days": 365.0}
    whole = fit_and_predict(x, tx, t_obs, m, **options)  # type: ignore[arg-type]
    # any split must do; this one gives the shards different ranges of T (and so of the
    # quadratures Pareto/NBD sizes over a whole array: recomputed per shard, its P(alive)
    # would differ from the whole base's in the last digits)
    shard = np.searchsorted(np.quantile(t_obs, [0.25, 0.5, 0.75]), t_obs)
    parts = [np.flatnonzero(shard == k) for k in range(4)]
    inputs = FitInputs.merge(
        [
            FitInputs.from_arrays(x[p], tx[p], t_obs[p], m[p], order=p.astype(np.int64))
            for p in parts
        ]
    )
    reference = FitInputs.from_arrays(x, tx, t_obs, m)
    for name in ("x", "tx", "T", "weights"):
        assert np.array_equal(getattr(inputs.patterns, name), getattr(reference.patterns, name))
    assert np.array_equal(inputs.spend_m, reference.spend_m)
    fit = fit_models(inputs, **options)  # type: ignore[arg-type]
    fit = dataclasses.replace(fit, patterns=None)  # as a sharded run stores it
    assert [f.params for f in fit.fits] == [f.params for f in whole.fits]
    assert fit.chosen is not None and fit.chosen.model == whole.selected_model
    for p in parts:
        run = predict_customers(fit, x[p], tx[p], t_obs[p], m[p])
        for name in (*ARRAYS, "predicted_clv", "expected_days_to_next_purchase"):
            got, want = getattr(run, name), getattr(whole, name)[p]
            assert np.array_equal(got, want, equal_nan=True), name
        assert run.messages == whole.messages
