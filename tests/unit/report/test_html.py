"""render_report: every chart id, no external references, graceful without data; writing."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from clv_pipeline.report.backtest import BacktestResult, run_backtest
from clv_pipeline.report.html import (
    CHART_IDS,
    TABLE_IDS,
    publish_report,
    render_report,
    report_paths,
    write_report,
)

from .test_backtest import HAND, validated

AS_OF = date(2024, 4, 10)

EXTERNAL = re.compile(
    r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//"""
    r"""|@import\s+(?:url\()?["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//""",
    re.IGNORECASE,
)


def frames() -> dict[str, pl.DataFrame]:
    kpis = pl.DataFrame(
        {
            "as_of": [date(2024, 4, 8), date(2024, 4, 9), AS_OF],
            "customers": [10, 11, 12],
            "active_customers": [5, 6, 6],
            "retention_rate": [0.5, 0.55, 0.5],
            "churn_rate": [0.5, 0.45, 0.5],
            "aov": [20.0, 21.0, 22.0],
            "aov_change_pct": [None, 5.0, 4.76],
        }
    )
    clv = pl.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "model": ["bgnbd"] * 3,
            "data_sufficient": [True] * 3,
            "predicted_clv": [10.0, 20.0, 300.0],
            "historic_clv": [5.0, 6.0, 7.0],
        }
    )
    segments = pl.DataFrame(
        {
            "rfm_segment": ["champions", "at_risk", "<script>alert(1)</script>"],
            "value_tier": ["platinum", "low", "medium"],
            "segment_value": [300.0, 10.0, 20.0],
        }
    )
    churn = pl.DataFrame(
        {"risk_band": ["low", "critical", "unknown"], "value_at_risk": [1.0, 30.0, None]}
    )
    cohorts = pl.DataFrame(
        {
            "cohort_month": [date(2024, 1, 1)] * 2 + [date(2024, 2, 1)],
            "channel": ["all"] * 3,
            "months_since_acquisition": [0, 1, 0],
            "retention_rate": [1.0, 0.4, 1.0],
        }
    )
    params = pl.DataFrame(
        {
            "model": ["bgnbd", "bgnbd"],
            "param": ["r", "alpha"],
            "value": [0.5, 10.0],
            "log_likelihood": [-100.0, -100.0],
            "bic": [210.0, 210.0],
            "n_customers": [3, 3],
            "n_repeat_customers": [2, 2],
            "converged": [True, True],
            "selected": [True, True],
        }
    )
    return {
        "kpis_history": kpis,
        "clv": clv,
        "segments": segments,
        "churn": churn,
        "cohorts": cohorts,
        "model_params": params,
    }


@pytest.fixture(scope="module")
def backtest() -> BacktestResult:
    return run_backtest(validated(HAND), as_of=AS_OF, holdout_days=10)


def render(bt: BacktestResult, **overrides: object) -> str:
    args: dict[str, object] = {
        **frames(),
        "backtest": bt.metrics,
        "deciles": bt.deciles,
        "calibration": bt.calibration,
        "messages": bt.messages,
    }
    args.update(overrides)
    return render_report(as_of=AS_OF, **args)  # type: ignore[arg-type]


def test_every_chart_and_table_is_present(backtest: BacktestResult) -> None:
    page = render(backtest)
    assert page.startswith("<!DOCTYPE html>")
    for chart_id in CHART_IDS:
        assert f'<div class="chart" id="{chart_id}">' in page
        assert f'id="{chart_id}-plot"' in page
    for table_id in TABLE_IDS:
        assert f'id="{table_id}"' in page
    assert 'id="report-errors"' in page
    assert "Plotly.newPlot" in page
    assert "insufficient data" in page  # the backtest's flag is shown


def test_no_external_references(backtest: BacktestResult) -> None:
    page = render(backtest)
    assert EXTERNAL.search(page) is None
    assert "<script src" not in page.lower()
    assert "<link" not in page.lower()
    assert "Content-Security-Policy" in page
    # plotly.js itself is inline (it is large), once
    assert len(page) > 1_000_000
    assert page.count("plotly.js v") >= 1


def test_text_is_escaped(backtest: BacktestResult) -> None:
    page = render(backtest, messages=["<b>bold</b> & more"])
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; more" in page
    assert "<script>alert(1)</script>" not in page


def test_renders_without_any_data() -> None:
    page = render_report(
        as_of=AS_OF,
        kpis_history=None,
        clv=None,
        segments=None,
        churn=None,
        cohorts=None,
        model_params=None,
        backtest=None,
        deciles=None,
        calibration=None,
        messages=[],
    )
    for chart_id in CHART_IDS:
        assert f'<div class="chart" id="{chart_id}">' in page
    assert "no kpis snapshots" in page
    assert EXTERNAL.search(page) is None


def test_external_pattern_detects_references() -> None:
    assert EXTERNAL.search('<script src="https://cdn.plot.ly/plotly.js"></script>')
    assert EXTERNAL.search("<link rel='stylesheet' href='//fonts.example/x.css'>")
    assert EXTERNAL.search("@import url(https://fonts.example/x.css);")
    assert EXTERNAL.search('<script src="local.js"></script>') is None


def test_write_report_is_atomic_and_publishes_both_paths(tmp_path: Path) -> None:
    target = write_report("<html>1</html>", tmp_path / "a" / "report.html")
    assert target.read_text() == "<html>1</html>"
    write_report("<html>2</html>", target)
    assert target.read_text() == "<html>2</html>"
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]  # no temp leftovers

    dated, latest = publish_report("<html>x</html>", tmp_path / "warehouse", AS_OF)
    assert (dated, latest) == report_paths(tmp_path / "warehouse", AS_OF)
    assert dated == tmp_path / "warehouse" / "reports" / "as_of=2024-04-10" / "report.html"
    assert latest == tmp_path / "warehouse" / "reports" / "latest" / "report.html"
    assert dated.read_text() == latest.read_text() == "<html>x</html>"


def test_clv_histogram_is_binned_not_one_value_per_customer() -> None:
    from clv_pipeline.report.charts import clv_distribution

    values = np.random.default_rng(1).gamma(2.0, 50.0, 200_000)
    figure = clv_distribution(pl.DataFrame({"predicted_clv": values}))
    bars = figure.data[0]
    assert bars.type == "bar" and len(bars.y) == 40
    cap = np.quantile(values, 0.99, method="nearest")
    assert int(np.sum(bars.y)) == int((values <= cap).sum())
    assert len(figure.to_json()) < 20_000  # independent of the number of customers
