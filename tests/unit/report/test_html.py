"""render_report: every chart id, no external references, graceful without data; writing.

Issue 18, item 6: the currency on every money card, axis and hover; plain-word KPI names and
definitions; trend axes ending at the last snapshot; model vs formula CLV; unit economics naming
the missing input; plotly.js stored once and referenced relatively, or inline on request.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import polars as pl
import pytest
from plotly.offline import get_plotlyjs, get_plotlyjs_version

from clv_pipeline.config import SETTINGS, ConfigError, load_config
from clv_pipeline.report import charts
from clv_pipeline.report.backtest import BacktestResult, run_backtest
from clv_pipeline.report.html import (
    CHART_IDS,
    COST_TO_SERVE_ENV,
    CURRENCY_ENV,
    GROSS_MARGIN_ENV,
    PLOTLY_ASSET,
    PLOTLY_HREF,
    TABLE_IDS,
    UnitEconomicsInputs,
    plotly_asset_path,
    publish_report,
    render_report,
    report_paths,
    self_contained_path,
    write_plotly_asset,
    write_report,
)
from clv_pipeline.schema import KPIS, UNIT_ECONOMICS

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
            "active_window_days": [90, 90, 90],
            "alive_customers": [9, 10, 11],
            "arpu": [30.0, 31.0, 32.0],
            "avg_predicted_clv": [100.0, 101.0, 110.0],
            "median_predicted_clv": [20.0, 21.0, 20.0],
            "avg_historic_clv": [6.0, 6.0, 6.0],
            "avg_formula_clv": [250.0, 260.0, 270.0],
            "formula_clv_aov": [80.0, 90.0, 88.0],
            "formula_clv_arpu": [60.0, 69.0, 64.0],
            "lifespan_days": [180.0, 200.0, 180.0],
            "top_tier_revenue_share": [0.3, 0.3, 0.31],
        }
    )
    clv = pl.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "model": ["bgnbd"] * 3,
            "data_sufficient": [True] * 3,
            "predicted_clv": [10.0, 20.0, 300.0],
            "historic_clv": [5.0, 6.0, 7.0],
            "horizon_days": [365.0] * 3,
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


def test_self_contained_page_has_no_external_reference(backtest: BacktestResult) -> None:
    page = render(backtest, self_contained=True)
    assert EXTERNAL.search(page) is None
    assert "<script src" not in page.lower()
    assert re.search(r"<script[^>]*\bsrc\s*=", page, re.IGNORECASE) is None
    assert PLOTLY_ASSET not in page
    assert "<link" not in page.lower()
    assert "Content-Security-Policy" in page
    assert "script-src 'unsafe-inline'" in page  # not even 'self'
    # plotly.js itself is inline (it is large), once
    assert len(page) > 1_000_000
    assert page.count(get_plotlyjs()) == 1
    assert render(backtest) == page  # self-contained is the default of render_report


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


# --------------------------------------------------------------------------------------
# Issue 18, item 6
# --------------------------------------------------------------------------------------
def money_axes(fig: go.Figure) -> list[str]:
    """Titles of the axes whose title names an amount (everything but counts and shares)."""
    titles = []
    for name in dir(fig.layout):
        if re.fullmatch(r"[xy]axis\d*", name):
            title = getattr(fig.layout, name).title.text
            if title and not re.search(r"customers|decile|frequency|purchase|month|share", title):
                titles.append(title)
    return titles


def test_currency_on_every_money_axis_hover_and_card(backtest: BacktestResult) -> None:
    f = frames()
    latest = f["kpis_history"].row(-1, named=True)
    churn = f["churn"].with_columns(pl.col("value_at_risk").fill_null(0.0))
    figures = {
        "trend": (charts.kpi_trend(f["kpis_history"], currency="EUR"), 2),
        "distribution": (charts.clv_distribution(f["clv"], currency="EUR"), 1),
        "comparison": (charts.clv_comparison(latest, currency="EUR"), 1),
        "tiers": (charts.value_tiers(f["segments"], currency="EUR"), 1),
        "segments": (charts.segment_sizes(f["segments"], currency="EUR"), 1),
        "churn": (charts.churn_risk(churn, currency="EUR"), 1),
    }
    for name, (fig, expected) in figures.items():
        axes = money_axes(fig)
        assert len(axes) == expected, (name, axes)
        assert all("EUR" in title for title in axes), (name, axes)
        # every trace on a money axis says EUR when hovered
        for trace in fig.data:
            axis = trace.xaxis if trace.orientation == "h" else trace.yaxis
            axis_name = (axis or "y").replace("x", "xaxis").replace("y", "yaxis")
            if getattr(fig.layout, axis_name).title.text in axes:
                assert "EUR" in trace.hovertemplate, (name, trace.name)
    trend = figures["trend"][0]
    money_traces = [t for t in trend.data if "EUR" in t.hovertemplate]
    assert {t.name for t in money_traces} == {
        "Model CLV, average",
        "Model CLV, median",
        "Historic CLV, average",
        "Average order value",
        "Revenue per active customer",
    }
    assert "(EUR)" in " ".join(a.text for a in trend.layout.annotations)

    page = render(backtest, currency="EUR")
    cards = re.findall(
        r'<div class="card" data-kpi="(\w+)" data-kind="money">(.*?)</div></div>', page
    )
    assert {name for name, _ in cards} == {
        "aov",
        "arpu",
        "avg_predicted_clv",
        "median_predicted_clv",
        "avg_historic_clv",
    }
    for name, card in cards:
        assert '<span class="u">EUR</span>' in card, name
    assert "value_mae (EUR)" in page and "value_actual_total (EUR)" in page
    assert "per customer (EUR)" in page
    assert 'data-currency="EUR"' in page
    # nowhere is an amount left without its currency
    assert "currency units" not in page
    assert "currency units" in render(backtest, currency="")


def test_currency_setting_follows_the_precedence(tmp_path: Path) -> None:
    assert SETTINGS["report.currency"].env == CURRENCY_ENV == "CLV_CURRENCY"
    assert SETTINGS["models.gross_margin"].env == GROSS_MARGIN_ENV
    assert SETTINGS["segments.cost_to_serve_per_order"].env == COST_TO_SERVE_ENV
    assert load_config(tmp_path, environ={}).report_currency() == ""
    (tmp_path / "clv.toml").write_text('[report]\ncurrency = "gbp"\n')
    assert load_config(tmp_path, environ={}).report_currency() == "GBP"
    env = {"CLV_CURRENCY": "eur"}
    config = load_config(tmp_path, environ=env)
    assert (
        config.report_currency() == "EUR" and config.origin("report.currency") == "env CLV_CURRENCY"
    )
    flag = load_config(tmp_path, environ=env, overrides={"report.currency": "CHF"})
    assert flag.report_currency() == "CHF"
    with pytest.raises(ConfigError, match="CLV_CURRENCY.*three-letter"):
        load_config(tmp_path, environ={"CLV_CURRENCY": "EURO"})
    # unset: the one accepted currency of validation, if there is exactly one
    (tmp_path / "clv.toml").write_text('[validation]\ncurrencies = ["usd"]\n')
    assert load_config(tmp_path, environ={}).report_currency() == "USD"
    both = {"CLV_CURRENCIES": "USD,EUR"}
    assert load_config(tmp_path, environ=both).report_currency() == ""


def test_kpi_names_and_definitions_are_plain_words(backtest: BacktestResult) -> None:
    trend = charts.kpi_trend(frames()["kpis_history"])
    names = {t.name for t in trend.data}
    assert names and names <= set(charts.KPI_LABELS.values())
    assert not names & set(KPIS.names)  # no column name in the legend
    page = render(backtest)
    for column in ("avg_predicted_clv", "median_predicted_clv", "alive_customers", "churn_rate"):
        assert f'"name":"{column}"' not in page
    cards = dict(re.findall(r'data-kpi="(\w+)".*?<div class="def">(.*?)</div>', page))
    assert set(cards) >= {"customers", "active_customers", "alive_customers", "churn_rate"}
    assert all(len(text) > 20 for text in cards.values())
    assert "no purchase in the last 90 days" in cards["churn_rate"]
    assert "less than a 50% chance of having churned" in cards["alive_customers"]
    assert "next 365 days" in cards["avg_predicted_clv"]
    assert ">Churn rate (90 days)<" in page and ">Likely still customers<" in page
    assert 'id="kpi-notes"' in page and "answer different questions" in page
    # the alive card puts its count next to the customer base
    assert "of 12 (91.7%)" in page


def test_trend_axes_end_at_the_last_snapshot() -> None:
    history = frames()["kpis_history"]
    later = history.tail(1).with_columns(pl.lit(date(2024, 4, 20)).alias("as_of"))
    fig = charts.kpi_trend(pl.concat([history, later]), as_of=AS_OF)
    axes = [getattr(fig.layout, n) for n in ("xaxis", "xaxis2", "xaxis3", "xaxis4")]
    for axis in axes:
        assert [str(v)[:10] for v in axis.range] == ["2024-04-08", "2024-04-10"]
        assert axis.autorange is False
    assert all(max(t.x) == AS_OF for t in fig.data)  # the snapshot after as_of is left out
    one = charts.kpi_trend(history.tail(1))
    assert str(one.layout.xaxis.range[1])[:10] == "2024-04-10"
    assert [str(v)[:10] for v in one.layout.xaxis.tickvals] == ["2024-04-10"]


def test_share_axis_tells_close_rates_apart() -> None:
    """Retention 49.5% and churn 50.5% on one day: the share axis must not label both "50%"
    (seen in the demo report in Chromium with a whole-percent format)."""
    fig = charts.kpi_trend(frames()["kpis_history"])
    share_axis = fig.layout.yaxis3
    assert share_axis.title.text == "share of customers"
    # d3-format: three significant digits, insignificant zeros trimmed (0.495 -> "49.5%")
    assert share_axis.tickformat == ".3~%"


def test_model_and_formula_clv_side_by_side(backtest: BacktestResult) -> None:
    page = render(backtest, currency="EUR")
    table = page[page.index('<table id="table-clv-comparison"') :]
    table = table[: table.index("</table>")]
    for label in (
        "Model CLV, average",
        "Formula CLV, average",
        "Formula CLV: ARPU × margin ÷ churn",
    ):
        assert label in table
    assert "110.00" in table and "270.00" in table  # the as_of row's values
    assert 'id="clv-why"' in page and "Why they differ." in page
    comparison = charts.clv_comparison(frames()["kpis_history"].row(-1, named=True))
    assert list(comparison.data[0].y) == [
        "Historic CLV, average",
        "Model CLV, average",
        "Model CLV, median",
        "Formula CLV, average",
        "Formula CLV: AOV × orders × lifespan",
        "Formula CLV: ARPU × margin ÷ churn",
    ]


def unit_inputs(**overrides: object) -> UnitEconomicsInputs:
    args: dict[str, object] = {
        "customers_folder": "/home/landing/customers/",
        "spend_folder": "/home/landing/acquisition_spend/",
        "has_customers": True,
        "has_spend": True,
        "gross_margin": 0.4,
        "cost_to_serve_per_order": 2.0,
    }
    args.update(overrides)
    return UnitEconomicsInputs(**args)  # type: ignore[arg-type]


def status_of(page: str) -> str:
    found = re.search(r'id="unit-economics-status">(.*?)</(?:ul|p)>', page, re.DOTALL)
    assert found is not None
    return found.group(1)


def test_unit_economics_names_the_missing_input(backtest: BacktestResult) -> None:
    empty = pl.DataFrame(schema=UNIT_ECONOMICS.schema)
    no_spend = status_of(
        render(backtest, unit_economics=empty, unit_inputs=unit_inputs(has_spend=False))
    )
    assert "Missing: the acquisition spend file" in no_spend
    assert "/home/landing/acquisition_spend/" in no_spend and "month, channel, spend" in no_spend
    assert "clv run --date 2024-04-10" in no_spend
    assert "customers file" not in no_spend
    assert GROSS_MARGIN_ENV not in no_spend and COST_TO_SERVE_ENV not in no_spend

    no_customers = status_of(
        render(backtest, unit_economics=empty, unit_inputs=unit_inputs(has_customers=False))
    )
    assert "Missing: the customers file" in no_customers
    assert "customer_id, acquisition_channel, acquired_at" in no_customers
    assert "/home/landing/customers/" in no_customers and "spend file" not in no_customers

    defaults = status_of(
        render(
            backtest,
            unit_economics=None,
            unit_inputs=unit_inputs(
                has_customers=False, has_spend=False, gross_margin=1.0, cost_to_serve_per_order=0
            ),
        )
    )
    for text in ("customers file", "acquisition spend file", GROSS_MARGIN_ENV, COST_TO_SERVE_ENV):
        assert text in defaults
    assert "clv init --set models.gross_margin=0.4" in defaults
    # without the inputs object: both inputs named with their default folders
    generic = status_of(render(backtest))
    assert (
        "$CLV_HOME/landing/customers/" in generic
        and "$CLV_HOME/landing/acquisition_spend/" in generic
    )


def test_unit_economics_table_and_partial_inputs(backtest: BacktestResult) -> None:
    month = date(2024, 3, 1)
    given = {
        "as_of": [AS_OF] * 4,
        "cohort_month": [month] * 4,
        "channel": ["ads", "all", "organic", "tv"],
        "customers": [10, 15, 5, 0],
        "spend": [500.0, 700.0, 0.0, 200.0],
        "avg_net_clv": [200.0, 150.0, 50.0, None],
    }
    table = pl.DataFrame(
        {name: given.get(name, [None] * 4) for name in UNIT_ECONOMICS.names},
        schema=UNIT_ECONOMICS.schema,
    )
    page = render(backtest, unit_economics=table, unit_inputs=unit_inputs(), currency="EUR")
    status = status_of(page)
    assert "no spend for channel(s) organic" in status
    assert "spend for channel(s) tv but no customer" in status
    html_table = page[page.index('<table id="table-unit-economics"') :]
    html_table = html_table[: html_table.index("</table>")]
    assert "CAC (EUR)" in html_table
    ads = re.search(r"<tr><td class=\"l\">ads</td>(.*?)</tr>", html_table)
    assert ads is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", ads.group(1))
    assert cells[:6] == ["10", "500.00", "50.00", "200.00", "150.00", "4.0 : 1"]
    assert "ok" in cells[6]
    assert html_table.index(">all<") < html_table.index(">ads<")  # the total first


def test_unit_inputs_from_the_landing_folders(tmp_path: Path) -> None:
    customers, spend = tmp_path / "customers", tmp_path / "acquisition_spend"
    customers.mkdir()
    (customers / "c.csv").write_text("customer_id,acquisition_channel,acquired_at\n")
    (spend / "_ignored").mkdir(parents=True)
    found = UnitEconomicsInputs.of_folders(
        customers, spend, gross_margin=0.5, cost_to_serve_per_order=1.0, benchmark_ratio=3.0
    )
    assert found.has_customers and not found.has_spend
    assert found.spend_folder == f"{spend}/"


def test_daily_page_loads_the_shared_plotly_by_a_relative_path(
    backtest: BacktestResult, tmp_path: Path
) -> None:
    page = render(backtest, self_contained=False)
    assert PLOTLY_ASSET == f"plotly-{get_plotlyjs_version()}.min.js"
    assert page.count(f'<script type="text/javascript" src="{PLOTLY_HREF}"') == 1
    assert get_plotlyjs()[:2000] not in page
    assert len(page) < 200_000  # the data, not 4.8 MB of plotly.js
    assert EXTERNAL.search(page) is None  # relative, never a network address
    assert "script-src 'self' 'unsafe-inline'" in page
    assert "clv report --self-contained" in page  # the message when plotly.js is missing

    warehouse = tmp_path / "warehouse"
    dated, latest = publish_report(page, warehouse, AS_OF)
    assert latest is not None
    asset = plotly_asset_path(warehouse)
    assert asset == warehouse / "reports" / "_assets" / PLOTLY_ASSET
    assert asset.read_text(encoding="utf-8") == get_plotlyjs()
    for report in (dated, latest):  # both two levels below reports/
        assert (report.parent / PLOTLY_HREF).resolve() == asset.resolve()
    assert sorted(p.name for p in asset.parent.iterdir()) == [PLOTLY_ASSET]  # no temp files


def test_plotly_asset_is_written_once(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse"
    asset = write_plotly_asset(warehouse)
    before = asset.stat()
    publish_report("<html>a</html>", warehouse, AS_OF)
    publish_report("<html>b</html>", warehouse, date(2024, 4, 11))
    after = asset.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    asset.write_text("stale copy")  # different (an old or damaged file): replaced atomically
    assert write_plotly_asset(warehouse).read_text(encoding="utf-8") == get_plotlyjs()
    assert os.stat(asset).st_ino != before.st_ino


def test_identical_inputs_give_identical_bytes(backtest: BacktestResult) -> None:
    for self_contained in (False, True):
        first = render(backtest, self_contained=self_contained, currency="EUR")
        assert render(backtest, self_contained=self_contained, currency="EUR") == first
        page = first.replace(get_plotlyjs(), "")
        assert re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-", page) is None  # no uuid ids


def test_self_contained_path_is_next_to_the_daily_report(tmp_path: Path) -> None:
    dated, _ = report_paths(tmp_path, AS_OF)
    assert self_contained_path(tmp_path, AS_OF) == dated.with_name("report-self-contained.html")


@pytest.fixture(scope="module")
def simulated_backtest() -> BacktestResult:
    """Backtest on 600 customers simulated from BG/NBD (clv_pipeline.demo)."""
    from clv_pipeline.demo import generate_history

    end = date(2025, 6, 30)
    history = generate_history(n_customers=600, days=300, end=end, seed=1).with_columns(
        pl.col("occurred_at").dt.date().alias("event_date"),
        pl.when(pl.col("amount") > 0)
        .then(pl.lit("purchase"))
        .otherwise(pl.lit("refund"))
        .alias("revenue_kind"),
    )
    return run_backtest(history.lazy(), as_of=end, holdout_days=90)


def backtest_header(page: str) -> list[str]:
    head = re.search(r'<table id="table-backtest"><thead>(.*?)</thead>', page, re.S)
    assert head is not None
    return re.findall(r"<th[^>]*>(.*?)</th>", head.group(1))


def backtest_rows(page: str) -> dict[str, str]:
    table = re.search(r'<table id="table-backtest">.*?</table>', page, re.S)
    assert table is not None
    rows = re.findall(r'<tr><td class="l">([a-z_]+)[^<]*</td>(.*?)</tr>', table.group(0), re.S)
    return dict(rows)


def test_backtest_table_shows_both_baselines_lift_and_a_comment(
    simulated_backtest: BacktestResult,
) -> None:
    page = render(simulated_backtest)
    assert backtest_header(page) == [
        "metric",
        "what it measures",
        "baseline_rate",
        "baseline_zero",
        "bgnbd",
        "bgnbd vs best baseline",
        "pareto_nbd",
        "pareto_nbd vs best baseline",
    ]
    rows = backtest_rows(page)
    assert "purchases_auc" in rows and "churn_auc" not in rows
    # the churn-ranking AUC is below 0.5 for BG/NBD here, yet never flagged red: it has no
    # baseline to lose against, and the comment says why the number is low
    assert "worse" not in rows["p_alive_auc"]
    comment = re.search(r'<div class="note" id="backtest-comment">(.*?)</div>', page, re.S)
    assert comment is not None
    text = comment.group(1)
    assert "p_alive_auc below 0.5 (bgnbd) does not mean" in text
    assert "purchases_auc" in text and "baseline_zero predicts that nobody buys" in text


def test_backtest_table_of_a_partition_written_before_the_baselines_were_split(
    simulated_backtest: BacktestResult,
) -> None:
    old = (
        simulated_backtest.metrics.filter(pl.col("model") != "baseline_zero")
        .drop("best_baseline", "lift_vs_best_baseline")
        .with_columns(
            pl.col("model").replace("baseline_rate", "baseline"),
            pl.col("metric").replace("p_alive_auc", "churn_auc"),
        )
    )
    page = render(simulated_backtest, backtest=old)
    assert backtest_header(page)[2:4] == ["baseline", "bgnbd"]
    assert "% error" in backtest_rows(page)["purchases_mae"]  # lift against the old baseline


def test_model_checks_and_plain_words_open_the_page(backtest: BacktestResult) -> None:
    """Warnings first (fail before warn), the selected model and why, churn's basis, then what
    the model says and a new customer's CLV in the report's currency."""
    from clv_pipeline.models.summary import SummaryLine
    from clv_pipeline.segments.churn import ChurnBasis
    from clv_pipeline.valuation import ModelSummary

    diagnostics = pl.DataFrame(
        {
            "model": ["all", "bgnbd", "pareto_nbd", "all"],
            "check": [
                "selected_model",
                "dropout_degenerate",
                "hessian_positive_definite",
                "customers",
            ],
            "status": ["warn", "warn", "fail", "ok"],
            "message": [
                "bgnbd: lowest holdout MAE",
                "dropout collapsed",
                "flat <likelihood>",
                "fine",
            ],
        }
    )
    summary = ModelSummary(
        "bgnbd",
        (SummaryLine("typical_gap_days", 30.0, "days", "A typical customer buys every 30 days."),),
        123.456,
    )
    page = render(
        backtest,
        diagnostics=diagnostics,
        summary=summary,
        churn_basis=ChurnBasis("recency", "the dropout collapsed"),
        currency="EUR",
    )
    panel = page[page.index('id="diagnostics"') : page.index('id="kpis"')]
    assert "Selected model:</b> bgnbd: lowest holdout MAE" in panel
    assert "Churn:</b> the dropout collapsed." in panel
    assert panel.index("FAIL") < panel.index("WARN")
    assert "flat &lt;likelihood&gt;" in panel and "fine" not in panel
    assert "A typical customer buys every 30 days." in panel
    assert "123.46 EUR" in panel
    assert 'id="diagnostics"' not in render(backtest)  # nothing to say without the table


def test_describe_fit_reads_the_selected_model_from_model_params() -> None:
    from clv_pipeline.valuation import describe_fit

    rows = [("bgnbd", k, v) for k, v in {"r": 0.6, "alpha": 40.0, "a": 0.8, "b": 2.5}.items()]
    rows += [("gamma_gamma", k, v) for k, v in {"p": 6.0, "q": 4.0, "v": 15.0}.items()]
    rows += [("pareto_nbd", "r", 1.0)]
    params = pl.DataFrame(
        {
            "model": [r[0] for r in rows],
            "param": [r[1] for r in rows],
            "value": [r[2] for r in rows],
            "selected": [r[0] != "pareto_nbd" for r in rows],
        }
    )
    features = pl.DataFrame({"frequency": [0, 2], "recency": [0.0, 30.0], "T": [60.0, 90.0]})
    found = describe_fit(
        params,
        features,
        horizon_days=365.0,
        gross_margin=1.0,
        discount_rate=0.0,
        discount_period="annual",
    )
    assert found is not None and found.model == "bgnbd"
    assert found.lines[0].value == pytest.approx(40.0 / 0.6)
    assert found.new_customer_clv is not None and found.new_customer_clv > 0
    assert "new_customer_clv" in found.markdown()
    assert (
        describe_fit(
            params.with_columns(selected=pl.lit(False)),
            features,
            horizon_days=365.0,
            gross_margin=1.0,
            discount_rate=0.0,
            discount_period="annual",
        )
        is None
    )
