"""A self-contained HTML report: inline CSS, inline plotly.js, no network access needed.

:func:`render_report` turns published tables (polars frames) into one HTML string;
:func:`write_report` / :func:`publish_report` write it atomically to
``warehouse/reports/as_of=D/report.html`` and ``warehouse/reports/latest/report.html``.

Every chart lives in ``<div class="chart" id="chart-...">`` (ids in :data:`CHART_IDS`). The
page's own script records JavaScript errors in ``<pre id="report-errors">``, sets
``data-rendered="true"`` on each chart div once plotly has drawn it and finally sets
``data-report-status`` on ``<body>`` to ``ok`` or ``errors`` (used by the browser test).
"""

from __future__ import annotations

import html as _html
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
import polars as pl
from plotly.offline import get_plotlyjs

from clv_pipeline.report import charts
from clv_pipeline.report.backtest import BASELINE, LOWER_IS_BETTER, backtest_lift
from clv_pipeline.schema import BACKTEST_METRICS

#: Stable element ids of the charts, in page order, with their section titles.
CHART_IDS: dict[str, str] = {
    "chart-kpi-trend": "KPI trend",
    "chart-clv-distribution": "CLV distribution",
    "chart-value-tiers": "Value tiers",
    "chart-segments": "Segments",
    "chart-churn-risk": "Churn risk",
    "chart-cohort-retention": "Cohort retention",
    "chart-calibration": "Calibration vs holdout",
    "chart-deciles": "Prediction deciles",
}

#: Content-Security-Policy of the page: nothing may be loaded from anywhere (self-contained).
CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:; connect-src 'none'"
)

#: Ids of the HTML tables.
TABLE_IDS = ("table-kpis", "table-backtest", "table-model-params", "table-flags")

