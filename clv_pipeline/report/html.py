"""The HTML report: inline CSS, plotly.js shared or inline, no network access needed.

:func:`render_report` turns published tables (polars frames) into one HTML string;
:func:`write_report` / :func:`publish_report` write it atomically to
``warehouse/reports/as_of=D/report.html`` and ``warehouse/reports/latest/report.html``.

plotly.js (~4.8 MB) is stored once, as ``warehouse/reports/_assets/plotly-<version>.min.js``
(:func:`write_plotly_asset`: atomic, only when missing or different). The daily pages, rendered
with ``self_contained=False`` by the pipeline, load it by the relative path :data:`PLOTLY_HREF`
(both report folders are one level below ``reports/``). With ``self_contained=True`` (the
default of :func:`render_report`; ``clv report --self-contained``) it is inline: one file that
opens anywhere, for mailing. The bytes depend on the inputs only: chart div ids are fixed,
nothing carries a timestamp.

Every chart lives in ``<div class="chart" id="chart-...">`` (ids in :data:`CHART_IDS`). The
page's own script records JavaScript errors in ``<pre id="report-errors">``, sets
``data-rendered="true"`` on each chart div once plotly has drawn it and finally sets
``data-plotly`` (the plotly.js version that ran) and ``data-report-status`` (``ok`` or ``errors``)
on ``<body>`` (used by the browser test).
"""

from __future__ import annotations

import html as _html
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
import polars as pl
from plotly.offline import get_plotlyjs, get_plotlyjs_version

from clv_pipeline.paths import data_files
from clv_pipeline.report import charts
from clv_pipeline.report.backtest import (
    BASELINE_ZERO,
    LEGACY_BASELINE,
    LOWER_IS_BETTER,
    backtest_lift,
)
from clv_pipeline.report.charts import KPI_LABELS, MONEY_KPIS, SHARE_KPIS, money_unit
from clv_pipeline.schema import BACKTEST_METRICS
from clv_pipeline.schema.report import BACKTEST_BASELINES
from clv_pipeline.segments.churn import ChurnBasis
from clv_pipeline.valuation import ModelSummary

#: Stable element ids of the charts, in page order, with their section titles.
CHART_IDS: dict[str, str] = {
    "chart-kpi-trend": "KPI trend",
    "chart-clv-distribution": "CLV distribution",
    "chart-clv-comparison": "Model CLV vs formula CLV",
    "chart-value-tiers": "Value tiers",
    "chart-segments": "Segments",
    "chart-churn-risk": "Churn risk",
    "chart-cohort-retention": "Cohort retention",
    "chart-calibration": "Calibration vs holdout",
    "chart-deciles": "Prediction deciles",
}

#: Content-Security-Policy of a self-contained page: nothing may be loaded from anywhere.
CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:; connect-src 'none'"
)
#: The daily page's policy: scripts also from its own location (the shared plotly.js), no network.
CSP_SHARED = CSP.replace("script-src ", "script-src 'self' ", 1)

#: plotly.js shared by the daily reports: ``warehouse/reports/_assets/<PLOTLY_ASSET>``.
PLOTLY_ASSET = f"plotly-{get_plotlyjs_version()}.min.js"
#: Where a daily page (``reports/as_of=D/`` or ``reports/latest/``) finds it.
PLOTLY_HREF = f"../_assets/{PLOTLY_ASSET}"

#: Ids of the HTML tables present on every page.
TABLE_IDS = (
    "table-kpis",
    "table-clv-comparison",
    "table-backtest",
    "table-model-params",
    "table-flags",
)

#: Environment variables named in the report's hints (tests check they are real settings).
GROSS_MARGIN_ENV = "CLV_GROSS_MARGIN"
COST_TO_SERVE_ENV = "CLV_COST_TO_SERVE_PER_ORDER"
CURRENCY_ENV = "CLV_CURRENCY"

#: The columns :func:`render_report` reads of the per-customer tables; the report step reads
#: only these (a whole ``customer_clv`` of 10M customers is gigabytes). A test renders the
#: demo's report from these and from the whole tables and compares the bytes.
REPORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "customer_clv": (
        "customer_id",
        "predicted_clv",
        "historic_clv",
        "horizon_days",
        "discount_rate",
        "discount_period",
        "gross_margin",
        "currency",
        "fit_group",
        "data_sufficient",
        "model",
    ),
    "customer_segments": ("value_tier", "rfm_segment", "segment_value"),
    "customer_churn": ("risk_band", "value_at_risk"),
}

#: The headline cards, in order (kpis columns).
_KPI_CARDS: tuple[str, ...] = (
    "customers",
    "active_customers",
    "alive_customers",
    "retention_rate",
    "churn_rate",
    "aov",
    "arpu",
    "avg_predicted_clv",
    "median_predicted_clv",
    "avg_historic_clv",
    "top_tier_revenue_share",
)


def _kind(kpi: str) -> str:
    """How a kpis column is formatted: money, pct (a share) or int."""
    return "money" if kpi in MONEY_KPIS else "pct" if kpi in SHARE_KPIS else "int"


@dataclass(frozen=True)
class UnitEconomicsInputs:
    """What ``unit_economics`` needs besides the transactions, as found for this data home.

    Used only for the report's notes on a missing input (which one, and how to add it).
    """

    customers_folder: str  # landing/customers/: customer_id, acquisition_channel, acquired_at
    spend_folder: str  # landing/acquisition_spend/: month, channel, spend
    has_customers: bool
    has_spend: bool
    gross_margin: float = 1.0
    cost_to_serve_per_order: float = 0.0
    benchmark_ratio: float = 3.0

    @classmethod
    def of_folders(
        cls,
        customers: Path,
        spend: Path,
        *,
        gross_margin: float,
        cost_to_serve_per_order: float,
        benchmark_ratio: float,
    ) -> UnitEconomicsInputs:
        """The inputs as found in the two landing folders (a CSV or parquet file in each)."""
        return cls(
            customers_folder=f"{customers}/",
            spend_folder=f"{spend}/",
            has_customers=customers.is_dir() and bool(data_files(customers)),
            has_spend=spend.is_dir() and bool(data_files(spend)),
            gross_margin=gross_margin,
            cost_to_serve_per_order=cost_to_serve_per_order,
            benchmark_ratio=benchmark_ratio,
        )


