"""Synthetic transaction histories with a known generative process (for the demo and tests).

Process (time unit days, seeded, vectorised numpy):

* customers are acquired uniformly over ``days`` days ending at ``end`` (first purchase = acquisition);
* BG/NBD purchasing (Fader, Hardie & Lee 2005): each customer has a purchase rate
  ``lambda ~ Gamma(r, 1/alpha)`` per day and a dropout probability ``p ~ Beta(a, b)``; after every
  purchase-day (the first included) the customer leaves with probability ``p``; while alive,
  repeat purchase-days follow a Poisson process with rate ``lambda``;
* Gamma-Gamma spend (Fader, Hardie & Lee 2005, RFM and CLV): ``nu ~ Gamma(q, 1/gamma)`` per customer,
  each purchase-day total ``z ~ Gamma(p_spend, 1/nu)``;
* realism: 8% of purchase-days are split into two orders; 2% of orders are later refunded in full;
  0.5% of orders have status ``cancelled``; customers get a channel (web/app/store).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

US_PER_DAY = 86_400_000_000


@dataclass(frozen=True)
class DemoParams:
    r: float = 0.75
    alpha: float = 40.0  # days
    a: float = 0.8
    b: float = 3.0
    p_spend: float = 6.25
    q_spend: float = 3.74
    gamma_spend: float = 15.44
    max_repeat: int = 400


def generate_history(
    *,
    n_customers: int = 20_000,
    days: int = 730,
    end: date,
    seed: int = 42,
    params: DemoParams | None = None,
) -> pl.DataFrame:
    """Transactions (contract columns) for ``n_customers`` over ``days`` days up to ``end``."""
    prm = params or DemoParams()
    rng = np.random.default_rng(seed)
    start = datetime.combine(end - timedelta(days=days - 1), datetime.min.time(), tzinfo=UTC)
    horizon = float(days)  # observation window in days, [0, days)
    t0 = rng.uniform(0.0, horizon, n_customers)
    lam = rng.gamma(prm.r, 1.0 / prm.alpha, n_customers)
    p_drop = rng.beta(prm.a, prm.b, n_customers)
    nu = rng.gamma(prm.q_spend, 1.0 / prm.gamma_spend, n_customers)
    # repeat purchases before dropout ~ Geometric: P(J = j) = (1 - p)^j p
    repeats = np.minimum(rng.geometric(p_drop) - 1, prm.max_repeat)
    owner = np.repeat(np.arange(n_customers), repeats)
    gaps = rng.exponential(1.0, owner.size) / lam[owner]
    cum = np.cumsum(gaps)
    nonzero = repeats > 0
    first = (np.cumsum(repeats) - repeats)[nonzero]  # index of each customer's first repeat
    prior = np.repeat(cum[first] - gaps[first], repeats[nonzero])
    times = t0[owner] + cum - prior
    customer = np.concatenate([np.arange(n_customers), owner])
    when = np.concatenate([t0, times])
    keep = when < horizon
    customer, when = customer[keep], when[keep]
    amount = rng.gamma(prm.p_spend, 1.0 / nu[customer])
    # split some purchase-days into two orders on the same day
    split = rng.random(customer.size) < 0.08
    share = rng.uniform(0.2, 0.8, split.sum())
    extra_amount = amount[split] * (1 - share)
    amount[split] *= share
    extra_when = np.minimum(np.floor(when[split]) + rng.uniform(0, 1, split.sum()), horizon - 1e-6)
    customer = np.concatenate([customer, customer[split]])
    when = np.concatenate([when, extra_when])
    amount = np.round(np.concatenate([amount, extra_amount]), 2)
    order = np.lexsort((customer, when))
    customer, when, amount = customer[order], when[order], amount[order]
    n = customer.size
    status = np.where(rng.random(n) < 0.005, "cancelled", "completed")
    channel_of = rng.choice(np.array(["web", "app", "store"]), n_customers, p=[0.5, 0.3, 0.2])
    category = rng.choice(np.array(["apparel", "home", "beauty", "electronics", "grocery"]), n)
    refunded = (rng.random(n) < 0.02) & (status == "completed")
    refund_when = when[refunded] + rng.uniform(1, 20, refunded.sum())
    ok = refund_when < horizon
    frame = (
        pl.DataFrame(
            {
                "customer": np.concatenate([customer, customer[refunded][ok]]),
                "t": np.concatenate([when, refund_when[ok]]),
                "amount": np.concatenate([amount, -amount[refunded][ok]]),
                "status": np.concatenate([status, np.full(int(ok.sum()), "refunded")]),
                "product_category": np.concatenate([category, category[refunded][ok]]),
            }
        )
        .with_columns(
            pl.Series("channel", channel_of)
            .gather(pl.Series(np.concatenate([customer, customer[refunded][ok]])))
            .alias("channel")
        )
        .sort("t", "customer")
    )
    micros = (frame.get_column("t").to_numpy() * US_PER_DAY).astype(np.int64)
    stamps = np.datetime64(start.replace(tzinfo=None), "us") + micros.astype("timedelta64[us]")
    return frame.select(
        pl.format("T{}", pl.int_range(1, pl.len() + 1).cast(pl.String).str.zfill(9)).alias(
            "transaction_id"
        ),
        pl.format("C{}", pl.col("customer").cast(pl.String).str.zfill(7)).alias("customer_id"),
        pl.Series("occurred_at", stamps).dt.replace_time_zone("UTC"),
        pl.col("amount"),
        pl.lit("USD").alias("currency"),
        pl.lit(1, pl.Int64).alias("quantity"),
        pl.col("status"),
        pl.col("channel"),
        pl.col("product_category"),
    )