_KPI_CARDS: tuple[tuple[str, str, str], ...] = (
    ("customers", "Customers", "int"),
    ("active_customers", "Active customers", "int"),
    ("alive_customers", "Alive (P(alive) ≥ 0.5)", "int"),
    ("retention_rate", "Retention rate", "pct"),
    ("churn_rate", "Churn rate", "pct"),
    ("aov", "AOV", "money"),
    ("arpu", "ARPU", "money"),
    ("avg_predicted_clv", "Avg predicted CLV", "money"),
    ("median_predicted_clv", "Median predicted CLV", "money"),
    ("avg_historic_clv", "Avg historic CLV", "money"),
    ("top_tier_revenue_share", "Top-tier revenue share", "pct"),
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
.card .d{font-size:12px}.up{color:#1a7f37}.down{color:#c62828}.flat{color:#5b6473}
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


def _kpi_cards(latest: dict[str, object] | None) -> str:
    if latest is None:
        return '<p class="sub">No kpis snapshot on or before this date.</p>'
    cards = []
    for name, label, kind in _KPI_CARDS:
        if name not in latest:
            continue
        change = latest.get(f"{name}_change_pct")
        if isinstance(change, int | float) and math.isfinite(change):
            cls = "up" if change > 0 else "down" if change < 0 else "flat"
            delta = f'<div class="d {cls}">{change:+.1f}% vs previous</div>'
        else:
            delta = '<div class="d flat">no previous snapshot</div>'
        cards.append(
            f'<div class="card" data-kpi="{_esc(name)}"><div class="k">{_esc(label)}</div>'
            f'<div class="v">{_fmt(latest[name], kind)}</div>{delta}</div>'
        )
    return f'<div class="cards" id="table-kpis">{"".join(cards)}</div>'


def _lift_cell(metric: str, lift: object) -> str:
    if not isinstance(lift, int | float) or not math.isfinite(lift):
        return '<td class="">–</td>'
    cls = "better" if lift > 0 else "worse" if lift < 0 else ""
    # Error metrics: relative change of the error (negative = smaller error than baseline).
    text = f"{-100 * lift:+.1f}% error" if metric in LOWER_IS_BETTER else f"{lift:+.3f}"
    return f'<td class="{cls}">{_esc(text)}</td>'


def _backtest_table(backtest: pl.DataFrame | None) -> str:
    if backtest is None or backtest.height == 0:
        return '<p class="sub">No backtest available.</p>'
    lift = backtest_lift(backtest)
    models = [m for m in dict.fromkeys(backtest["model"].to_list()) if m != BASELINE]
    header = ["metric", "baseline"]
    for m in models:
        header += [m, f"{m} vs baseline"]
    base = dict(backtest.filter(pl.col("model") == BASELINE).select("metric", "value").iter_rows())
    rows = []
    for metric in BACKTEST_METRICS:
        row = [_esc(metric), _fmt(base.get(metric))]
        for m in models:
            hit = lift.filter((pl.col("model") == m) & (pl.col("metric") == metric))
            value = hit["value"][0] if hit.height else None
            row += [_fmt(value), _lift_cell(metric, hit["lift"][0] if hit.height else None)]
        rows.append(row)
    first = backtest.row(0, named=True)
    caption = (
        f'<p class="sub">Calibration up to {_esc(first["calibration_end"])}, holdout '
        f"{_esc(first['holdout_days'])} days to {_esc(first['as_of'])}, "
        f"{_fmt(first['n_customers'], 'int')} calibration customers. Error metrics: "
        "change in error vs baseline (negative = model better); ranking metrics "
        "(Spearman, Gini, AUC): points vs baseline (positive = model better).</p>"
    )
    return caption + _table("table-backtest", header, rows)


def _params_table(model_params: pl.DataFrame | None) -> str:
    if model_params is None or model_params.height == 0:
        return _table("table-model-params", ["model"], [])
    fits = model_params.group_by("model", maintain_order=True).agg(
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
            [
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
    header = [
        "model",
        "parameters",
        "log-lik",
        "BIC",
        "customers",
        "repeat",
        "converged",
        "selected",
    ]
    return _table("table-model-params", header, rows, left=2)


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
    messages: Sequence[str] = (),
    title: str = "Customer lifetime value report",
) -> str:
    """Render the report page for ``as_of`` from published tables.

    Parameters
    ----------
    as_of
        Snapshot date shown in the header; KPI cards use the latest kpis row on or before it.
    kpis_history
        ``kpis`` rows over many ``as_of`` (the trend); may be one snapshot.
    clv, segments, churn, cohorts, model_params
        ``customer_clv``, ``customer_segments``, ``customer_churn``, ``cohorts``,
        ``model_params`` of ``as_of``.
    backtest, deciles, calibration
        ``model_backtest``, ``backtest_deciles``, ``backtest_calibration`` frames
        (:func:`clv_pipeline.report.backtest.run_backtest`).
    messages
        Notes shown at the top (data sufficiency, fit warnings).
    title
        Page title.

    Any frame may be ``None`` or empty: its charts then say "no data".

    Returns
    -------
    str
        A complete HTML document with inline CSS and plotly.js; no network access needed.
    """
    figures: dict[str, Callable[[], go.Figure]] = {
        "chart-kpi-trend": lambda: charts.kpi_trend(kpis_history),
        "chart-clv-distribution": lambda: charts.clv_distribution(clv),
        "chart-value-tiers": lambda: charts.value_tiers(segments),
        "chart-segments": lambda: charts.segment_sizes(segments),
        "chart-churn-risk": lambda: charts.churn_risk(churn),
        "chart-cohort-retention": lambda: charts.cohort_heatmap(cohorts),
        "chart-calibration": lambda: charts.calibration_vs_holdout(calibration),
        "chart-deciles": lambda: charts.decile_lift(deciles),
    }
    div = {cid: _chart_div(cid, build()) for cid, build in figures.items()}
    notes = "".join(f"<li>{_esc(m)}</li>" for m in messages)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f"<title>{_esc(title)} — {as_of.isoformat()}</title>",
        f"<style>{_CSS}</style>",
        f"<script>{_HEAD_JS}</script>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head>",
        f'<body data-as-of="{as_of.isoformat()}">',
        f"<h1>{_esc(title)}</h1>",
        f'<p class="sub">Snapshot as of <b>{as_of.isoformat()}</b>. Self-contained page: '
        "no network access needed.</p>",
        '<pre id="report-errors"></pre>',
        f'<ul class="messages" id="report-messages">{notes}</ul>' if notes else "",
        '<h2 id="kpis">KPIs</h2>',
        _kpi_cards(_latest_kpis(kpis_history, as_of)),
        div["chart-kpi-trend"],
        '<h2 id="value">Customer value</h2>',
        div["chart-clv-distribution"],
        '<div class="grid2">',
        div["chart-value-tiers"],
        div["chart-churn-risk"],
        "</div>",
        div["chart-segments"],
        '<h2 id="cohorts">Cohorts</h2>',
        div["chart-cohort-retention"],
        '<h2 id="backtest">Model backtest</h2>',
        _backtest_table(backtest),
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
def write_report(html: str, path: str | os.PathLike[str]) -> Path:
    """Write ``html`` to ``path`` atomically (temp file in the same folder + ``os.replace``)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(html)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the report is for people and BI tools
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def report_paths(warehouse: str | os.PathLike[str], as_of: date) -> tuple[Path, Path]:
    """``(warehouse/reports/as_of=D/report.html, warehouse/reports/latest/report.html)``."""
    root = Path(warehouse) / "reports"
    return root / f"as_of={as_of.isoformat()}" / "report.html", root / "latest" / "report.html"


def publish_report(
    html: str, warehouse: str | os.PathLike[str], as_of: date, *, update_latest: bool = True
) -> tuple[Path, Path | None]:
    """Write the dated report and (by default) the ``latest`` copy, each atomically."""
    dated, latest = report_paths(warehouse, as_of)
    write_report(html, dated)
    if not update_latest:
        return dated, None
    return dated, write_report(html, latest)
