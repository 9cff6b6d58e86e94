"""Plain-language model figures and the CLV of a new customer, checked against simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clv_pipeline.models import bgnbd, mbgnbd, pareto_nbd
from clv_pipeline.models.simulate import simulate_beta_geometric, simulate_pareto_nbd
from clv_pipeline.models.summary import (
    _survival,
    describe_model,
    dropout_after_purchase,
    median_lifetime_days,
    new_customer_clv,
    summary_markdown,
)

BG = {"r": 0.6, "alpha": 40.0, "a": 0.8, "b": 2.5}
PARETO = {"r": 0.6, "alpha": 40.0, "s": 0.7, "beta": 300.0}
N = 200_000


def _bg_lifetimes(params: dict[str, float], *, at_zero: bool, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lam = rng.gamma(params["r"], 1.0 / params["alpha"], N)
    p = rng.beta(params["a"], params["b"], N)
    life = rng.exponential(1.0 / (lam * p))  # geometric number of exponential gaps
    if at_zero:
        life = np.where(rng.random(N) < p, 0.0, life)
    return life


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd"])
def test_beta_geometric_median_lifetime_matches_simulation(model: str) -> None:
    median = median_lifetime_days(model, BG)
    simulated = _bg_lifetimes(BG, at_zero=model == "mbgnbd")
    assert np.mean(simulated > median) == pytest.approx(0.5, abs=0.005)
    assert _survival(model, BG, median) == pytest.approx(0.5, abs=1e-6)


def test_pareto_median_lifetime_and_dropout_match_simulation() -> None:
    rng = np.random.default_rng(2)
    lam = rng.gamma(PARETO["r"], 1.0 / PARETO["alpha"], N)
    mu = rng.gamma(PARETO["s"], 1.0 / PARETO["beta"], N)
    life = rng.exponential(1.0 / mu)
    median = median_lifetime_days("pareto_nbd", PARETO)
    assert np.mean(life > median) == pytest.approx(0.5, abs=0.005)
    # dies before the next purchase: the exponential race between mu and lambda
    assert dropout_after_purchase("pareto_nbd", PARETO) == pytest.approx(
        float(np.mean(mu / (lam + mu))), abs=0.004
    )


def test_beta_geometric_dropout_is_the_mean_of_p() -> None:
    assert dropout_after_purchase("bgnbd", BG) == pytest.approx(0.8 / 3.3)


def test_no_dropout_is_reported_as_infinite_lifetime() -> None:
    collapsed = {"r": 0.6, "alpha": 40.0, "a": 1e-5, "b": 5e3}  # p ~ 2e-9
    assert math.isinf(median_lifetime_days("bgnbd", collapsed))
    lines = describe_model(bgnbd.MODEL, collapsed, [0.0, 2.0], [0.0, 30.0], [90.0, 90.0])
    assert "almost no dropout" in lines[1].text


@pytest.mark.parametrize(
    ("model", "params", "simulate"),
    [
        (bgnbd.MODEL, BG, lambda p, t: simulate_beta_geometric(p, t, seed=3)),
        (
            mbgnbd.MODEL,
            BG,
            lambda p, t: simulate_beta_geometric(p, t, seed=3, dropout_at_zero=True),
        ),
        (pareto_nbd.MODEL, PARETO, lambda p, t: simulate_pareto_nbd(p, t, seed=3)),
    ],
)
def test_new_customer_clv_is_the_expected_repeat_purchases_times_spend(
    model: object, params: dict[str, float], simulate: object
) -> None:
    x, _ = simulate(params, np.full(N, 365.0))  # type: ignore[operator]
    undiscounted = new_customer_clv(model, params, 2.0, discount_rate=0.0)  # type: ignore[arg-type]
    assert undiscounted == pytest.approx(2.0 * float(np.mean(x)), rel=0.02)
    discounted = new_customer_clv(model, params, 2.0, discount_rate=0.1, gross_margin=0.5)  # type: ignore[arg-type]
    assert 0.45 * undiscounted < discounted < 0.5 * undiscounted


def test_describe_model_on_simulated_customers() -> None:
    T = np.random.default_rng(4).uniform(30, 400, 5_000)
    x, tx = simulate_beta_geometric(BG, T, seed=4)
    lines = describe_model(bgnbd.MODEL, BG, x, tx, T)
    figures = {line.metric: line.value for line in lines}
    assert figures["typical_gap_days"] == pytest.approx(40.0 / 0.6)
    assert figures["dropout_after_purchase"] == pytest.approx(0.8 / 3.3)
    once = x == 0
    expected = bgnbd.MODEL.purchase_probability(BG, x[once], tx[once], T[once], horizon_days=90)
    assert figures["one_time_buyers_back"] == pytest.approx(float(np.mean(expected)))
    assert 0 < figures["one_time_buyers_back"] < 1
    assert all(line.text for line in lines)
    table = summary_markdown(lines)
    assert table.startswith("| figure |") and "typical_gap_days" in table


def test_collapsed_pareto_dropout_reads_as_no_dropout() -> None:
    """s -> 0 (the UCI and fault-test histories): no overflow, an infinite median lifetime."""
    collapsed = {"r": 0.8, "alpha": 60.0, "s": 1e-6, "beta": 7e6}
    assert math.isinf(median_lifetime_days("pareto_nbd", collapsed))
    lines = describe_model(pareto_nbd.MODEL, collapsed, [0.0, 3.0], [0.0, 40.0], [90.0, 120.0])
    assert "almost no dropout" in lines[1].text
    assert all(math.isfinite(line.value) or math.isinf(line.value) for line in lines)


@pytest.mark.parametrize(
    "params",
    [
        {"r": 0.5, "alpha": 10.0, "a": 150.0, "b": 1500.0},
        {"r": 0.5, "alpha": 10.0, "a": 1e5, "b": 1e5},
        {"r": 2.0, "alpha": 5.0, "a": 0.3, "b": 0.2},
    ],
)
def test_beta_geometric_median_at_extreme_parameters(params: dict[str, float]) -> None:
    median = median_lifetime_days("bgnbd", params)
    assert math.isfinite(median)
    simulated = _bg_lifetimes(params, at_zero=False, seed=5)
    assert np.mean(simulated > median) == pytest.approx(0.5, abs=0.01)
