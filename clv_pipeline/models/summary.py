r"""What a fitted purchase model says about the customer base, in plain words (time unit: days).

Four figures, each from the fitted population parameters (formulas in ``docs/models.md``):

* **typical gap between purchases while active**: :math:`\alpha/r`, the gap of a customer with the
  average purchase rate :math:`E[\lambda] = r/\alpha`;
* **median active lifetime**: the :math:`t` where the population survival
  :math:`S(t) = P(\text{still active } t \text{ days after the first purchase})` is one half.
  Pareto/NBD: :math:`S(t) = (\beta/(\beta+t))^s`; BG/NBD: :math:`S(t) = E_p[(\alpha/(\alpha+pt))^r]`
  with :math:`p\sim\mathrm{Beta}(a,b)` (MBG/NBD: :math:`E_p[(1-p)(\alpha/(\alpha+pt))^r]`);
* **chance of dropping out after a purchase**: BG/NBD and MBG/NBD :math:`E[p] = a/(a+b)`;
  Pareto/NBD the chance that the dropout comes before the next purchase,
  :math:`E[\mu/(\lambda+\mu)] = \int_0^\infty (\alpha/(\alpha+u))^r\, s\beta^s (\beta+u)^{-s-1}\,du`;
* **one-time buyers expected back within 90 days**: the mean over customers with
  ``frequency == 0`` of the model's :math:`P(\ge 1 \text{ purchase in the next 90 days})`.

:func:`new_customer_clv` is the expected CLV of a customer acquired today (first purchase at time
0): the model's expected repeat purchases of a new customer over the horizon, times the
population's expected spend per purchase, times the margin, discounted as every CLV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import integrate, optimize, special

from clv_pipeline.models.base import Params, Patterns, TransactionModel
from clv_pipeline.models.discount import DAYS_PER_YEAR, DiscountPeriod, predicted_clv

BACK_WITHIN_DAYS = 90.0
_HORIZON_CAP_DAYS = 1e6  # a median lifetime beyond ~2,700 years is reported as "no dropout"


@dataclass(frozen=True)
class SummaryLine:
    """One plain-language figure: ``text`` is the sentence shown to a marketer."""

    metric: str
    value: float
    unit: str
    text: str


def _survival(model: str, params: Params, t: float) -> float:
    r, alpha = float(params["r"]), float(params["alpha"])
    if model == "pareto_nbd":
        s, beta = float(params["s"]), float(params["beta"])
        return math.exp(-s * math.log1p(t / beta))
    a, b = float(params["a"]), float(params["b"])
    # E over p ~ Beta(a, b) as an integral over its quantiles u in (0, 1): the integrand is
    # bounded and smooth whatever a and b (the density itself can be a spike at 0 or 1)
    p = special.betaincinv(a, b, _U)
    alive = np.exp(-r * np.log1p(p * t / alpha))
    if model == "mbgnbd":
        alive = alive * (1.0 - p)
    return float(min(max(float(_W @ alive), 0.0), 1.0))


_U, _W = np.polynomial.legendre.leggauss(256)
_U, _W = (_U + 1.0) / 2.0, _W / 2.0


def median_lifetime_days(model: str, params: Params) -> float:
    """Days after the first purchase when half of the customers have dropped out (``inf`` when
    fewer than half ever drop out within ``_HORIZON_CAP_DAYS``)."""
    if model == "pareto_nbd":
        s, beta = float(params["s"]), float(params["beta"])
        exponent = math.log(2.0) / s
        if exponent > 700.0:  # s -> 0: (nearly) nobody drops out
            return math.inf
        median = beta * math.expm1(exponent)
        return median if median <= _HORIZON_CAP_DAYS else math.inf
    if model == "mbgnbd" and _survival(model, params, 0.0) <= 0.5:
        return 0.0  # half of the customers drop out right after their first purchase
    if _survival(model, params, _HORIZON_CAP_DAYS) > 0.5:
        return math.inf
    if _survival(model, params, 0.0) <= 0.5:
        return 0.0
    return float(
        optimize.brentq(
            lambda t: _survival(model, params, t) - 0.5, 0.0, _HORIZON_CAP_DAYS, xtol=1e-3
        )
    )


def dropout_after_purchase(model: str, params: Params) -> float:
    """Chance that a customer drops out after a purchase instead of buying again."""
    r, alpha = float(params["r"]), float(params["alpha"])
    if model == "pareto_nbd":
        s, beta = float(params["s"]), float(params["beta"])

        def integrand(u: float) -> float:
            return math.exp(
                -r * math.log1p(u / alpha)
                + math.log(s)
                - math.log(beta)
                - (s + 1.0) * math.log1p(u / beta)
            )

        value, _ = integrate.quad(integrand, 0.0, math.inf, limit=200)
        return float(min(max(value, 0.0), 1.0))
    a, b = float(params["a"]), float(params["b"])
    return a / (a + b)


def describe_model(
    model: TransactionModel,
    params: Params,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    *,
    back_within_days: float = BACK_WITHIN_DAYS,
) -> list[SummaryLine]:
    """The four plain-language figures of a fitted purchase model (see the module docstring)."""
    name = model.name
    gap = float(params["alpha"]) / float(params["r"])
    lifetime = median_lifetime_days(name, params)
    dropout = dropout_after_purchase(name, params)
    x = np.asarray(frequency, dtype=np.float64)
    one_time = x == 0
    back = math.nan
    if one_time.any():
        # once per distinct (recency, T) of the one-time buyers (at most a few thousand), not
        # per customer: 10M customers took 7 s
        pat = Patterns.from_arrays(
            x[one_time],
            np.asarray(recency, dtype=np.float64)[one_time],
            np.asarray(T, dtype=np.float64)[one_time],
        )
        chance = model.purchase_probability(
            params, pat.x, pat.tx, pat.T, horizon_days=back_within_days
        )
        back = float(np.mean(chance[pat.inverse]))
    lifetime_text = (
        "The model sees almost no dropout: fewer than half of the customers ever stop buying, "
        "which usually means the history is too short or the fit has collapsed."
        if math.isinf(lifetime)
        else f"Half of the customers are still active {_days(lifetime)} after their first "
        "purchase (median active lifetime)."
    )
    return [
        SummaryLine(
            "typical_gap_days",
            gap,
            "days",
            f"While active, a typical customer buys about every {_days(gap)}.",
        ),
        SummaryLine("median_lifetime_days", lifetime, "days", lifetime_text),
        SummaryLine(
            "dropout_after_purchase",
            dropout,
            "share",
            f"After each purchase, {dropout:.1%} of customers drop out for good instead of "
            "buying again.",
        ),
        SummaryLine(
            "one_time_buyers_back",
            back,
            "share",
            (
                f"Of the customers who bought once, {back:.1%} are expected to buy again within "
                f"{back_within_days:g} days."
            )
            if not math.isnan(back)
            else "Every customer has bought more than once.",
        ),
    ]


def new_customer_clv(
    model: TransactionModel,
    params: Params,
    expected_spend: float,
    *,
    horizon_days: float = 365.0,
    discount_rate: float = 0.10,
    discount_period: DiscountPeriod = "annual",
    gross_margin: float = 1.0,
) -> float:
    """Expected CLV over the horizon of a customer acquired today: the repeat purchases a new
    customer (one purchase, at time 0) is expected to make, times ``expected_spend`` (the
    population's mean spend per purchase, e.g. Gamma-Gamma :math:`pv/(q-1)`), times the margin,
    discounted. The first purchase itself is not included (it is already revenue)."""
    zero = np.zeros(1)
    value = predicted_clv(
        model,
        params,
        zero,
        zero,
        zero,
        np.array([expected_spend]),
        horizon_days=horizon_days,
        discount_rate=discount_rate,
        discount_period=discount_period,
        gross_margin=gross_margin,
    )
    return float(value[0])


def _days(days: float) -> str:
    if days >= 2 * DAYS_PER_YEAR:
        return f"{days / DAYS_PER_YEAR:.1f} years"
    if days >= 60:
        return f"{days / (DAYS_PER_YEAR / 12):.0f} months"
    return f"{days:.0f} days"


def summary_markdown(lines: list[SummaryLine]) -> str:
    """The figures as a markdown table (Dagster metadata, ``clv report``)."""
    rows = ["| figure | value | meaning |", "|---|---|---|"]
    for line in lines:
        shown = f"{line.value:.1%}" if line.unit == "share" else f"{line.value:,.1f} {line.unit}"
        rows.append(f"| {line.metric} | {shown} | {line.text} |")
    return "\n".join(rows)
