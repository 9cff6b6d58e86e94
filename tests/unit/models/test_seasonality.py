"""Seasonality checks: warn on a real weekly or annual pattern, stay quiet on a steady rate."""

from __future__ import annotations

from datetime import date

import numpy as np

from clv_pipeline.models.seasonality import (
    ANNUAL_CHECK,
    WEEKLY_CHECK,
    daily_series,
    seasonality_diagnostics,
)

START = date(2023, 1, 2).toordinal()  # a Monday


def _poisson(rate: np.ndarray, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).poisson(rate).astype(float)


def _checks(counts: np.ndarray) -> dict[str, object]:
    days = START + np.arange(counts.size)
    return {d.check: d for d in seasonality_diagnostics(days, counts)}


def test_steady_rate_is_ok_with_a_growing_business() -> None:
    n = 500
    counts = _poisson(np.linspace(40, 60, n))
    found = _checks(counts)
    assert found[WEEKLY_CHECK].status == "ok"  # type: ignore[attr-defined]
    assert found[ANNUAL_CHECK].status == "ok"  # type: ignore[attr-defined]


def test_weekend_peak_warns_and_names_the_weekday() -> None:
    n = 120
    weekday = np.array([date.fromordinal(START + i).weekday() for i in range(n)])
    counts = _poisson(np.where(weekday == 5, 120.0, 50.0))
    check = _checks(counts)[WEEKLY_CHECK]
    assert check.status == "warn"  # type: ignore[attr-defined]
    assert "Saturday" in check.message  # type: ignore[attr-defined]
    assert 2.0 < check.value < 2.9  # type: ignore[attr-defined]


def test_november_peak_warns_with_a_year_of_history() -> None:
    n = 400
    months = np.array([date.fromordinal(START + i).month for i in range(n)])
    counts = _poisson(np.where(months == 11, 150.0, 50.0))
    check = _checks(counts)[ANNUAL_CHECK]
    assert check.status == "warn"  # type: ignore[attr-defined]
    assert "November" in check.message  # type: ignore[attr-defined]


def test_short_history_says_why_it_cannot_tell() -> None:
    found = _checks(_poisson(np.full(30, 50.0)))
    assert found[WEEKLY_CHECK].status == "ok" and "Not enough" in found[WEEKLY_CHECK].message  # type: ignore[attr-defined]
    assert "Not enough" in found[ANNUAL_CHECK].message  # type: ignore[attr-defined]


def test_daily_series_fills_days_without_purchases() -> None:
    first, series = daily_series([10, 12, 12], [1.0, 2.0, 3.0])
    assert first == 10 and series.tolist() == [1.0, 0.0, 5.0]


def test_a_weekday_without_purchases_is_named() -> None:
    """A shop closed on Saturdays (the UCI Online Retail export)."""
    n = 120
    weekday = np.array([date.fromordinal(START + i).weekday() for i in range(n)])
    counts = _poisson(np.where(weekday == 5, 0.0, 50.0))
    check = _checks(counts)[WEEKLY_CHECK]
    assert check.status == "warn"  # type: ignore[attr-defined]
    assert "no purchases on Saturdays" in check.message  # type: ignore[attr-defined]