_CSS = """
*{box-sizing:border-box}
body{margin:0;padding:24px 32px;font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,
sans-serif;color:#1d2330;background:#f5f6f8;line-height:1.4}
h1{margin:0 0 4px;font-size:26px}h2{margin:28px 0 10px;font-size:19px}
.sub{color:#5b6473;margin:0 0 16px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px}
.card{background:#fff;border-radius:8px;padding:10px 14px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.card .k{font-size:12px;color:#5b6473}.card .v{font-size:22px;font-weight:600}
.card .d{font-size:12px}.card .u{font-size:13px;font-weight:400;color:#5b6473}
.card .def{font-size:12px;color:#5b6473;margin:2px 0 4px}.up{color:#1a7f37}.down{color:#c62828}.flat{color:#5b6473}
.chart{background:#fff;border-radius:8px;padding:6px;margin:0 0 16px;min-height:260px;
box-shadow:0 1px 2px rgba(0,0,0,.08)}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:16px}
@media (max-width:1100px){.grid2{grid-template-columns:1fr}}
table{border-collapse:collapse;background:#fff;font-size:13px;margin:0 0 16px;
box-shadow:0 1px 2px rgba(0,0,0,.08)}
th,td{padding:5px 10px;border-bottom:1px solid #e3e6ea;text-align:right}
th{background:#eef0f3;font-weight:600}td.l,th.l{text-align:left}
td.better{color:#1a7f37;font-weight:600}td.worse{color:#c62828}
.flag-ok{color:#1a7f37;font-weight:600}.flag-bad{color:#c62828;font-weight:600}
ul.messages{background:#fff8e1;border-left:4px solid #f0b400;padding:10px 10px 10px 28px;
margin:0 0 16px}
.note{background:#fff;border-left:4px solid #1f77b4;padding:8px 14px;margin:10px 0 16px;
font-size:13px;box-shadow:0 1px 2px rgba(0,0,0,.08)}.note p{margin:4px 0}
ul.missing{background:#fff8e1;border-left:4px solid #f0b400;padding:10px 10px 10px 28px;
margin:0 0 16px;font-size:13px}ul.missing li{margin:3px 0}
code{background:#eef0f3;padding:0 3px;border-radius:3px}
pre#report-errors{color:#c62828;white-space:pre-wrap;margin:0}
pre#report-errors:empty{display:none}
footer{color:#5b6473;font-size:12px;margin-top:24px}
"""

# Runs before plotly.js: collect every error so the browser test can assert there were none.
_HEAD_JS = """
window.__reportErrors = [];
window.addEventListener('error', function (e) {
  window.__reportErrors.push(String((e && e.message) || e));
});
document.addEventListener('securitypolicyviolation', function (e) {
  window.__reportErrors.push('blocked (not self-contained): ' + e.blockedURI);
});
window.addEventListener('unhandledrejection', function (e) {
  window.__reportErrors.push('unhandled rejection: ' + String(e && e.reason));
});
function __markRendered(plotId) {
  var el = document.getElementById(plotId);
  if (!el) { return; }
  var box = el.closest('div.chart');
  if (box && el.querySelector('svg')) { box.setAttribute('data-rendered', 'true'); }
}
"""

# Runs last: wait (bounded) for every chart, then publish the outcome in the DOM.
_TAIL_JS = """
(function () {
  var tries = 0;
  function finish() {
    var boxes = document.querySelectorAll('div.chart');
    var pending = 0;
    boxes.forEach(function (b) { if (b.getAttribute('data-rendered') !== 'true') { pending++; } });
    if (pending > 0 && tries++ < 100) { setTimeout(finish, 100); return; }
    if (pending > 0) { window.__reportErrors.push(pending + ' chart(s) did not render'); }
    document.getElementById('report-errors').textContent = window.__reportErrors.join('\\n');
    if (window.Plotly) { document.body.setAttribute('data-plotly', window.Plotly.version); }
    document.body.setAttribute('data-report-status',
      window.__reportErrors.length ? 'errors' : 'ok');
  }
  if (document.readyState === 'complete') { finish(); }
  else { window.addEventListener('load', finish); }
})();
"""


# --------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------
def _esc(value: object) -> str:
    return _html.escape(str(value), quote=True)


def _fmt(value: object, kind: str = "num") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        v = float(value)
        if kind == "int":
            return f"{v:,.0f}"
        if kind == "pct":
            return f"{100 * v:.1f}%"
        if kind == "money":
            return f"{v:,.2f}"
        if abs(v) >= 1000:
            return f"{v:,.1f}"
        return f"{v:.4g}"
    return _esc(value)


