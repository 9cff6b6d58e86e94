"""Plotly figures for the HTML report, built from published tables (polars frames).

Every builder accepts ``None`` or an empty frame and then returns a figure with a "no data"
note, so the page always has one rendered chart per section. Figures carry no data beyond the
aggregates shown (no per-customer rows are embedded; the CLV histogram is binned in numpy).

Money: builders showing amounts take ``currency`` (an ISO-4217 code such as ``EUR``, or ``""``);
every money axis title and hover names it (:func:`money_unit`). Names: traces and panels use the
plain-word labels of :data:`KPI_LABELS`, never column names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

#: Value tiers and churn risk bands in display order (customer_segments / customer_churn).
TIER_ORDER = ("platinum", "gold", "silver", "bronze", "medium", "low")
RISK_ORDER = ("low", "medium", "high", "critical", "unknown")

_TEMPLATE = "plotly_white"
_MODEL_COLORS = {
    "actual": "#222222",
    "bgnbd": "#1f77b4",
    "pareto_nbd": "#ff7f0e",
    "mbgnbd": "#9467bd",
    "baseline_rate": "#7f7f7f",
    "baseline": "#7f7f7f",  # baseline_rate in backtests published before 2026-12
}
_RISK_COLORS = {
    "low": "#2ca02c",
    "medium": "#bcbd22",
    "high": "#ff7f0e",
    "critical": "#d62728",
    "unknown": "#7f7f7f",
}


#: Plain-word names of the ``kpis`` columns (legends, cards, tables).
KPI_LABELS: dict[str, str] = {
    "customers": "Customers",
    "active_customers": "Active customers",
    "alive_customers": "Likely still customers",
    "retention_rate": "Retention rate",
    "churn_rate": "Churn rate",
    "aov": "Average order value",
    "arpu": "Revenue per active customer",
    "purchase_frequency": "Orders per active customer",
    "lifespan_days": "Expected lifespan, formula (days)",
    "avg_predicted_clv": "Model CLV, average",
    "median_predicted_clv": "Model CLV, median",
    "avg_historic_clv": "Historic CLV, average",
    "avg_formula_clv": "Formula CLV, average",
    "formula_clv_aov": "Formula CLV: AOV × orders × lifespan",
    "formula_clv_arpu": "Formula CLV: ARPU × margin ÷ churn",
    "top_tier_revenue_share": "Top-tier revenue share",
}

#: ``kpis`` columns in currency units.
MONEY_KPIS = frozenset(
    {
        "aov",
        "arpu",
        "avg_predicted_clv",
        "median_predicted_clv",
        "avg_historic_clv",
        "avg_formula_clv",
        "formula_clv_aov",
        "formula_clv_arpu",
    }
)
#: ``kpis`` columns that are shares (0..1).
SHARE_KPIS = frozenset({"retention_rate", "churn_rate", "top_tier_revenue_share"})


def money_unit(currency: str) -> str:
    """The unit written on money axes, hovers and cards: the code, or "currency units"."""
    return currency or "currency units"


def _money_hover(value: str, currency: str, *, digits: int = 2) -> str:
    """A hover fragment for a money value, e.g. ``%{y:,.2f} EUR``."""
    return f"%{{{value}:,.{digits}f}} {money_unit(currency)}"


def _has_rows(frame: pl.DataFrame | None, *columns: str) -> bool:
    return frame is not None and frame.height > 0 and all(c in frame.columns for c in columns)


def _layout(fig: go.Figure, title: str, *, height: int = 380) -> go.Figure:
    fig.update_layout(
        template=_TEMPLATE,
        title={"text": title, "x": 0.01, "font": {"size": 15}},
        height=height,
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        legend={"orientation": "h", "y": -0.18},
        font={"family": "system-ui, -apple-system, Segoe UI, Roboto, Arial, sans-serif"},
    )
    return fig


def empty_figure(title: str, reason: str = "no data") -> go.Figure:
    """A blank chart with ``reason`` written in the middle (still renders an SVG)."""
    fig = go.Figure()
    fig.add_annotation(
        text=reason, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font={"size": 16}
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, height=260)


_KPI_PANELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Customers", "count", ("customers", "active_customers", "alive_customers")),
    (
        "CLV per customer",
        "money",
        ("avg_predicted_clv", "median_predicted_clv", "avg_historic_clv"),
    ),
    ("Retention and churn", "share", ("retention_rate", "churn_rate")),
    ("Order economics", "money", ("aov", "arpu")),
)


def _kpi_hover(label: str, kind: str, currency: str) -> str:
    value = {
        "count": "%{y:,.0f}",
        "share": "%{y:.1%}",
        "money": _money_hover("y", currency),
    }[kind]
    return f"%{{x|%Y-%m-%d}}<br>{label}: {value}<extra></extra>"


def kpi_trend(
    kpis_history: pl.DataFrame | None, *, currency: str = "", as_of: date | None = None
) -> go.Figure:
    """Four small line panels of the ``kpis`` table over ``as_of`` (up to ``as_of`` when given).

    Every x axis spans exactly the first to the last snapshot shown (no padding past the last
    one); money panels are titled and hovered in ``currency``; traces carry plain-word names.
    """
    title = "KPI trend"
    if kpis_history is None or not _has_rows(kpis_history, "as_of"):
        return empty_figure(title, "no kpis snapshots")
    frame = kpis_history.sort("as_of")
    if as_of is not None:
        frame = frame.filter(pl.col("as_of") <= as_of)
    if frame.height == 0:
        return empty_figure(title, "no kpis snapshots")
    unit = money_unit(currency)
    window = (
        frame["active_window_days"].drop_nulls().tail(1).to_list()
        if "active_window_days" in frame.columns
        else []
    )
    per_window = f" (per {window[0]}-day window)" if window else " (per window)"
    titles = {
        "count": "",
        "money": f" ({unit})",
        "share": per_window,
    }
    fig = make_subplots(
        rows=2,
        cols=2,
        subplot_titles=[name + titles[kind] for name, kind, _ in _KPI_PANELS],
        vertical_spacing=0.16,
        horizontal_spacing=0.08,
    )
    x = frame["as_of"].to_list()
    for i, (_, kind, columns) in enumerate(_KPI_PANELS):
        row, col = i // 2 + 1, i % 2 + 1
        for name in columns:
            if name not in frame.columns:
                continue
            label = KPI_LABELS[name]
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=frame[name].to_list(),
                    name=label,
                    mode="lines+markers",
                    cliponaxis=False,  # the last snapshot sits on the axis end: draw it whole
                    hovertemplate=_kpi_hover(label, kind, currency),
                ),
                row=row,
                col=col,
            )
        axis_title = {"count": "customers", "money": unit, "share": "share of customers"}[kind]
        fig.update_yaxes(title_text=axis_title, row=row, col=col)
    first, last = frame["as_of"][0], frame["as_of"][-1]  # sorted
    if first == last:  # one snapshot: one day of context before it, nothing after
        fig.update_xaxes(range=[first - timedelta(days=1), last], tickvals=[last])
    else:
        fig.update_xaxes(range=[first, last])
    fig.update_xaxes(tickformat="%Y-%m-%d", type="date", autorange=False)
    # three significant digits, trailing zeros trimmed: 49.5% and 50.5% are not both "50%"
    fig.update_yaxes(tickformat=".3~%", row=2, col=1)
    return _layout(fig, f"{title} ({frame.height} snapshot(s))", height=600)


#: Plain-word names of the customer_clv value columns.
CLV_LABELS = {
    "predicted_clv": "Model CLV per customer",
    "historic_clv": "Historic CLV per customer (to date)",
}


def clv_distribution(
    clv: pl.DataFrame | None, *, clip_quantile: float = 0.99, currency: str = ""
) -> go.Figure:
    """Histogram of ``predicted_clv`` (``historic_clv`` when no model), tail clipped."""
    title = "CLV distribution"
    if clv is None or not _has_rows(clv):
        return empty_figure(title, "no customer_clv rows")
    column = "predicted_clv"
    if column not in clv.columns or clv[column].drop_nulls().len() == 0:
        column = "historic_clv"
    if column not in clv.columns:
        return empty_figure(title, "no CLV column")
    values = clv[column].drop_nulls()
    if values.len() == 0:
        return empty_figure(title, f"no {column} values")
    unit = money_unit(currency)
    label = CLV_LABELS[column]
    if column == "predicted_clv" and "horizon_days" in clv.columns:
        horizon = clv["horizon_days"].drop_nulls()
        if horizon.len():
            label += f", next {float(horizon[0]):,.0f} days"
    cap = values.quantile(clip_quantile, interpolation="nearest")
    shown = values.filter(values <= cap) if cap is not None else values
    # binned here: the page carries 40 bars, not one value per customer (10M customers = 200 MB)
    counts, edges = np.histogram(shown.to_numpy(), bins=40)
    fig = go.Figure(
        go.Bar(
            x=(edges[:-1] + edges[1:]) / 2,
            y=counts,
            width=float(edges[1] - edges[0]) if edges[1] > edges[0] else None,
            name=label,
            marker_color="#1f77b4",
            hovertemplate=f"about {_money_hover('x', currency, digits=0)}: "
            "%{y:,} customers<extra></extra>",
        )
    )
    mean = values.mean()
    if isinstance(mean, int | float):
        fig.add_vline(x=float(mean), line_dash="dash", annotation_text=f"mean {mean:,.0f} {unit}")
    fig.update_xaxes(title_text=f"{label} ({unit})")
    fig.update_yaxes(title_text="customers")
    note = f" — values above the {clip_quantile:.0%} quantile ({cap:,.0f} {unit}) not shown"
    return _layout(fig, f"{title}: {label}{note if cap is not None else ''}")


def _ordered(frame: pl.DataFrame, column: str, order: Sequence[str]) -> pl.DataFrame:
    rank = {v: i for i, v in enumerate(order)}
    return frame.with_columns(
        pl.col(column)
        .replace_strict(rank, default=len(order), return_dtype=pl.Int64)
        .alias("_order")
    ).sort("_order", column)


def _count_and_value(
    frame: pl.DataFrame,
    key: str,
    value: str,
    *,
    order: Sequence[str] | None,
    title: str,
    value_title: str,
    currency: str,
    colors: dict[str, str] | None = None,
    horizontal: bool = False,
) -> go.Figure:
    """Customers (left) and summed money ``value`` (right, in ``currency``) per ``key``."""
    agg = frame.group_by(key).agg(
        pl.len().alias("customers"), pl.col(value).fill_null(0.0).sum().alias("value")
    )
    agg = (
        _ordered(agg, key, order)
        if order
        else agg.sort(["value", key], descending=[True, False])  # ties: by name (same bytes)
    )
    labels = [str(v) for v in agg[key].to_list()]
    marker: dict[str, Any] = {}
    if colors:
        marker = {"color": [colors.get(v, "#1f77b4") for v in labels]}
    unit = money_unit(currency)
    money_title = f"{value_title} ({unit})"
    fig = make_subplots(rows=1, cols=2, subplot_titles=["Customers", money_title])
    axis = "x" if horizontal else "y"
    category = "y" if horizontal else "x"
    for col, series in ((1, "customers"), (2, "value")):
        ys = agg[series].to_list()
        shown = "%{" + axis + ":,.0f} customers" if col == 1 else _money_hover(axis, currency)
        hover = f"%{{{category}}}: {shown}<extra></extra>"
        bar = (
            go.Bar(
                y=labels,
                x=ys,
                orientation="h",
                marker=marker,
                showlegend=False,
                hovertemplate=hover,
            )
            if horizontal
            else go.Bar(x=labels, y=ys, marker=marker, showlegend=False, hovertemplate=hover)
        )
        fig.add_trace(bar, row=1, col=col)
    update = fig.update_xaxes if horizontal else fig.update_yaxes
    update(title_text="customers", row=1, col=1)
    update(title_text=unit, row=1, col=2)
    if horizontal:
        fig.update_yaxes(autorange="reversed")
    height = max(380, 28 * len(labels) + 120) if horizontal else 380
    return _layout(fig, title, height=height)


def value_tiers(segments: pl.DataFrame | None, *, currency: str = "") -> go.Figure:
    """Customers and summed ``segment_value`` per value tier."""
    title = "Value tiers"
    if segments is None or not _has_rows(segments, "value_tier", "segment_value"):
        return empty_figure(title, "no customer_segments rows")
    return _count_and_value(
        segments,
        "value_tier",
        "segment_value",
        order=TIER_ORDER,
        title=title,
        value_title="Sum of CLV",
        currency=currency,
    )


def segment_sizes(segments: pl.DataFrame | None, *, currency: str = "") -> go.Figure:
    """Customers and summed ``segment_value`` per named RFM segment."""
    title = "RFM segments: size and value"
    if segments is None or not _has_rows(segments, "rfm_segment", "segment_value"):
        return empty_figure(title, "no customer_segments rows")
    return _count_and_value(
        segments,
        "rfm_segment",
        "segment_value",
        order=None,
        title=title,
        value_title="Sum of CLV",
        currency=currency,
        horizontal=True,
    )


def churn_risk(churn: pl.DataFrame | None, *, currency: str = "") -> go.Figure:
    """Customers and value at risk per churn risk band."""
    title = "Churn risk bands and value at risk"
    if churn is None or not _has_rows(churn, "risk_band", "value_at_risk"):
        return empty_figure(title, "no customer_churn rows")
    return _count_and_value(
        churn,
        "risk_band",
        "value_at_risk",
        order=RISK_ORDER,
        title=title,
        value_title="Value at risk",
        currency=currency,
        colors=_RISK_COLORS,
    )


def partial_month(cohorts: pl.DataFrame | None) -> tuple[date, int, int] | None:
    """``(month, days observed, days in the month)`` of the partial calendar month of a
    ``cohorts`` snapshot (the month containing as_of, when as_of is not its last day), else
    None (also for snapshots published before ``is_partial_month``)."""
    needed = ("cohort_month", "months_since_acquisition", "is_partial_month", "days_observed")
    if cohorts is None or not _has_rows(cohorts, *needed):
        return None
    rows = cohorts.filter(pl.col("is_partial_month").fill_null(False))
    if rows.height == 0:
        return None
    row = rows.row(0, named=True)
    start: date = row["cohort_month"]
    index = start.year * 12 + start.month - 1 + int(row["months_since_acquisition"])
    month = date(index // 12, index % 12 + 1, 1)
    length = ((month + timedelta(days=32)).replace(day=1) - month).days
    return month, int(row["days_observed"]), length


def partial_month_label(partial: tuple[date, int, int]) -> str:
    """``Dec 2011 (9 of 31 days)``."""
    month, observed, length = partial
    return f"{month.strftime('%b %Y')} ({observed} of {length} days)"


def cohort_heatmap(cohorts: pl.DataFrame | None, *, channel: str = "all") -> go.Figure:
    """Retention rate by acquisition month (rows) and months since acquisition (columns).

    The calendar month containing as_of, when as_of is not its last day, is observed only in part:
    its cells (the last of each row) are outlined with a dashed line, marked ``*`` and named in
    the title and the hover (e.g. ``Dec 2011 (9 of 31 days)``)."""
    title = "Cohort retention (share of the cohort purchasing in each month)"
    needed = ("cohort_month", "months_since_acquisition", "retention_rate")
    if cohorts is None or not _has_rows(cohorts, *needed):
        return empty_figure(title, "no cohorts rows")
    frame = cohorts
    if "channel" in frame.columns:
        frame = frame.filter(pl.col("channel") == channel)
    if frame.height == 0:
        return empty_figure(title, f"no cohorts rows for channel {channel!r}")
    wide = (
        frame.sort("months_since_acquisition")
        .pivot(
            on="months_since_acquisition",
            index="cohort_month",
            values="retention_rate",
            aggregate_function="first",
        )
        .sort("cohort_month")
    )
    months = [c for c in wide.columns if c != "cohort_month"]
    z = [
        [None if v is None else round(100.0 * v, 1) for v in row]
        for row in wide.select(months).rows()
    ]
    cohort_months: list[date] = wide["cohort_month"].to_list()
    y = [d.strftime("%Y-%m") for d in cohort_months]
    x = [int(m) for m in months]
    partial = partial_month(frame)
    # the partial calendar month is one cell per cohort row: (row, months since acquisition)
    cells: set[tuple[int, int]] = set()
    if partial is not None:
        at = partial[0].year * 12 + partial[0].month - 1
        for i, start in enumerate(cohort_months):
            m = at - (start.year * 12 + start.month - 1)
            if m in x:
                cells.add((i, m))
    note = f"partial month {partial_month_label(partial)}" if partial else "full month"
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=x,
            y=y,
            colorscale="Blues",
            zmin=0,
            zmax=100,
            colorbar={"title": {"text": "%"}},
            text=[
                [
                    "" if v is None else f"{v:.0f}*" if (i, m) in cells else f"{v:.0f}"
                    for m, v in zip(x, row, strict=True)
                ]
                for i, row in enumerate(z)
            ],
            customdata=[
                [note if (i, m) in cells else "full month" for m in x] for i in range(len(y))
            ],
            texttemplate="%{text}",
            hovertemplate="cohort %{y}<br>month %{x}<br>retention %{z}%<br>%{customdata}"
            "<extra></extra>",
        )
    )
    for i, m in sorted(cells):
        fig.add_shape(
            type="rect",
            x0=m - 0.5,
            x1=m + 0.5,
            y0=i - 0.5,
            y1=i + 0.5,
            xref="x",
            yref="y",
            line={"color": "#c62828", "width": 1.5, "dash": "dot"},
            fillcolor="rgba(255,255,255,0)",
        )
    if partial is not None:
        title += (
            f"<br><sup>* {partial_month_label(partial)} observed so far: its retention is not "
            "comparable with full months (dotted cells)</sup>"
        )
    fig.update_xaxes(title_text="months since acquisition", dtick=1)
    fig.update_yaxes(title_text="cohort month", autorange="reversed", type="category")
    return _layout(fig, title, height=max(380, 26 * len(y) + 160))


def calibration_vs_holdout(calibration: pl.DataFrame | None) -> go.Figure:
    """Mean actual vs predicted holdout purchases by calibration frequency, per model."""
    title = "Calibration vs holdout: mean holdout purchases by frequency"
    needed = ("model", "frequency", "frequency_label", "predicted_purchases", "actual_purchases")
    if calibration is None or not _has_rows(calibration, *needed):
        return empty_figure(title, "no backtest (insufficient data)")
    frame = calibration.sort("model", "frequency")
    models = list(dict.fromkeys(frame["model"].to_list()))
    first = frame.filter(pl.col("model") == models[0])
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=first["frequency_label"].to_list(),
            y=first["actual_purchases"].to_list(),
            name="actual",
            mode="lines+markers",
            line={"color": _MODEL_COLORS["actual"], "width": 3},
        )
    )
    for model in models:
        part = frame.filter(pl.col("model") == model)
        fig.add_trace(
            go.Scatter(
                x=part["frequency_label"].to_list(),
                y=part["predicted_purchases"].to_list(),
                name=f"{model} (predicted)",
                mode="lines+markers",
                line={"color": _MODEL_COLORS.get(model), "dash": "dash"},
            )
        )
    fig.update_xaxes(
        title_text="purchase-days repeated in calibration (frequency)", type="category"
    )
    fig.update_yaxes(title_text="mean purchase-days in holdout")
    return _layout(fig, title)


def decile_lift(deciles: pl.DataFrame | None) -> go.Figure:
    """Mean predicted vs actual holdout purchases per decile of prediction, per model."""
    title = "Holdout purchases by decile of prediction (1 = highest)"
    needed = ("model", "decile", "predicted_purchases", "actual_purchases")
    if deciles is None or not _has_rows(deciles, *needed):
        return empty_figure(title, "no backtest (insufficient data)")
    frame = deciles.sort("model", "decile")
    fig = go.Figure()
    for model in dict.fromkeys(frame["model"].to_list()):
        part = frame.filter(pl.col("model") == model)
        color = _MODEL_COLORS.get(model)
        fig.add_trace(
            go.Scatter(
                x=part["decile"].to_list(),
                y=part["actual_purchases"].to_list(),
                name=f"{model} actual",
                mode="lines+markers",
                line={"color": color},
            )
        )
        fig.add_trace(
            go.Scatter(
                x=part["decile"].to_list(),
                y=part["predicted_purchases"].to_list(),
                name=f"{model} predicted",
                mode="lines",
                line={"color": color, "dash": "dash"},
            )
        )
    fig.update_xaxes(title_text="decile of prediction", dtick=1)
    fig.update_yaxes(title_text="mean purchase-days in holdout")
    return _layout(fig, title)


#: The CLV comparison's bars: (kpis column, colour).
CLV_MEASURES: tuple[tuple[str, str], ...] = (
    ("avg_historic_clv", "#7f7f7f"),
    ("avg_predicted_clv", "#1f77b4"),
    ("median_predicted_clv", "#6baed6"),
    ("avg_formula_clv", "#ff7f0e"),
    ("formula_clv_aov", "#fdae6b"),
    ("formula_clv_arpu", "#e6550d"),
)


def clv_comparison(kpis: Mapping[str, Any] | None, *, currency: str = "") -> go.Figure:
    """Model CLV next to the formula CLVs (and historic CLV) of one ``kpis`` row, per customer."""
    title = "Model CLV vs formula CLV, per customer"
    if not kpis:
        return empty_figure(title, "no kpis snapshot")
    names, values, colors = [], [], []
    for column, color in CLV_MEASURES:
        value = kpis.get(column)
        if isinstance(value, int | float) and np.isfinite(value):
            names.append(KPI_LABELS[column])
            values.append(float(value))
            colors.append(color)
    if not names:
        return empty_figure(title, "no CLV figures in the kpis snapshot")
    unit = money_unit(currency)
    fig = go.Figure(
        go.Bar(
            y=names,
            x=values,
            orientation="h",
            marker={"color": colors},
            text=[f"{v:,.0f} {unit}" for v in values],
            textposition="auto",
            hovertemplate=f"%{{y}}: {_money_hover('x', currency)}<extra></extra>",
            showlegend=False,
        )
    )
    fig.update_xaxes(title_text=f"per customer ({unit})")
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title, height=max(300, 44 * len(names) + 120))
