"""Assets: thin wrappers that turn a partition key into a date and call one pipeline step."""

import warnings
from collections.abc import Callable, Iterator
from datetime import date

import dagster as dg

from clv_pipeline import pipeline
from clv_pipeline.config import ClvConfig
from clv_pipeline.defs.partitions import clv_daily_partition
from clv_pipeline.pipeline import StepResult

# BackfillPolicy.single_run() is what lets one run ingest a whole range of days; it is "beta".
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)

INGEST = "ingest"
SNAPSHOT = "snapshot"


def _days(context: dg.AssetExecutionContext) -> list[date]:
    """The partition dates of this run: one, or a whole range in a single-run backfill."""
    return [date.fromisoformat(key) for key in context.partition_keys]


def _over_days(
    context: dg.AssetExecutionContext, step: Callable[[ClvConfig, date], StepResult], clv: ClvConfig
) -> dg.MaterializeResult:
    days = _days(context)
    rows = 0
    last: StepResult | None = None
    for i, day in enumerate(days, start=1):
        last = step(clv, day)
        rows += last.published[0].rows
        if len(days) > 1 and (i % 50 == 0 or i == len(days)):
            context.log.info(
                f"{context.asset_key.to_user_string()}: {i}/{len(days)} days, {rows} rows"
            )
    assert last is not None  # noqa: S101 - a run always has at least one partition
    metadata = last.metadata() if len(days) == 1 else {"days": len(days), "rows": rows}
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    group_name=INGEST,
    partitions_def=clv_daily_partition,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"polars", "parquet"},
    description="The partition day's rows as delivered to the landing folder (strings).",
)
def raw_transactions(context: dg.AssetExecutionContext, clv: ClvConfig) -> dg.MaterializeResult:
    return _over_days(context, pipeline.pull_raw_transactions, clv)


@dg.asset(
    group_name=INGEST,
    partitions_def=clv_daily_partition,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[raw_transactions],
    kinds={"polars", "parquet"},
    description="Typed, normalised, deduplicated transactions; bad rows to quarantine/.",
)
def validated_transactions(
    context: dg.AssetExecutionContext, clv: ClvConfig
) -> dg.MaterializeResult:
    return _over_days(context, pipeline.validate_day, clv)


def _as_of(context: dg.AssetExecutionContext) -> date:
    return date.fromisoformat(context.partition_key)


@dg.asset(
    group_name=SNAPSHOT,
    partitions_def=clv_daily_partition,
    deps=[validated_transactions],
    kinds={"polars", "parquet"},
    description="Per-customer frequency, recency, T (days) and spend as of the partition date.",
)
def customer_features(context: dg.AssetExecutionContext, clv: ClvConfig) -> dg.MaterializeResult:
    result = pipeline.build_customer_features(clv, _as_of(context))
    return dg.MaterializeResult(metadata=result.metadata())


@dg.multi_asset(
    group_name=SNAPSHOT,
    partitions_def=clv_daily_partition,
    specs=[
        dg.AssetSpec("model_params", deps=["customer_features"], kinds={"scipy", "parquet"}),
        dg.AssetSpec("customer_clv", deps=["customer_features"], kinds={"scipy", "parquet"}),
    ],
    description="Fit BG/NBD / Pareto/NBD + Gamma-Gamma; per-customer historic, formula, predicted CLV.",
)
def customer_clv(
    context: dg.AssetExecutionContext, clv: ClvConfig
) -> Iterator[dg.MaterializeResult]:
    result, _ = pipeline.build_customer_clv(clv, _as_of(context))
    clv_table, params_table = result.published
    yield dg.MaterializeResult(asset_key="model_params", metadata=params_table.metadata())
    yield dg.MaterializeResult(asset_key="customer_clv", metadata=result.metadata())


@dg.asset(
    group_name=SNAPSHOT,
    partitions_def=clv_daily_partition,
    deps=[customer_features],
    kinds={"polars", "parquet"},
    description="Recency / frequency segments per customer.",
)
def customer_segments(context: dg.AssetExecutionContext, clv: ClvConfig) -> dg.MaterializeResult:
    result = pipeline.build_customer_segments(clv, _as_of(context))
    return dg.MaterializeResult(metadata=result.metadata())


@dg.asset(
    group_name=SNAPSHOT,
    partitions_def=clv_daily_partition,
    deps=[customer_features, dg.AssetKey("customer_clv")],
    kinds={"polars", "parquet"},
    description="Churn flag by recency and model churn probability.",
)
def customer_churn(context: dg.AssetExecutionContext, clv: ClvConfig) -> dg.MaterializeResult:
    result = pipeline.build_customer_churn(clv, _as_of(context))
    return dg.MaterializeResult(metadata=result.metadata())


@dg.asset(
    group_name=SNAPSHOT,
    partitions_def=clv_daily_partition,
    deps=[
        customer_features,
        dg.AssetKey("model_params"),
        dg.AssetKey("customer_clv"),
        customer_segments,
        customer_churn,
    ],
    kinds={"duckdb"},
    description="Commit point: the snapshot becomes visible in the DuckDB views and the manifest.",
)
def clv_snapshot(context: dg.AssetExecutionContext, clv: ClvConfig) -> dg.MaterializeResult:
    result = pipeline.commit_snapshot(clv, _as_of(context))
    return dg.MaterializeResult(metadata=result.metadata())


ingest_assets = [raw_transactions, validated_transactions]
snapshot_assets = [customer_features, customer_clv, customer_segments, customer_churn, clv_snapshot]
