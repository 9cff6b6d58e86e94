"""One function per asset: read inputs from the data home, call the pure stage, publish.

Dagster assets and the CLI both call these, so neither carries logic of its own. Each function
takes the typed :class:`~clv_pipeline.config.ClvConfig` and an explicit date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl

from clv_pipeline.config import ClvConfig
from clv_pipeline.errors import InputError
from clv_pipeline.features import compute_features
from clv_pipeline.publish.catalog import mark_complete
from clv_pipeline.publish.files import write_parquet_atomic
from clv_pipeline.publish.warehouse import (
    Published,
    preview_markdown,
    publish_table,
    read_published,
    scan_published,
)
from clv_pipeline.segments.seed import assign_segments, flag_churn
from clv_pipeline.sources.landing import read_landing_day
from clv_pipeline.validation.transactions import validate_transactions
from clv_pipeline.valuation import Valuation, value_customers


@dataclass(frozen=True)
class StepResult:
    """What a step published plus figures for the run log / Dagster metadata."""

    published: list[Published]
    stats: dict[str, object] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        first = self.published[0].metadata() if self.published else {}
        return {**first, **self.stats}


def pull_raw_transactions(config: ClvConfig, day: date) -> StepResult:
    """Read the day's landing files (as delivered, strings) and publish ``raw_transactions``."""
    raw = read_landing_day(config.layout, day, column_map=config.column_map)
    files = raw.get_column("_source_file").n_unique() if raw.height else 0
    published = publish_table(config.layout, "raw_transactions", raw, day=day)
    return StepResult([published], {"files": files})


def validate_day(config: ClvConfig, day: date) -> StepResult:
    """Validate the day's raw rows; publish clean rows and (re)write its quarantine file."""
    layout = config.layout
    raw = read_published(layout, "raw_transactions", day)
    if raw is None:
        raise InputError(f"raw_transactions for {day} is not published; run raw_transactions first")
    result = validate_transactions(
        raw,
        day=day,
        timezone=config.timezone,
        naive_timezone=config.naive_timezone,
        non_revenue_statuses=config.non_revenue_statuses,
    )
    quarantine_path = layout.quarantine_file("transactions", day)
    if result.quarantine.height:
        write_parquet_atomic(result.quarantine, quarantine_path)
    else:
        quarantine_path.unlink(missing_ok=True)  # a rerun with fixed input clears old rejects
    published = publish_table(layout, "validated_transactions", result.clean, day=day)
    stats: dict[str, object] = dict(result.stats)
    if result.quarantine.height:
        stats["quarantine_path"] = str(quarantine_path)
        stats["quarantine_reasons"] = result.reasons()
    return StepResult([published], stats)


def build_customer_features(config: ClvConfig, as_of: date) -> StepResult:
    """Features from every validated day up to ``as_of`` (never later rows)."""
    history = scan_published(config.layout, "validated_transactions", upto=as_of)
    features = compute_features(history, as_of=as_of).collect()
    published = publish_table(config.layout, "customer_features", features, day=as_of)
    return StepResult([published], {"customers": features.height})


def _features(config: ClvConfig, as_of: date) -> pl.DataFrame:
    features = read_published(config.layout, "customer_features", as_of)
    if features is None:
        raise InputError(f"customer_features for {as_of} is not published; run it first")
    return features


def build_customer_clv(config: ClvConfig, as_of: date) -> tuple[StepResult, Valuation]:
    """Fit the models and publish ``model_params`` and ``customer_clv``."""
    valuation = value_customers(
        _features(config, as_of),
        as_of=as_of,
        gross_margin=config.gross_margin,
        horizon_days=config.horizon_days,
        churn_window_days=config.churn_window_days,
        max_lifespan_days=config.max_lifespan_days,
        model_options=config.model_options(),
    )
    params = publish_table(config.layout, "model_params", valuation.params, day=as_of)
    clv = publish_table(config.layout, "customer_clv", valuation.clv, day=as_of)
    stats: dict[str, object] = {
        "model": valuation.selected_model or "none",
        "data_sufficient": valuation.data_sufficient,
        "messages": "\n".join(valuation.messages),
        "params": preview_markdown(valuation.params, rows=20),
    }
    return StepResult([clv, params], stats), valuation


def build_customer_segments(config: ClvConfig, as_of: date) -> StepResult:
    segments = assign_segments(_features(config, as_of).lazy()).collect()
    published = publish_table(config.layout, "customer_segments", segments, day=as_of)
    counts = segments.group_by("segment").len().sort("len", descending=True)
    return StepResult([published], {"segments": dict(counts.iter_rows())})


def build_customer_churn(config: ClvConfig, as_of: date) -> StepResult:
    clv = read_published(config.layout, "customer_clv", as_of)
    if clv is None:
        raise InputError(f"customer_clv for {as_of} is not published; run it first")
    churn = flag_churn(
        _features(config, as_of).lazy(), clv.lazy(), churn_window_days=config.churn_window_days
    ).collect()
    published = publish_table(config.layout, "customer_churn", churn, day=as_of)
    return StepResult([published], {"churned": int(churn.get_column("is_churned").sum())})


def commit_snapshot(config: ClvConfig, as_of: date) -> StepResult:
    """The commit point: make ``as_of`` visible in the DuckDB views and the manifest."""
    dates = mark_complete(config.layout, as_of)
    return StepResult([], {"complete_snapshots": len(dates), "catalog": str(config.layout.catalog)})
