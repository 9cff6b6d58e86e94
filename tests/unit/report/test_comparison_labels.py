"""Issue 20, items 6 and 7 in the report: KPI changes say against which snapshot and over how many
days; the cohort heatmap marks the partial month ("Dec 2011 (9 of 31 days)")."""

from __future__ import annotations

import re
from datetime import date

import polars as pl

from clv_pipeline.report import charts
from clv_pipeline.report.html import change_text, comparison_label, render_report

AS_OF = date(2011, 12, 9)


def _page(kpis: pl.DataFrame | None = None, cohorts: pl.DataFrame | None = None) -> str:
    return render_report(
        as_of=AS_OF,
        kpis_history=kpis,
        clv=None,
        segments=None,
        churn=None,
        cohorts=cohorts,
        model_params=None,
        backtest=None,
        deciles=None,
        calibration=None,
    )


def _kpis(previous: date | None, change: float | None, pct: float | None) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "as_of": [AS_OF],
            "previous_as_of": [previous],
            "active_window_days": [90],
            "customers": [418],
            "customers_change": [change],
            "customers_change_pct": [pct],
            "days_since_previous": [None if previous is None else (AS_OF - previous).days],
        },
        schema_overrides={"previous_as_of": pl.Date, "days_since_previous": pl.Int64},
    )


def _card(page: str, kpi: str) -> str:
    match = re.search(
        rf'<div class="card" data-kpi="{kpi}".*?<div class="d [^"]*"[^>]*>(.*?)</div>', page
    )
    assert match is not None, kpi
    return match.group(1)


def test_comparison_label() -> None:
    assert comparison_label(date(2011, 12, 8), AS_OF) == "vs 2011-12-08 (the day before)"
    assert comparison_label(date(2011, 12, 2), AS_OF) == "vs 2011-12-02 (7 days earlier)"
    assert comparison_label(date(2010, 12, 9), AS_OF) == "vs 2010-12-09 (365 days earlier)"
    assert comparison_label(None, AS_OF) == "vs previous"


def test_change_text() -> None:
    assert change_text(12.0, 2.9, "int") == "+12 (+2.9%)"
    assert change_text(-0.021, -5.0, "pct") == "-2.1 pts"  # shares: points, not % of a %
    assert change_text(3.5, None, "money") == "+3.50"
    assert change_text(None, None, "int") is None


def test_a_week_old_comparison_reads_as_a_week() -> None:
    card = _card(_page(_kpis(date(2011, 12, 2), 12.0, 2.9)), "customers")
    assert card == "+12 (+2.9%) vs 2011-12-02 (7 days earlier)"
    assert 'data-days="7"' in _page(_kpis(date(2011, 12, 2), 12.0, 2.9))


def test_the_day_before_and_no_previous() -> None:
    assert _card(_page(_kpis(date(2011, 12, 8), -1.0, -0.2)), "customers") == (
        "-1 (-0.2%) vs 2011-12-08 (the day before)"
    )
    assert _card(_page(_kpis(None, None, None)), "customers") == "no previous snapshot"
    # a previous snapshot without a change figure (its value was empty) is not "no previous"
    assert _card(_page(_kpis(date(2011, 12, 8), None, None)), "customers") == (
        "no change figure vs 2011-12-08 (the day before)"
    )


def _cohorts(as_of: date, partial: bool, observed: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "as_of": [as_of] * 3,
            "cohort_month": [date(2011, 11, 1), date(2011, 11, 1), date(2011, 12, 1)],
            "channel": ["all"] * 3,
            "months_since_acquisition": [0, 1, 0],
            "retention_rate": [1.0, 0.122, 1.0],
            "is_partial_month": [False, partial, partial],
            "days_observed": [30, observed, observed],
        }
    )


def test_heatmap_marks_the_partial_month() -> None:
    frame = _cohorts(AS_OF, True, 9)
    assert charts.partial_month(frame) == (date(2011, 12, 1), 9, 31)
    fig = charts.cohort_heatmap(frame)
    title = fig.layout.title.text
    assert "Dec 2011 (9 of 31 days)" in title
    heat = fig.data[0]
    # rows: 2011-11 (months 0, 1), 2011-12 (month 0); December is the partial month
    assert [list(r) for r in heat.text] == [["100", "12*"], ["100*", ""]]
    assert heat.customdata[0][1] == "partial month Dec 2011 (9 of 31 days)"
    assert heat.customdata[0][0] == "full month"
    outlined = sorted((s.x0, s.y0) for s in fig.layout.shapes)
    assert outlined == [(-0.5, 0.5), (0.5, -0.5)]  # (month 0, row 1), (month 1, row 0)
    assert "Dec 2011 (9 of 31 days)" in _page(cohorts=frame)


def test_heatmap_without_a_partial_month() -> None:
    full = _cohorts(date(2011, 12, 31), False, 31)
    assert charts.partial_month(full) is None
    fig = charts.cohort_heatmap(full)
    assert len(fig.layout.shapes) == 0 and "*" not in fig.layout.title.text
    # snapshots published before the flag: nothing marked, nothing fails
    old = full.drop("is_partial_month", "days_observed")
    assert charts.partial_month(old) is None
    assert len(charts.cohort_heatmap(old).layout.shapes) == 0
