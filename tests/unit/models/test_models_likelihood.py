"""Likelihoods vs direct numerical integration, gradients vs finite differences,
the Euler-integral quadrature vs scipy's hyp2f1, and numerical stability."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special, stats

from clv_pipeline.models import bgnbd, gamma_gamma, mbgnbd, numerics, pareto_nbd
from clv_pipeline.models.base import Patterns, validate_rft
from clv_pipeline.models.numerics import log_euler_integral
from clv_pipeline.models.pareto_nbd import log_tail_integral

pytestmark = pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")

CASES = [(0, 0.0, 10.0), (0, 0.0, 200.0), (1, 5.0, 40.0), (3, 30.0, 90.0), (7, 60.0, 61.0)]


def _gamma_pdf(lam: float, shape: float, rate: float) -> float:
    if lam <= 0:
        return 0.0
    log_pdf = shape * math.log(rate) + (shape - 1) * math.log(lam) - rate * lam
    return math.exp(log_pdf - math.lgamma(shape))


def _nested(inner, outer_lo: float, outer_hi: float, **outer_kw) -> float:
    """Nested adaptive quadrature: integral over the outer variable of quad over lambda."""

    def outer(w: float) -> float:
        return integrate.quad(
            lambda lam: inner(w, lam), 0, np.inf, epsabs=0, epsrel=1e-11, limit=200
        )[0]

    return integrate.quad(outer, outer_lo, outer_hi, epsabs=0, epsrel=1e-10, limit=200, **outer_kw)[
        0
    ]


def _bg_numeric(params: dict[str, float], x: int, tx: float, t_obs: float, shift: int) -> float:
    r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]

    def integrand(p: float, lam: float) -> float:
        alive = (1 - p) ** (x + shift) * lam**x * math.exp(-lam * t_obs)
        dead = 0.0
        if x > 0 or shift:
            dead = p * (1 - p) ** (x - 1 + shift) * lam**x * math.exp(-lam * tx)
        return (alive + dead) * _gamma_pdf(lam, r, alpha)

    # Beta(a, b) density handled by quad's algebraic weight p^(a-1) (1-p)^(b-1)
    val = _nested(integrand, 0.0, 1.0, weight="alg", wvar=(a - 1, b - 1)) / special.beta(a, b)
    return math.log(val)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("module,shift", [(bgnbd, 0), (mbgnbd, 1)])
def test_beta_geometric_likelihood_matches_integration(module, shift, case, bg_params):
    x, tx, t_obs = case
    ll = module.log_likelihood(bg_params, [x], [tx], [t_obs])[0]
    assert ll == pytest.approx(_bg_numeric(bg_params, x, tx, t_obs, shift), abs=1e-7)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("swap", [False, True], ids=["alpha<beta", "alpha>beta"])
def test_pareto_likelihood_matches_integration(case, swap, pareto_params):
    x, tx, t_obs = case
    params = dict(pareto_params)
    if swap:
        params["alpha"], params["beta"] = params["beta"] * 3, params["alpha"]
    r, alpha, s, beta = params["r"], params["alpha"], params["s"], params["beta"]

    def integrand(mu: float, lam: float) -> float:
        k = lam + mu
        val = lam**x * math.exp(-k * t_obs)
        val += lam**x * mu / k * (math.exp(-k * tx) - math.exp(-k * t_obs))
        return val * _gamma_pdf(lam, r, alpha) * _gamma_pdf(mu, s, beta)

    num = _nested(integrand, 0.0, np.inf)
    ll = pareto_nbd.log_likelihood(params, [x], [tx], [t_obs])[0]
    assert ll == pytest.approx(math.log(num), abs=1e-7)


@pytest.mark.parametrize("x,m", [(1, 10.0), (4, 35.5), (20, 3.0)])
def test_gamma_gamma_likelihood_matches_integration(x, m, gg_params):
    p, q, v = gg_params["p"], gg_params["q"], gg_params["v"]

    def integrand(nu: float) -> float:
        dens = stats.gamma.pdf(x * m, p * x, scale=1.0 / nu) * x  # density of the mean
        return float(dens * _gamma_pdf(nu, q, v))

    num, _ = integrate.quad(integrand, 0, np.inf, epsabs=1e-16, epsrel=1e-11, limit=200)
    ll = gamma_gamma.log_likelihood(gg_params, [x], [m])[0]
    assert ll == pytest.approx(math.log(num), abs=1e-7)


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 400
    t_obs = rng.uniform(1, 500, n).round()
    x = rng.poisson(2.0, n).astype(float)
    tx = np.where(x > 0, np.floor(t_obs * rng.uniform(0, 1, n)), 0.0)
    return x, tx, t_obs


@pytest.mark.parametrize(
    "model,params",
    [
        (bgnbd.MODEL, {"r": 0.3, "alpha": 25.0, "a": 0.7, "b": 2.1}),
        (mbgnbd.MODEL, {"r": 0.3, "alpha": 25.0, "a": 1.7, "b": 4.1}),
        (pareto_nbd.MODEL, {"r": 0.5, "alpha": 60.0, "s": 0.7, "beta": 90.0}),
        (pareto_nbd.MODEL, {"r": 0.5, "alpha": 90.0, "s": 1.3, "beta": 20.0}),
    ],
)
def test_gradient_matches_finite_differences(model, params):
    pat = Patterns.from_arrays(*validate_rft(*_data()))
    theta = model.theta(params)
    _, grad = model.loglik_and_grad(theta, pat)
    for k in range(theta.shape[0]):
        h = theta[k] * 1e-6
        up, dn = theta.copy(), theta.copy()
        up[k] += h
        dn[k] -= h
        fd = (model.loglik_and_grad(up, pat)[0] - model.loglik_and_grad(dn, pat)[0]) / (2 * h)
        assert grad[k] == pytest.approx(fd, rel=1e-5, abs=1e-6)


def test_gamma_gamma_gradient_matches_finite_differences(gg_params):
    rng = np.random.default_rng(1)
    x = rng.integers(1, 10, 300).astype(float)
    m = rng.gamma(3.0, 10.0, 300)
    d = gamma_gamma.SpendData(x, m)
    model = gamma_gamma.MODEL
    theta = model.theta(gg_params)
    _, grad = model.loglik_and_grad(theta, d)
    for k in range(3):
        h = theta[k] * 1e-6
        up, dn = theta.copy(), theta.copy()
        up[k] += h
        dn[k] -= h
        fd = (model.loglik_and_grad(up, d)[0] - model.loglik_and_grad(dn, d)[0]) / (2 * h)
        assert grad[k] == pytest.approx(fd, rel=1e-6)


@pytest.mark.parametrize("a", [0.05, 0.6, 1.5, 12.0, 300.0])
@pytest.mark.parametrize("e", [0.3, 1.6, 40.0])
@pytest.mark.parametrize("z", [0.0, 1e-4, 0.3, 0.9, 0.995])
def test_euler_integral_matches_hyp2f1(a, e, z):
    ref = special.hyp2f1(e, a, a + 1.0, z) / a
    if not np.isfinite(ref) or ref <= 0:
        pytest.skip("scipy hyp2f1 not accurate here")
    got = log_euler_integral(np.array([a]), np.array([e]), np.array([z])).log_j[0]
    assert got == pytest.approx(math.log(ref), abs=1e-10, rel=1e-10)


@pytest.mark.parametrize("near_one", [False, True])
@pytest.mark.parametrize("grad", [False, True])
def test_euler_integral_same_bits_on_any_chunks_and_threads(
    monkeypatch: pytest.MonkeyPatch, near_one: bool, grad: bool
) -> None:
    """The integral's rows are computed in chunks shared out between the cores: the chunk
    size and the threads must not change a bit (each row's sums are its own)."""
    rng = np.random.default_rng(5)
    n = 40_000
    a = rng.uniform(0.01, 30.0, 60)
    index = rng.integers(0, 60, n)
    e = rng.uniform(0.0, 50.0, n)
    z = rng.uniform(0.0, 0.99, n)
    if near_one:  # the precise path: 1 - z down to 1e-12
        z[::3] = 1.0 - rng.uniform(1e-12, 1e-6, z[::3].shape[0])

    def run(chunk: int, cores: int) -> np.ndarray:
        monkeypatch.setattr(numerics, "_EULER_CHUNK", chunk)
        monkeypatch.setattr(numerics, "_cores", lambda: cores)
        r = log_euler_integral(a, e, z, a_index=index, grad=grad)
        parts = [r.log_j] + ([r.mean_log_u, r.mean_mlog1mzu, r.mean_u_over] if grad else [])
        return np.concatenate([p for p in parts if p is not None])

    one_pass = run(1 << 30, 1)  # the whole array at once, on this thread
    assert np.isfinite(one_pass).all()
    for chunk, cores in ((1 << 17, 2), (1 << 13, 2), (1 << 17, 1), (1 << 19, 2), (1 << 13, 3)):
        assert np.array_equal(run(chunk, cores), one_pass), (chunk, cores)


def test_tail_integral_matches_quad():
    for alpha, beta in [(30.0, 80.0), (80.0, 30.0), (50.0, 50.0)]:
        for p, q, t in [(0.5, 1.6, 0.0), (3.2, 1.6, 100.0), (40.0, 0.7, 10.0)]:
            val, _ = integrate.quad(
                lambda tau, p=p, q=q, alpha=alpha, beta=beta: (
                    (alpha + tau) ** -p * (beta + tau) ** -q
                ),
                t,
                np.inf,
                epsabs=0,
                epsrel=1e-12,
                limit=500,
            )
            got = log_tail_integral(alpha, beta, np.array([p]), q, np.array([t])).log_g[0]
            assert got == pytest.approx(math.log(val), abs=1e-9)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("module", [bgnbd, mbgnbd, pareto_nbd])
def test_extreme_inputs_are_finite_without_warnings(module, bg_params, pareto_params):
    params = pareto_params if module is pareto_nbd else bg_params
    x = np.array([500.0, 500.0, 0.0, 1.0, 300.0, 0.0])
    tx = np.array([9990.0, 10.0, 0.0, 0.0, 5000.0, 0.0])
    t_obs = np.array([10000.0, 10000.0, 10000.0, 10000.0, 5000.0, 0.0])
    ll = module.log_likelihood(params, x, tx, t_obs)
    assert np.all(np.isfinite(ll))
    for arr in (
        module.probability_alive(params, x, tx, t_obs),
        module.expected_purchases(params, x, tx, t_obs, horizon_days=365.0),
        module.purchase_probability(params, x, tx, t_obs, horizon_days=365.0),
    ):
        assert np.all(np.isfinite(arr))
        assert np.all(arr >= 0)
    days = module.expected_days_to_next_purchase(params, x, tx, t_obs)
    assert np.all(np.isnan(days) | (days >= 0))
    # the 500-purchase customer still active at 10000 days buys again quickly
    assert days[0] < 30


@pytest.mark.filterwarnings("error")
def test_gamma_gamma_extreme_inputs(gg_params):
    x = np.array([0.0, 1.0, 500.0, 3.0])
    m = np.array([0.0, 1e-6, 1e6, 20.0])
    val = gamma_gamma.expected_avg_value(gg_params, x, m)
    assert np.all(np.isfinite(val))
    p, q, v = gg_params["p"], gg_params["q"], gg_params["v"]
    assert val[0] == pytest.approx(p * v / (q - 1))
    assert np.all(np.isfinite(gamma_gamma.log_likelihood(gg_params, x[1:], m[1:])))