def _table(
    table_id: str, header: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 1
) -> str:
    """HTML table; cells are pre-formatted HTML (callers escape), first ``left`` columns left."""
    ths = "".join(
        f'<th class="{"l" if i < left else ""}">{_esc(h)}</th>' for i, h in enumerate(header)
    )
    body = []
    for row in rows:
        tds = []
        for i, cell in enumerate(row):
            cls = "l" if i < left else ""
            if cell.startswith("<td"):
                tds.append(cell)
            else:
                tds.append(f'<td class="{cls}">{cell}</td>')
        body.append("<tr>" + "".join(tds) + "</tr>")
    if not rows:
        body.append(f'<tr><td class="l" colspan="{len(header)}">no rows</td></tr>')
    return (
        f'<table id="{table_id}"><thead><tr>{ths}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


# --------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------
def _chart_div(chart_id: str, fig: go.Figure) -> str:
    inner = pio.to_html(
        fig,
        full_html=False,
        include_plotlyjs=False,
        include_mathjax=False,
        div_id=f"{chart_id}-plot",
        config={"displaylogo": False, "displayModeBar": False, "responsive": True},
        default_height=f"{int(fig.layout.height or 380)}px",
        post_script="__markRendered('{plot_id}');",
    )
    return f'<div class="chart" id="{chart_id}">{inner}</div>'


def _latest_kpis(kpis_history: pl.DataFrame | None, as_of: date) -> dict[str, object] | None:
    if kpis_history is None or kpis_history.height == 0 or "as_of" not in kpis_history.columns:
        return None
    rows = kpis_history.filter(pl.col("as_of") <= as_of).sort("as_of")
    if rows.height == 0:
        return None
    return rows.row(-1, named=True)


def _window(latest: Mapping[str, object]) -> str:
    days = latest.get("active_window_days")
    return f"{days} days" if isinstance(days, int) else "window"


def _horizon(clv: pl.DataFrame | None) -> str:
    if clv is not None and "horizon_days" in clv.columns:
        values = clv["horizon_days"].drop_nulls()
        if values.len():
            return f"{float(values[0]):,.0f} days"
    return "horizon"


def clv_units(clv: pl.DataFrame, currency: str = "") -> str:
    """What every CLV figure of ``clv`` (customer_clv) is: horizon, discounting, margin, currency."""
    if clv.is_empty():
        return "no customers"
    row = clv.row(0, named=True)
    days = row.get("horizon_days")
    horizon = f"next {float(days):.0f} days" if isinstance(days, int | float) else "horizon unknown"
    rate, period = row.get("discount_rate"), row.get("discount_period")
    discount = (
        f"discounted {rate:.0%}/{'year' if period == 'annual' else 'month'}"
        if isinstance(rate, float)
        else "discounting unknown"
    )
    margin = row.get("gross_margin")
    money = (
        f"margin ({margin:.0%} of revenue)"
        if isinstance(margin, float) and margin < 1.0
        else "revenue (no gross margin set: CLV_GROSS_MARGIN)"
    )
    return (
        f"{horizon}, {discount}, {money}, in {row.get('currency') or currency or 'currency units'}"
    )


def _revenue_only(clv: pl.DataFrame | None) -> bool:
    """The CLV figures are revenue: customer_clv says gross_margin 1 (no margin set)."""
    if clv is None or "gross_margin" not in clv.columns or clv.is_empty():
        return False
    margin = clv["gross_margin"][0]
    return margin is not None and margin >= 1.0


def _margin_warning(clv: pl.DataFrame | None) -> str:
    """A warning when the CLV figures are revenue (no gross margin set)."""
    if not _revenue_only(clv):
        return ""
    return (
        " <b>No gross margin is set</b> (<code>CLV_GROSS_MARGIN</code>): CLV figures are revenue, "
        "so CLV:CAC compares revenue with acquisition cost and overstates payback against a "
        "margin benchmark such as 3:1."
    )


def kpi_definitions(*, as_of: date, window: str, horizon: str) -> dict[str, str]:
    """One plain-word line per headline KPI (``window`` e.g. "90 days", ``horizon`` "365 days")."""
    last = f"the last {window}" if window != "window" else "the activity window"
    return {
        "customers": f"Everyone with at least one purchase on or before {as_of.isoformat()}.",
        "active_customers": f"Customers with at least one purchase in {last}.",
        "alive_customers": "Customers with less than a 50% chance of having churned (risk "
        "bands low and medium; the lifecycle's active customers), whether or not they bought "
        "recently.",
        "retention_rate": f"Of the customers who bought in the {window} before {last}, the "
        f"share who bought again in {last} (period retention).",
        "churn_rate": f"100% minus retention: of the customers who bought in the {window} "
        f"before {last}, the share with no purchase in {last} (period churn; quiet, not "
        "necessarily gone).",
        "aov": f"Average amount of a purchase, over the purchases of {last}.",
        "arpu": f"Net revenue (after refunds) of {last} per active customer.",
        "avg_predicted_clv": f"What the model expects a customer to bring in the next {horizon}, "
        "after gross margin, discounted; averaged over all customers.",
        "median_predicted_clv": f"Half of the customers are expected to bring less than this in "
        f"the next {horizon}.",
        "avg_historic_clv": "Net revenue to date per customer, after gross margin.",
        "top_tier_revenue_share": "Share of all net revenue to date that came from the top value "
        "tier (platinum: the top 1% of customers by CLV).",
    }


def _card_value(name: str, kind: str, latest: Mapping[str, object], currency: str) -> str:
    value = latest[name]
    text = _fmt(value, kind)
    if kind == "money" and text != "–":
        text += f' <span class="u">{_esc(money_unit(currency))}</span>'
    customers = latest.get("customers")
    if (
        name == "alive_customers"
        and isinstance(value, int)
        and isinstance(customers, int)
        and customers > 0
    ):
        text += (
            f' <span class="u">of {_fmt(customers, "int")} '
            f"({_fmt(value / customers, 'pct')})</span>"
        )
    return text


def comparison_label(previous_as_of: object, as_of: date) -> str:
    """What a change is measured against: ``vs 2011-12-08 (the day before)``, ``vs 2011-11-25
    (7 days earlier)`` (the previous complete snapshot, not always the day before);
    ``vs previous`` when the row does not say which snapshot."""
    if not isinstance(previous_as_of, date):
        return "vs previous"
    days = (as_of - previous_as_of).days
    span = "the day before" if days == 1 else f"{days:,} days earlier"
    return f"vs {previous_as_of.isoformat()} ({span})"


def change_text(value: object, pct: object, kind: str) -> str | None:
    """``+12 (+4.8%)``, ``-2.1 pts`` for shares; None when there is no change figure."""
    parts = []
    if isinstance(value, int | float) and math.isfinite(value):
        if kind == "pct":
            parts.append(f"{100 * value:+.1f} pts")
        elif kind == "money":
            parts.append(f"{value:+,.2f}")
        else:
            parts.append(f"{value:+,.0f}")
    if isinstance(pct, int | float) and math.isfinite(pct) and kind != "pct":
        parts.append(f"({pct:+.1f}%)" if parts else f"{pct:+.1f}%")
    return " ".join(parts) or None


def _change_delta(name: str, kind: str, latest: Mapping[str, object], *, as_of: date) -> str:
    """The change line of a KPI card, saying against which snapshot and over how many days:
    a change over a week is not a daily change."""
    previous = latest.get("previous_as_of")
    row_as_of = latest.get("as_of")
    as_of = row_as_of if isinstance(row_as_of, date) else as_of
    label = _esc(comparison_label(previous, as_of))
    text = change_text(latest.get(f"{name}_change"), latest.get(f"{name}_change_pct"), kind)
    if text is None:
        if isinstance(previous, date):
            return f'<div class="d flat">no change figure {label}</div>'
        return '<div class="d flat">no previous snapshot</div>'
    change = latest.get(f"{name}_change")
    if not isinstance(change, int | float) or not math.isfinite(change):
        change = latest.get(f"{name}_change_pct")
    cls = "flat"
    if isinstance(change, int | float):
        cls = "up" if change > 0 else "down" if change < 0 else "flat"
    days = (as_of - previous).days if isinstance(previous, date) else None
    span = f' data-days="{days}"' if days is not None else ""
    return f'<div class="d {cls}"{span}>{_esc(text)} {label}</div>'


def _kpi_cards(
    latest: dict[str, object] | None, *, as_of: date, horizon: str, currency: str
) -> str:
    if latest is None:
        return '<p class="sub">No kpis snapshot on or before this date.</p>'
    window = _window(latest)
    definitions = kpi_definitions(as_of=as_of, window=window, horizon=horizon)
    cards = []
    for name in _KPI_CARDS:
        if name not in latest:
            continue
        kind = _kind(name)
        label = KPI_LABELS[name]
        if name in {"retention_rate", "churn_rate"} and window != "window":
            label += f" ({window})"
        delta = _change_delta(name, kind, latest, as_of=as_of)
        cards.append(
            f'<div class="card" data-kpi="{_esc(name)}" data-kind="{kind}">'
            f'<div class="k">{_esc(label)}</div>'
            f'<div class="v">{_card_value(name, kind, latest, currency)}</div>'
            f'<div class="def">{_esc(definitions[name])}</div>{delta}</div>'
        )
    last = f"the last {window}" if window != "window" else "the activity window"
    note = (
        '<div class="note" id="kpi-notes"><p><b>Churn rate and "likely still customers" answer '
        f"different questions.</b> The churn rate is observed per period: of the customers who "
        f"bought in the {window} before {last}, the share who did not buy in {last}; someone who "
        "buys twice a year is counted as churned in half the periods. The model judges each "
        "customer by their own rhythm: a quiet customer whose gaps were always long is still "
        "likely a customer. A high churn rate next to many likely-still customers means many "
        f"customers buy less often than every {window}, not that they are gone. Definitions: "
        "docs/metrics.md.</p></div>"
    )
    return f'<div class="cards" id="table-kpis">{"".join(cards)}</div>{note}'


def _clv_comparison(latest: Mapping[str, object] | None, *, horizon: str, currency: str) -> str:
    """Model CLV and the formula CLVs side by side, with what each covers and why they differ."""
    unit = money_unit(currency)
    row = latest or {}
    churn = row.get("churn_rate")
    lifespan = row.get("lifespan_days")
    window = _window(row)
    retention = row.get("retention_rate")
    retention_text = _fmt(retention, "pct") if isinstance(retention, int | float) else "unknown"
    life = f"{lifespan:,.0f} days" if isinstance(lifespan, int | float) else "window ÷ churn rate"
    measures = (
        ("avg_historic_clv", "past", "Net revenue to date × gross margin."),
        (
            "avg_predicted_clv",
            f"next {horizon}",
            "Per customer: expected purchases in the horizon (BG/NBD or Pareto/NBD) × expected "
            "spend per purchase (Gamma-Gamma) × gross margin, discounted.",
        ),
        ("median_predicted_clv", f"next {horizon}", "The middle customer of the model CLV."),
        (
            "avg_formula_clv",
            f"next {horizon}",
            f"Per customer: net revenue of the last {window} × gross margin, carried forward "
            f"{window} at a time at the period retention ({retention_text}), discounted; 0 for "
            f"a customer who did not buy in the last {window}.",
        ),
        (
            "formula_clv_aov",
            f"whole lifetime ({life})",
            f"AOV × orders per active customer per {window} × (1 ÷ churn rate); no margin, "
            "not discounted.",
        ),
        (
            "formula_clv_arpu",
            f"whole lifetime ({life})",
            "ARPU × gross margin ÷ churn rate; not discounted.",
        ),
    )
    rows = [
        [_esc(KPI_LABELS[column]), _esc(covers), _esc(formula), _fmt(row.get(column), "money")]
        for column, covers, formula in measures
        if column in row
    ]
    table = _table(
        "table-clv-comparison",
        ["measure", "covers", "how it is computed", f"per customer ({unit})"],
        rows,
        left=3,
    )
    churn_text = f"{_fmt(churn, 'pct')} per {window}" if isinstance(churn, int | float) else "it"
    why = (
        '<div class="note" id="clv-why"><p><b>Why they differ.</b> Model CLV and the per-customer '
        f"formula CLV cover the same next {horizon}, margin and discounting. The model values each "
        "customer from their own purchase history: a customer quiet this period can still be "
        "worth a lot, one the model thinks has left almost nothing. The formula carries each "
        f"active customer's revenue of the last {window} forward at the average period retention, "
        f"so it counts everyone who did not buy in the last {window} as lost and assumes this "
        "period's revenue repeats; it is far from the model when purchases are lumpy or many "
        f"customers buy less often than every {window}. The two seed formulae value a whole "
        f"expected lifetime (1 ÷ churn rate = {life}, churn {churn_text}), undiscounted, so they "
        f"exceed the {horizon} figures whenever that lifetime is longer. Use model CLV to rank and "
        "act on customers; use the formulae as a population cross-check. Definitions: "
        "docs/metrics.md.</p></div>"
    )
    return table + why


def _missing_inputs(
    unit_economics: pl.DataFrame | None,
    inputs: UnitEconomicsInputs | None,
    *,
    as_of: date,
) -> list[str]:
    """HTML list items: which unit-economics input is missing or partial, and how to add it."""
    rerun = f"then rebuild the day: <code>clv run --date {as_of.isoformat()}</code>"
    notes: list[str] = []
    empty = unit_economics is None or unit_economics.height == 0
    customers_at = _esc(inputs.customers_folder if inputs else "$CLV_HOME/landing/customers/")
    spend_at = _esc(inputs.spend_folder if inputs else "$CLV_HOME/landing/acquisition_spend/")
    if empty:
        no_customers = inputs is None or not inputs.has_customers
        no_spend = inputs is None or not inputs.has_spend
        if no_customers:
            notes.append(
                f"<b>Missing: the customers file</b> (who was acquired when, through which "
                f"channel). Add a CSV or parquet file with columns <code>customer_id, "
                f"acquisition_channel, acquired_at</code> to <code>{customers_at}</code>, {rerun}."
            )
        if no_spend:
            notes.append(
                f"<b>Missing: the acquisition spend file</b> (marketing spend per month and "
                f"channel, for CAC). Add a CSV or parquet file with columns <code>month, channel, "
                f"spend</code> (month as YYYY-MM) to <code>{spend_at}</code>, {rerun}."
            )
        if not notes:
            notes.append(
                f"Both inputs are present, but the table is empty: either they were added after "
                f"this day was built ({rerun}) or no customer in <code>{customers_at}</code> was "
                f"acquired on or before {as_of.isoformat()} (check <code>acquired_at</code>)."
            )
    elif unit_economics is not None:
        per = (
            unit_economics.filter(pl.col("channel") != "all")
            .group_by("channel")
            .agg(pl.col("customers").sum(), pl.col("spend").sum())
            .sort("channel")
        )
        unpaid = per.filter((pl.col("customers") > 0) & (pl.col("spend") <= 0))["channel"]
        lonely = per.filter((pl.col("customers") <= 0) & (pl.col("spend") > 0))["channel"]
        if unpaid.len():
            notes.append(
                f"<b>Partial: no spend for channel(s) {_esc(', '.join(unpaid.to_list()))}</b>: "
                "their CAC is 0 (treated as organic) and CLV:CAC is empty. If they are paid "
                f"channels, add their monthly spend to <code>{spend_at}</code>, {rerun}."
            )
        if lonely.len():
            notes.append(
                f"<b>Partial: spend for channel(s) {_esc(', '.join(lonely.to_list()))} but no "
                "customer acquired through them</b>: check that the channel names in "
                f"<code>{spend_at}</code> and <code>{customers_at}</code> match."
            )
    if inputs is not None and inputs.gross_margin >= 1.0:
        notes.append(
            "<b>Gross margin is 100%</b> (setting <code>models.gross_margin</code>, env "
            f"<code>{GROSS_MARGIN_ENV}</code>): CLV counts revenue, not profit, so CLV:CAC is "
            f"overstated. Set your margin, e.g. <code>{GROSS_MARGIN_ENV}=0.4</code> or "
            f"<code>clv init --set models.gross_margin=0.4</code>, {rerun}."
        )
    if inputs is not None and inputs.cost_to_serve_per_order <= 0:
        notes.append(
            "<b>Cost to serve is 0</b> (setting <code>segments.cost_to_serve_per_order</code>, "
            f"env <code>{COST_TO_SERVE_ENV}</code>): fulfilment costs per order are not "
            "subtracted from CLV."
        )
    return notes


def _unit_economics(
    unit_economics: pl.DataFrame | None,
    inputs: UnitEconomicsInputs | None,
    *,
    as_of: date,
    currency: str,
) -> str:
    """Per channel, all cohorts together: CAC, net CLV, CLV - CAC, CLV:CAC; plus what is missing."""
    notes = _missing_inputs(unit_economics, inputs, as_of=as_of)
    status = (
        f'<ul class="missing" id="unit-economics-status">'
        f"{''.join(f'<li>{n}</li>' for n in notes)}</ul>"
        if notes
        else '<p class="sub" id="unit-economics-status">All inputs present.</p>'
    )
    if unit_economics is None or unit_economics.height == 0:
        return status
    benchmark = inputs.benchmark_ratio if inputs else 3.0
    per = (
        unit_economics.group_by("channel")
        .agg(
            pl.col("customers").sum(),
            pl.col("spend").sum(),
            (pl.col("avg_net_clv") * pl.col("customers")).sum().alias("_net"),
            pl.col("customers").filter(pl.col("avg_net_clv").is_not_null()).sum().alias("_n"),
        )
        .with_columns(
            pl.when(pl.col("customers") > 0)
            .then(pl.col("spend") / pl.col("customers"))
            .alias("cac"),
            pl.when(pl.col("_n") > 0).then(pl.col("_net") / pl.col("_n")).alias("net"),
        )
        .with_columns(
            pl.when(pl.col("cac") > 0).then(pl.col("net") / pl.col("cac")).alias("ratio"),
        )
        .sort(pl.col("channel") != "all", "channel")
    )
    rows = []
    for r in per.iter_rows(named=True):
        ratio = r["ratio"]
        below = isinstance(ratio, float) and ratio < benchmark
        flag = "–" if ratio is None else ("below" if below else "ok")
        rows.append(
            [
                _esc(r["channel"]),
                _fmt(r["customers"], "int"),
                _fmt(r["spend"], "money"),
                _fmt(r["cac"], "money"),
                _fmt(r["net"], "money"),
                _fmt(
                    None if r["net"] is None or r["cac"] is None else r["net"] - r["cac"], "money"
                ),
                "–" if ratio is None else f"{ratio:.1f} : 1",
                f'<td class="{"flag-bad" if below else "flag-ok" if ratio else ""}">{flag}</td>',
            ]
        )
    unit = money_unit(currency)
    header = [
        "channel",
        "customers acquired",
        f"spend ({unit})",
        f"CAC ({unit})",
        f"net CLV ({unit})",
        f"CLV − CAC ({unit})",
        "CLV : CAC",
        f"vs {benchmark:g} : 1",
    ]
    caption = (
        '<p class="sub">All acquisition cohorts up to this date, per channel (<code>all</code> = '
        "every channel). CAC = acquisition spend ÷ customers acquired; net CLV = CLV (to date + "
        "model forecast) after gross margin and cost to serve. Per cohort month: table "
        "<code>unit_economics</code>.</p>"
    )
    return status + caption + _table("table-unit-economics", header, rows)


def _lift_cell(metric: str, lift: object) -> str:
    if not isinstance(lift, int | float) or not math.isfinite(lift):
        return '<td class="">–</td>'
    cls = "better" if lift > 0 else "worse" if lift < 0 else ""
    # Error metrics: relative change of the error (negative = smaller error than the baseline).
    text = f"{-100 * lift:+.1f}% error" if metric in LOWER_IS_BETTER else f"{lift:+.3f}"
    return f'<td class="{cls}">{_esc(text)}</td>'


#: Backtest metrics in currency units (their rows name the currency).
_MONEY_METRICS = frozenset(
    {"value_mae", "value_rmse", "value_predicted_total", "value_actual_total"}
)

#: What each backtest metric measures, in plain words (definitions: docs/models.md).
_METRIC_MEANING = {
    "purchases_mae": "average miss in holdout purchases per customer (lower is better)",
    "purchases_rmse": "typical miss in purchases, big misses weigh more (lower is better)",
    "purchases_predicted_total": "holdout purchases predicted, all customers",
    "purchases_actual_total": "holdout purchases made, all customers",
    "purchases_total_error_pct": "predicted vs made in total, % (closer to 0 is better)",
    "purchases_spearman": "rank agreement of predicted and made purchases (higher is better)",
    "purchases_auc": "chance a customer who bought again is ranked above one who did not; "
    "0.5 = coin flip (higher is better)",
    "value_mae": "average miss in holdout revenue per customer (lower is better)",
    "value_rmse": "typical miss in revenue, big misses weigh more (lower is better)",
    "value_predicted_total": "holdout revenue predicted, all customers",
    "value_actual_total": "holdout revenue, all customers",
    "value_gini": "how well predicted value finds the revenue; 1 = perfect, 0 = random "
    "(higher is better)",
    "p_alive_auc": "how often 1 − P(alive) puts a customer who did not buy above one who did; "
    "not a churn accuracy (see below)",
}


def _backtest_comment(backtest: pl.DataFrame, lift: pl.DataFrame, models: list[str]) -> str:
    """What the backtest numbers mean, in plain words, from the numbers themselves."""

    def cell(model: str, metric: str) -> dict[str, object] | None:
        hit = lift.filter((pl.col("model") == model) & (pl.col("metric") == metric))
        return hit.row(0, named=True) if hit.height else None

    lines = []
    for m in models:
        parts = []
        mae = cell(m, "purchases_mae")
        if mae and isinstance(mae["value"], float) and isinstance(mae["lift"], float):
            side = "smaller" if mae["lift"] > 0 else "larger"
            parts.append(
                f"{m} misses holdout purchases by {mae['value']:.2f} per customer on average, "
                f"{abs(mae['lift']):.1%} {side} than the best baseline ({mae['best_baseline']}, "
                f"{mae['baseline']:.2f})."
            )
        auc = cell(m, "purchases_auc")
        if auc and isinstance(auc["value"], float) and isinstance(auc["baseline"], float):
            parts.append(
                f"Of a customer who bought again in the holdout and one who did not, it ranks "
                f"the buyer higher {auc['value']:.0%} of the time (purchases_auc "
                f"{auc['value']:.3f}; a coin flip is 0.500, {auc['best_baseline']} "
                f"{auc['baseline']:.3f})."
            )
        if parts:
            lines.append(f"<p>{_esc(' '.join(parts))}</p>")
    if BASELINE_ZERO in backtest["model"].to_list():
        lines.append(
            "<p>baseline_zero predicts that nobody buys: when most customers make no purchase "
            "in the holdout its average miss is small (it equals the mean holdout purchases per "
            "customer), so even the right model beats it on MAE by a few percent, or not at "
            "all. RMSE rewards predicting the expected number and separates the two more "
            "clearly.</p>"
        )
    low = [
        m
        for m in models
        if (row := cell(m, "p_alive_auc"))
        and isinstance(row["value"], float)
        and row["value"] < 0.5
    ]
    if low:
        lines.append(
            f"<p>p_alive_auc below 0.5 ({_esc(', '.join(low))}) does not mean the model ranks "
            "customers worse than chance. It scores 1 − P(alive) against “no purchase in the "
            "holdout”, but BG/NBD gives every customer without a repeat purchase P(alive) = 1 "
            "although one-time buyers are the least likely to buy again, and a customer "
            "without a holdout purchase may just buy slowly. Judge the ranking by "
            "purchases_auc.</p>"
        )
    return f'<div class="note" id="backtest-comment">{"".join(lines)}</div>' if lines else ""


def _backtest_table(backtest: pl.DataFrame | None, *, currency: str = "") -> str:
    if backtest is None or backtest.height == 0:
        return '<p class="sub">No backtest available.</p>'
    lift = backtest_lift(backtest)
    present = dict.fromkeys(backtest["model"].to_list())
    baselines = [b for b in (*BACKTEST_BASELINES, LEGACY_BASELINE) if b in present]
    models = [m for m in present if m not in baselines]
    header = ["metric", "what it measures", *baselines]
    for m in models:
        header += [m, f"{m} vs best baseline"]
    values = {
        (r["model"], r["metric"]): r["value"]
        for r in backtest.select("model", "metric", "value").iter_rows(named=True)
    }
    rows = []
    for metric in BACKTEST_METRICS:
        name = f"{metric} ({money_unit(currency)})" if metric in _MONEY_METRICS else metric
        row = [_esc(name), _esc(_METRIC_MEANING.get(metric, ""))]
        row += [_fmt(values.get((b, metric))) for b in baselines]
        for m in models:
            hit = lift.filter((pl.col("model") == m) & (pl.col("metric") == metric))
            value = hit["value"][0] if hit.height else None
            row += [_fmt(value), _lift_cell(metric, hit["lift"][0] if hit.height else None)]
        rows.append(row)
    first = backtest.row(0, named=True)
    caption = (
        f'<p class="sub">Calibration up to {_esc(first["calibration_end"])}, holdout '
        f"{_esc(first['holdout_days'])} days to {_esc(first['as_of'])}, "
        f"{_fmt(first['n_customers'], 'int')} calibration customers. Baselines: "
        "<code>baseline_rate</code> carries each customer's repeat purchase rate forward, "
        "<code>baseline_zero</code> predicts no purchase. Each model is compared with the "
        "better baseline on every metric: error metrics as the change in error (negative = "
        "model better), ranking metrics (Spearman, Gini, AUC) in points (positive = model "
        "better). Definitions: docs/models.md.</p>"
    )
    return (
        caption
        + _table("table-backtest", header, rows, left=2)
        + _backtest_comment(backtest, lift, models)
    )


def _diagnostics_panel(diagnostics: pl.DataFrame | None, basis: ChurnBasis | None) -> str:
    """The model checks that did not pass, in plain words, with the selected model and why."""
    if diagnostics is None or diagnostics.height == 0:
        return ""
    if "fit_group" not in diagnostics.columns:  # written before per-group fits existed
        diagnostics = diagnostics.with_columns(pl.lit(None, pl.String).alias("fit_group"))
    diagnostics = diagnostics.with_columns(pl.col("fit_group").fill_null("all"))
    everyone = pl.col("fit_group") == "all"
    selected = diagnostics.filter(everyone & (pl.col("check") == "selected_model"))[
        "message"
    ].to_list()
    # a group's own model checks matter only when its fit values its customers (group_fit ok
    # and a fit of its own); a pooled group's one group_fit row says why, the rest is in the table
    own_fits = diagnostics.filter(pl.col("check") == "group_fit").filter(pl.col("status") == "ok")[
        "fit_group"
    ]
    shown = (
        everyone | (pl.col("check") == "group_fit") | pl.col("fit_group").is_in(own_fits.to_list())
    )
    flagged = diagnostics.filter(
        shown & (pl.col("status") != "ok") & (pl.col("check") != "selected_model")
    ).sort(
        pl.col("status").replace_strict({"fail": 0, "warn": 1}, default=2),
        ~everyone,
        "fit_group",
        "model",
        "check",
    )

    def subject(r: dict[str, Any]) -> str:
        what = r["model"] if r["model"] != "all" else "data"
        if r["fit_group"] == "all":
            return what
        return (
            f"group {r['fit_group']}"
            if r["check"] == "group_fit"
            else f"{what} (group {r['fit_group']})"
        )

    items = [
        f'<li class="diag-{_esc(r["status"])}"><b>{_esc(r["status"].upper())}</b> '
        f"{_esc(subject(r))}: {_esc(r['message'])}</li>"
        for r in flagged.iter_rows(named=True)
    ]
    head = (
        f"<p><b>Selected model:</b> {_esc(selected[0])}</p>"
        if selected
        else "<p><b>No purchase model was selected.</b></p>"
    )
    churn = f"<p><b>Churn:</b> {_esc(basis.reason)}.</p>" if basis is not None else ""
    body = (
        f'<ul class="messages">{"".join(items)}</ul>'
        if items
        else "<p>Every model check passed.</p>"
    )
    return f'<section id="diagnostics"><h2>Model checks</h2>{head}{churn}{body}</section>'


def _model_summary(summary: ModelSummary | None, *, currency: str, revenue: bool = False) -> str:
    """What the selected model says about the customer base, and a new customer's CLV."""
    if summary is None:
        return ""
    lines = "".join(f"<li>{_esc(line.text)}</li>" for line in summary.lines)
    if summary.new_customer_clv is not None:
        lines += (
            f"<li>A customer acquired today is expected to bring "
            f"<b>{summary.new_customer_clv:,.2f} {_esc(money_unit(currency))}</b> of "
            f"{'revenue (no gross margin set)' if revenue else 'margin'} from "
            "repeat purchases over the horizon, discounted (new-customer CLV: compare it with "
            "what it costs to acquire one).</li>"
        )
    return (
        f'<section id="model-summary"><h2>What the model ({_esc(summary.model)}) says</h2>'
        f'<ul>{lines}</ul><p class="sub">Formulas: docs/models.md, '
        "“What the fit says, in plain words”.</p></section>"
    )


def _group_fits(
    groups: Mapping[str, ModelSummary],
    clv: pl.DataFrame | None,
    diagnostics: pl.DataFrame | None,
    *,
    currency: str,
) -> str:
    """With ``CLV_FIT_BY``: each group, the fit that values it, and what its own fit says."""
    if clv is None or "fit_group" not in clv.columns or diagnostics is None:
        return ""
    if "fit_group" not in diagnostics.columns:
        return ""
    checks = diagnostics.filter(pl.col("check") == "group_fit")
    if checks.is_empty():
        return ""
    unit = money_unit(currency)
    rows = []
    # groups pooled by design (too few repeat customers): one line, not one row each
    small = checks.filter((pl.col("status") == "ok") & ~pl.col("fit_group").is_in(list(groups)))
    checks = checks.join(small.select("fit_group"), on="fit_group", how="anti")
    for r in checks.sort("fit_group").iter_rows(named=True):
        group = r["fit_group"]
        own = groups.get(group)
        valued = clv.filter(pl.col("fit_group") == group) if own is not None else None
        lines = {line.metric: line for line in own.lines} if own is not None else {}
        gap = lines.get("typical_gap_days")
        life = lines.get("median_lifetime_days")
        rows.append(
            [
                _esc(group),
                _fmt(r["value"], "int"),
                f'<td class="l">{_esc(own.model if own else "pooled: fit over all customers")}</td>',
                _fmt(gap.value if gap else None),
                _fmt(life.value if life else None),
                _fmt(own.new_customer_clv if own else None),
                _fmt(
                    valued["predicted_clv"].mean() if valued is not None and valued.height else None
                ),
                f'<td class="l">{_esc(r["message"])}</td>',
            ]
        )
    header = [
        "group",
        "repeat customers",
        "fit",
        "typical gap (days)",
        "median lifetime (days)",
        f"new-customer CLV ({unit})",
        f"avg predicted CLV ({unit})",
        "why",
    ]
    pooled = ""
    if small.height:
        names = sorted(small["fit_group"].to_list())
        shown = ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")
        threshold = small["threshold"].max()
        pooled = (
            f'<p class="sub" id="group-fits-pooled">{len(names)} group(s) with fewer than '
            f"{_fmt(threshold, 'int')} repeat customers are valued with the fit over all "
            f"customers: {_esc(shown)}.</p>"
        )
    return (
        '<section id="group-fits"><h2>Fits per group</h2><p class="sub">'
        "<code>CLV_FIT_BY</code>: each group with enough repeat customers has a model fit of "
        "its own (its customers' predictions come from it when that fit passes its "
        "diagnostics); the others are valued with the fit over all customers. Figures from "
        "each group's own fit; docs/models.md.</p>"
        + (_table("table-group-fits", header, rows, left=1) if rows else "")
        + pooled
        + "</section>"
    )


def _params_table(model_params: pl.DataFrame | None) -> str:
    if model_params is None or model_params.height == 0:
        return _table("table-model-params", ["model"], [])
    if "fit_group" not in model_params.columns:  # written before per-group fits existed
        model_params = model_params.with_columns(pl.lit(None, pl.String).alias("fit_group"))
    model_params = model_params.with_columns(pl.col("fit_group").fill_null("all"))
    grouped = model_params["fit_group"].n_unique() > 1
    fits = model_params.group_by("fit_group", "model", maintain_order=True).agg(
        pl.col("param"),
        pl.col("value"),
        pl.col("log_likelihood").first(),
        pl.col("bic").first(),
        pl.col("n_customers").first(),
        pl.col("n_repeat_customers").first(),
        pl.col("converged").first(),
        pl.col("selected").first(),
    )
    rows = []
    for r in fits.iter_rows(named=True):
        params = ", ".join(f"{p} = {_fmt(v)}" for p, v in zip(r["param"], r["value"], strict=True))
        conv = r["converged"]
        rows.append(
            ([_esc(r["fit_group"])] if grouped else [])
            + [
                _esc(r["model"]),
                f'<td class="l">{_esc(params)}</td>',
                _fmt(r["log_likelihood"]),
                _fmt(r["bic"]),
                _fmt(r["n_customers"], "int"),
                _fmt(r["n_repeat_customers"], "int"),
                f'<td class="{"flag-ok" if conv else "flag-bad"}">{_fmt(conv)}</td>',
                _fmt(r["selected"]),
            ]
        )
    header = ["fit"] if grouped else []
    header += ["model", "parameters", "log-lik", "BIC", "customers", "repeat"]
    header += ["converged", "selected"]
    return _table("table-model-params", header, rows, left=3 if grouped else 2)


def _flags_table(clv: pl.DataFrame | None, backtest: pl.DataFrame | None) -> str:
    rows: list[list[str]] = []
    if clv is not None and "data_sufficient" in clv.columns and clv.height:
        ok = bool(clv["data_sufficient"].any())
        model = clv["model"].drop_nulls()
        what = f"model {model[0]}" if ok and model.len() else "no model (historic CLV only)"
        rows.append(
            [
                "customer_clv",
                f'<td class="{"flag-ok" if ok else "flag-bad"}">{_fmt(ok)}</td>',
                f'<td class="l">{_esc(what)}</td>',
            ]
        )
    if backtest is not None and backtest.height:
        per = backtest.group_by("model", maintain_order=True).agg(
            pl.col("data_sufficient").first(), pl.col("note").drop_nulls().first()
        )
        for r in per.iter_rows(named=True):
            ok = bool(r["data_sufficient"])
            rows.append(
                [
                    _esc(f"backtest: {r['model']}"),
                    f'<td class="{"flag-ok" if ok else "flag-bad"}">{_fmt(ok)}</td>',
                    f'<td class="l">{_esc(r["note"] or "")}</td>',
                ]
            )
    return _table("table-flags", ["component", "data sufficient", "note"], rows)


def _plotly_script(self_contained: bool) -> str:
    """plotly.js inline, or the shared copy by relative path (with a clear error if missing)."""
    if self_contained:
        return f'<script type="text/javascript">{get_plotlyjs()}</script>'
    missing = (
        f"plotly.js did not load from {PLOTLY_HREF} (warehouse/reports/_assets/): open the "
        "report where it was published, or write a standalone copy with "
        "`clv report --self-contained`"
    )
    return (
        f'<script type="text/javascript" src="{PLOTLY_HREF}" charset="utf-8"></script>\n'
        f"<script>if (typeof Plotly === 'undefined') {{ window.__reportErrors.push("
        f"{json.dumps(missing)}); }}</script>"
    )


def render_report(
    *,
    as_of: date,
    kpis_history: pl.DataFrame | None,
    clv: pl.DataFrame | None,
    segments: pl.DataFrame | None,
    churn: pl.DataFrame | None,
    cohorts: pl.DataFrame | None,
    model_params: pl.DataFrame | None,
    backtest: pl.DataFrame | None,
    deciles: pl.DataFrame | None,
    calibration: pl.DataFrame | None,
    unit_economics: pl.DataFrame | None = None,
    unit_inputs: UnitEconomicsInputs | None = None,
    currency: str = "",
    messages: Sequence[str] = (),
    title: str = "Customer lifetime value report",
    self_contained: bool = True,
    diagnostics: pl.DataFrame | None = None,
    summary: ModelSummary | None = None,
    churn_basis: ChurnBasis | None = None,
    group_summaries: Mapping[str, ModelSummary] | None = None,
) -> str:
    """Render the report page for ``as_of`` from published tables.

    Parameters
    ----------
    as_of
        Snapshot date shown in the header; KPI cards use the latest kpis row on or before it.
    kpis_history
        ``kpis`` rows over many ``as_of`` (the trend); may be one snapshot. Rows after ``as_of``
        are left out; the trend's axes end at the last snapshot shown.
    clv, segments, churn, cohorts, model_params
        ``customer_clv``, ``customer_segments``, ``customer_churn``, ``cohorts``,
        ``model_params`` of ``as_of``.
    backtest, deciles, calibration
        ``model_backtest``, ``backtest_deciles``, ``backtest_calibration`` frames
        (:func:`clv_pipeline.report.backtest.run_backtest`).
    unit_economics
        ``unit_economics`` of ``as_of`` (empty without marketing inputs).
    unit_inputs
        Which unit-economics inputs and settings the data home has; the page then names the
        missing ones exactly (folder, columns, setting). None: generic hints.
    currency
        ISO-4217 code (e.g. ``EUR``) written on every money card, axis, hover and column;
        ``""``: amounts are labelled "currency units".
    messages
        Notes shown at the top (data sufficiency, fit warnings).
    title
        Page title.
    diagnostics, summary, churn_basis
        ``model_diagnostics`` of ``as_of`` (its warnings and failures open the page, with the
        selected model and why), the selected model in plain words
        (:func:`clv_pipeline.valuation.describe_fit`) and what churn is scored from.
    group_summaries
        With ``CLV_FIT_BY``: each group's own fit in plain words (a "Fits per group" table).
    self_contained
        True: plotly.js inline, one file that opens anywhere (~4.9 MB). False: the page loads
        the shared :data:`PLOTLY_HREF`; publish it with :func:`publish_report`, which stores
        the asset under ``warehouse/reports/_assets/``.

    Any frame may be ``None`` or empty: its charts then say "no data".

    Returns
    -------
    str
        A complete HTML document; no network access needed. Identical inputs give identical
        bytes.
    """
    latest = _latest_kpis(kpis_history, as_of)
    horizon = _horizon(clv)
    figures: dict[str, Callable[[], go.Figure]] = {
        "chart-kpi-trend": lambda: charts.kpi_trend(kpis_history, currency=currency, as_of=as_of),
        "chart-clv-distribution": lambda: charts.clv_distribution(clv, currency=currency),
        "chart-clv-comparison": lambda: charts.clv_comparison(latest, currency=currency),
        "chart-value-tiers": lambda: charts.value_tiers(segments, currency=currency),
        "chart-segments": lambda: charts.segment_sizes(segments, currency=currency),
        "chart-churn-risk": lambda: charts.churn_risk(churn, currency=currency),
        "chart-cohort-retention": lambda: charts.cohort_heatmap(cohorts),
        "chart-calibration": lambda: charts.calibration_vs_holdout(calibration),
        "chart-deciles": lambda: charts.decile_lift(deciles),
    }
    div = {cid: _chart_div(cid, build()) for cid, build in figures.items()}
    notes = "".join(f"<li>{_esc(m)}</li>" for m in messages)
    money = (
        f"Amounts in <b>{_esc(currency)}</b>."
        if currency
        else f"Amounts in the transactions' currency units (set <code>{CURRENCY_ENV}</code>, "
        "e.g. EUR, to name it)."
    )
    loading = (
        "Self-contained page: no network access needed."
        if self_contained
        else f"No network access needed: plotly.js is loaded from <code>{PLOTLY_HREF}</code>; "
        "<code>clv report --self-contained</code> writes a single file to mail."
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta http-equiv="Content-Security-Policy" '
        f'content="{CSP if self_contained else CSP_SHARED}">',
        f"<title>{_esc(title)} — {as_of.isoformat()}</title>",
        f"<style>{_CSS}</style>",
        f"<script>{_HEAD_JS}</script>",
        _plotly_script(self_contained),
        "</head>",
        f'<body data-as-of="{as_of.isoformat()}" data-currency="{_esc(currency)}">',
        f"<h1>{_esc(title)}</h1>",
        f'<p class="sub">Snapshot as of <b>{as_of.isoformat()}</b>. {money} {loading}</p>',
        f'<p class="sub" id="clv-units">Every CLV figure: {_esc(clv_units(clv, currency))}.'
        f"{_margin_warning(clv)}</p>"
        if clv is not None
        else "",
        '<pre id="report-errors"></pre>',
        f'<ul class="messages" id="report-messages">{notes}</ul>' if notes else "",
        _diagnostics_panel(diagnostics, churn_basis),
        _model_summary(summary, currency=currency, revenue=_revenue_only(clv)),
        _group_fits(group_summaries or {}, clv, diagnostics, currency=currency),
        '<h2 id="kpis">KPIs</h2>',
        _kpi_cards(latest, as_of=as_of, horizon=horizon, currency=currency),
        div["chart-kpi-trend"],
        '<h2 id="value">Customer value</h2>',
        div["chart-clv-distribution"],
        '<div class="grid2">',
        div["chart-value-tiers"],
        div["chart-churn-risk"],
        "</div>",
        div["chart-segments"],
        '<h2 id="clv-comparison">Model CLV vs formula CLV</h2>',
        div["chart-clv-comparison"],
        _clv_comparison(latest, horizon=horizon, currency=currency),
        '<h2 id="unit-economics">Unit economics (CAC)</h2>',
        _unit_economics(unit_economics, unit_inputs, as_of=as_of, currency=currency),
        '<h2 id="cohorts">Cohorts</h2>',
        div["chart-cohort-retention"],
        '<h2 id="backtest">Model backtest</h2>',
        _backtest_table(backtest, currency=currency),
        '<div class="grid2">',
        div["chart-calibration"],
        div["chart-deciles"],
        "</div>",
        '<h2 id="models">Model parameters and data sufficiency</h2>',
        _params_table(model_params),
        _flags_table(clv, backtest),
        "<footer>Metric definitions: docs/report.md (clv_pipeline).</footer>",
        f"<script>{_TAIL_JS}</script>",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------
def _write_atomic(data: bytes, target: Path) -> Path:
    """Write ``data`` to ``target`` atomically (temp file in the same folder + ``os.replace``)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the report is for people and BI tools
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_report(html: str, path: str | os.PathLike[str]) -> Path:
    """Write ``html`` to ``path`` atomically (temp file in the same folder + ``os.replace``)."""
    return _write_atomic(html.encode("utf-8"), Path(path))


def plotly_asset_path(warehouse: str | os.PathLike[str]) -> Path:
    """``warehouse/reports/_assets/plotly-<version>.min.js``."""
    return Path(warehouse) / "reports" / "_assets" / PLOTLY_ASSET


def write_plotly_asset(warehouse: str | os.PathLike[str]) -> Path:
    """Store plotly.js for the daily reports, atomically, only when missing or different."""
    target = plotly_asset_path(warehouse)
    data = get_plotlyjs().encode("utf-8")
    if target.is_file() and target.stat().st_size == len(data) and target.read_bytes() == data:
        return target
    return _write_atomic(data, target)


def report_paths(warehouse: str | os.PathLike[str], as_of: date) -> tuple[Path, Path]:
    """``(warehouse/reports/as_of=D/report.html, warehouse/reports/latest/report.html)``."""
    root = Path(warehouse) / "reports"
    return root / f"as_of={as_of.isoformat()}" / "report.html", root / "latest" / "report.html"


def self_contained_path(warehouse: str | os.PathLike[str], as_of: date) -> Path:
    """``warehouse/reports/as_of=D/report-self-contained.html`` (``clv report --self-contained``)."""
    return report_paths(warehouse, as_of)[0].with_name("report-self-contained.html")


def publish_report(
    html: str, warehouse: str | os.PathLike[str], as_of: date, *, update_latest: bool = True
) -> tuple[Path, Path | None]:
    """Write the dated report and (by default) the ``latest`` copy, each atomically.

    The shared plotly.js (:func:`write_plotly_asset`) is stored first, so a page that loads it
    never appears without it.
    """
    write_plotly_asset(warehouse)
    dated, latest = report_paths(warehouse, as_of)
    write_report(html, dated)
    if not update_latest:
        return dated, None
    return dated, write_report(html, latest)
