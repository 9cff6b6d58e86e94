"""The churn period's definitions (docs/metrics.md) by hand."""

from __future__ import annotations

from datetime import date

import pytest

from clv_pipeline.features.periods import (
    formula_clv_factor,
    period_rates,
    window_activity,
    window_bounds,
)
from tests.unit.segments.helpers import transactions

AS_OF = date(2024, 6, 30)


def test_windows_are_exactly_w_days() -> None:
    previous_start, current_start = window_bounds(AS_OF, 90)
    assert (AS_OF - current_start).days == 90  # (2024-04-01, 2024-06-30]: 90 days
    assert (current_start - previous_start).days == 90
    with pytest.raises(ValueError):
        window_bounds(AS_OF, 0)


def test_activity_and_rates_by_hand() -> None:
    tx = transactions(
        [
            ("a", "2024-06-30", 30.0),  # as_of: this window
            ("a", "2024-03-01", 5.0),  # previous window
            ("b", "2024-04-01", 50.0),  # 90 days before: previous window's last day
            ("c", "2024-04-02", 20.0),  # 89 days before: this window's first day
            ("c", "2024-05-02", -25.0),  # refund in this window
            ("d", "2024-01-02", 7.0),  # 180 days before: before both windows
            ("e", "2024-01-03", 7.0),  # 179 days before: previous window's first day
            ("f", "2024-07-01", 9.0),  # after as_of: ignored
        ]
    )
    activity = window_activity(tx, as_of=AS_OF, window_days=90).collect()
    rows = {r["customer_id"]: r for r in activity.iter_rows(named=True)}
    assert set(rows) == {"a", "b", "c", "e"}
    assert (rows["a"]["active"], rows["a"]["previously_active"]) == (True, True)
    assert (rows["b"]["active"], rows["b"]["previously_active"]) == (False, True)
    assert (rows["c"]["active"], rows["c"]["previously_active"]) == (True, False)
    assert rows["e"]["previously_active"] is True
    assert rows["c"]["window_revenue"] == pytest.approx(-5.0)
    assert rows["c"]["window_purchase_amount"] == pytest.approx(20.0)
    rates = period_rates(activity, window_days=90)
    # previously active a, b, e; a retained: retention 1/3, churn 2/3, lifespan 90 / (2/3)
    assert (rates.previous_active, rates.retained, rates.active) == (3, 1, 2)
    assert rates.retention == pytest.approx(1 / 3) and rates.churn == pytest.approx(2 / 3)
    assert rates.lifespan_days == pytest.approx(135.0)
    assert rates.arpu == pytest.approx((30 - 5) / 2)


def test_formula_factor_by_hand() -> None:
    # undiscounted, 2 windows: r + r^2
    assert formula_clv_factor(
        0.5, window_days=90, horizon_days=180, discount_rate=0.0
    ) == pytest.approx(0.75)
    # infinite horizon limit = r / (1 + d - r) (Gupta & Lehmann)
    d = 1.1 ** (90 / 365.25) - 1
    far = formula_clv_factor(0.6, window_days=90, horizon_days=1e6, discount_rate=0.1)
    assert far == pytest.approx(0.6 / (1 + d - 0.6))
    # full retention, no discount: K windows
    assert formula_clv_factor(
        1.0, window_days=90, horizon_days=365, discount_rate=0.0
    ) == pytest.approx(365 / 90)
    assert formula_clv_factor(None, window_days=90, horizon_days=365, discount_rate=0.1) is None
