"""Weekly and annual seasonality in daily purchase counts, as ``model_diagnostics`` rows.

The purchase models assume each customer buys at a steady rate. When purchases peak on some
weekdays or in some months, predictions over short horizons miss the peaks (they are right on
average over a year). Two checks, on the counts of purchases per calendar day:

* ``weekly_seasonality`` (at least 8 full weeks): purchases per weekday over whole weeks; a
  chi-square test against "every weekday alike" and the ratio of the busiest weekday to the
  quietest. ``warn`` when p < 0.001 and the ratio is at least 1.5.
* ``annual_seasonality`` (at least 365 days of history): purchases per day in each calendar month
  of the last 365 days, divided by the mean over those 365 days (a growing or shrinking business
  moves every month alike within one year far less than a season does); the peak month's ratio.
  ``warn`` when the peak month is at least 1.5 times the year's mean and a chi-square test
  rejects "every month alike" at p < 0.001.

With less history the check is ``ok`` with the reason (not enough history to tell).
"""

from __future__ import annotations

import calendar
from datetime import date

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from clv_pipeline.models.diagnostics import ALL_MODELS, Diagnostic

WEEKLY_CHECK = "weekly_seasonality"
ANNUAL_CHECK = "annual_seasonality"
PEAK_RATIO_WARN = 1.5
P_VALUE = 1e-3
MIN_WEEKS = 8
MIN_DAYS_ANNUAL = 365


def daily_series(days: ArrayLike, counts: ArrayLike) -> tuple[int, np.ndarray]:
    """(first day ordinal, purchases per day with zeros filled) from sparse (ordinal, count)."""
    d = np.asarray(days, dtype=np.int64)
    c = np.asarray(counts, dtype=np.float64)
    if d.size == 0:
        return 0, np.zeros(0)
    first = int(d.min())
    series = np.zeros(int(d.max()) - first + 1)
    np.add.at(series, d - first, c)
    return first, series


def weekly(first: int, series: np.ndarray) -> Diagnostic:
    """The weekly check on a gap-free daily series starting at ordinal ``first``."""
    weeks = series.size // 7
    if weeks < MIN_WEEKS or series.sum() <= 0:
        return Diagnostic(
            ALL_MODELS,
            WEEKLY_CHECK,
            "ok",
            None,
            PEAK_RATIO_WARN,
            f"Not enough history to tell a weekly pattern ({weeks} full weeks, "
            f"{MIN_WEEKS} needed).",
        )
    tail = series[series.size - 7 * weeks :]
    start = first + series.size - 7 * weeks
    per_weekday = np.zeros(7)
    for offset in range(7):
        per_weekday[date.fromordinal(start + offset).weekday()] = tail[offset::7].sum()
    _, p_value = stats.chisquare(per_weekday)
    low = per_weekday.min()
    ratio = float(per_weekday.max() / low) if low > 0 else float("inf")
    peak = calendar.day_name[int(per_weekday.argmax())]
    quiet = calendar.day_name[int(per_weekday.argmin())]
    seasonal = p_value < P_VALUE and ratio >= PEAK_RATIO_WARN
    return Diagnostic(
        ALL_MODELS,
        WEEKLY_CHECK,
        "warn" if seasonal else "ok",
        ratio,
        PEAK_RATIO_WARN,
        (
            "Purchases follow a weekly pattern: "
            + (
                f"{peak}s see {ratio:.1f}x the purchases of {quiet}s."
                if np.isfinite(ratio)
                else f"{peak}s are busiest and there are no purchases on {quiet}s."
            )
            + " The models assume a steady rate, so predictions for a few days miss the busy "
            "weekdays; weekly and longer horizons are unaffected."
        )
        if seasonal
        else f"No strong weekly pattern (busiest weekday {peak}, {ratio:.2f}x the quietest).",
    )


def annual(first: int, series: np.ndarray) -> Diagnostic:
    """The annual check on the last 365 days of a gap-free daily series."""
    if series.size < MIN_DAYS_ANNUAL or series.sum() <= 0:
        return Diagnostic(
            ALL_MODELS,
            ANNUAL_CHECK,
            "ok",
            None,
            PEAK_RATIO_WARN,
            f"Not enough history to tell a seasonal peak ({series.size} days, "
            f"{MIN_DAYS_ANNUAL} needed).",
        )
    year = series[-MIN_DAYS_ANNUAL:]
    start = first + series.size - MIN_DAYS_ANNUAL
    months = np.array([date.fromordinal(start + i).month for i in range(MIN_DAYS_ANNUAL)])
    present = np.unique(months)
    totals = np.array([year[months == m].sum() for m in present])
    lengths = np.array([(months == m).sum() for m in present], dtype=np.float64)
    rates = totals / lengths
    mean_rate = year.sum() / MIN_DAYS_ANNUAL
    _, p_value = stats.chisquare(totals, f_exp=lengths / lengths.sum() * totals.sum())
    ratio = float(rates.max() / mean_rate)
    peak = calendar.month_name[int(present[rates.argmax()])]
    seasonal = p_value < P_VALUE and ratio >= PEAK_RATIO_WARN
    return Diagnostic(
        ALL_MODELS,
        ANNUAL_CHECK,
        "warn" if seasonal else "ok",
        ratio,
        PEAK_RATIO_WARN,
        (
            f"Purchases peak in {peak}: {ratio:.1f}x the year's average per day. The models "
            "assume a steady rate, so a 90-day prediction made before the peak underestimates "
            "it and one made during it overestimates the months after; yearly CLV is unaffected."
        )
        if seasonal
        else f"No strong seasonal peak (busiest month {peak}, {ratio:.2f}x the year's average).",
    )


def seasonality_diagnostics(days: ArrayLike, counts: ArrayLike) -> list[Diagnostic]:
    """Both checks on purchases per day (``days``: date ordinals, ``counts``: purchases)."""
    first, series = daily_series(days, counts)
    return [weekly(first, series), annual(first, series)]
