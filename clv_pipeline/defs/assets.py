"""Assets: thin wrappers that turn a partition key into a date and call one pipeline step.

:func:`build_assets` declares them over the data home's daily partitions.
"""

import queue
import resource
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import date
from typing import Any

import dagster as dg

from clv_pipeline import history, pipeline
from clv_pipeline.config import ClvConfig
from clv_pipeline.defs.checks import (
    GX_CHECK,
    HISTORY_CHECK,
    RAW_ROWS_CHECK,
    gx_markdown,
    merge_checks,
    table_check_results,
    table_check_specs,
)
from clv_pipeline.defs.metadata import dagster_metadata
from clv_pipeline.defs.resources import ClvSettings
from clv_pipeline.errors import DayFailures, InputError, PublishError
from clv_pipeline.locks import partition_lock
from clv_pipeline.pipeline import StepResult
from clv_pipeline.publish.warehouse import Published
from clv_pipeline.schema import TABLES
from clv_pipeline.validation.suite import SUITE_VERSION

# BackfillPolicy.single_run() is what lets one run ingest a whole range of days; it is "beta".
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)

INGEST = "ingest"
SHARDS = "shards"
SHARD_FIT = "clv_fit"
SHARD_ACTIVITY = "clv_activity"
CUSTOMER_POPULATION = "customer_population"
CLV_DESCRIPTION = (
    "Fit and check BG/NBD / Pareto/NBD + Gamma-Gamma, select by holdout error; "
    "per-customer historic, formula, predicted CLV."
)
CATALOG_CHECK = "catalog_serves_the_day"
REPORT_CHECK = "report_written"
SNAPSHOT = "snapshot"
DAY_FAILURE = "day_failure"  # metadata key of the observation recording one ingest day's failure
Event = dg.MaterializeResult | dg.AssetCheckResult | dg.AssetMaterialization | dg.AssetObservation
#: The tables of the valuation step (one multi-asset).
CLV_TABLES = ("model_params", "model_diagnostics", "customer_clv")


def _days(context: dg.AssetExecutionContext) -> list[date]:
    """The partition dates of this run: one, or a whole range in a single-run backfill."""
    return [date.fromisoformat(key) for key in context.partition_keys]


INGEST_LOCK = "ingest"
INGEST_LOCK_WAIT_SECONDS = 3600.0


def _ingest_lock(config: ClvConfig) -> AbstractContextManager[None]:
    """One ingest step per data home at a time: two runs launched together (daemon queue, UI,
    CLI) never catch up the same days at once; the second plans its days after the first."""
    return partition_lock(config.layout, INGEST_LOCK, wait_seconds=INGEST_LOCK_WAIT_SECONDS)


def _ingest_days(context: dg.AssetExecutionContext, config: ClvConfig) -> list[date]:
    """The run's days plus every earlier landing day to catch up first (skipped or late)."""
    days = history.ingest_plan(config, _days(context))
    extra = sorted(set(days) - set(_days(context)))
    if extra:
        context.log.info(  # the CLI announces it itself; the UI shows it in the run log
            f"{context.asset_key.to_user_string()}: catching up {len(extra)} earlier day(s) "
            f"{extra[0]} .. {extra[-1]} (never ingested, late files or the look-back window)"
        )
    return days


class _CaughtUpRecorder:
    """Records the days an ingest step catches up, outside the run's own partitions, as
    materializations of their partitions (so the UI and ``clv status`` see them materialized),
    on a thread of its own while the step goes on with the next days.

    A first run catches up ~730 days per ingest asset, and each event costs milliseconds of
    Python in Dagster's storage (~4.5 ms with the data home's kept-open SQLite connections,
    ``runs/storage.py``; ~13 ms with Dagster's own, a connection per write): recorded after the
    days, that was ~5 s per asset on top of the ingest. Use as a context manager around the
    ingest, passing the recorder as its ``on_published``: leaving the block waits for every queued day (or, on
    an interrupt, drops the ones not yet written) before the step yields anything, so the
    step's own events never race with it.
    """

    def __init__(self, context: dg.AssetExecutionContext) -> None:
        self._context = context
        self._own = set(_days(context))
        self._queue: queue.SimpleQueue[StepResult | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="clv-caught-up", daemon=True)
        #: The days recorded so far.
        self.recorded: set[date] = set()

    def __enter__(self) -> "_CaughtUpRecorder":
        self._thread.start()
        return self

    def __call__(self, result: StepResult) -> None:
        self._queue.put(result)

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None and not issubclass(kind, DayFailures):
            self._stop.set()  # an interrupt or a crash: do not hold the step up
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and kind is None:
            raise self._error

    def _drain(self) -> None:
        while (result := self._queue.get()) is not None:
            if self._stop.is_set() or self._error is not None:
                continue
            try:
                for published in result.published:
                    if published.day not in self._own and published.day not in self.recorded:
                        self._context.log_event(
                            _day_materialization(self._context, published, lean=True)
                        )
                        self.recorded.add(published.day)
            except Exception as exc:  # re-raised by __exit__ on the step's thread
                self._error = exc


def _day_materialization(
    context: dg.AssetExecutionContext, published: Published, *, lean: bool = False
) -> dg.AssetMaterialization:
    """The materialization of ``published``'s day. ``lean``: row count and path only, for the
    days a run catches up (a first run records ~730 per ingest asset; Dagster's SQLite storage
    costs milliseconds per event, and the column schema and preview, the same as on the run's
    own partition, were most of each event's bytes)."""
    values = {**published.metadata(), "caught_up_by_run_for": context.partition_key_range.end}
    if lean:
        values.pop("preview", None)
    return dg.AssetMaterialization(
        asset_key=context.asset_key,
        partition=published.day.isoformat(),
        metadata=dagster_metadata(values, None if lean else published.table),
    )


def _days_failed(
    context: dg.AssetExecutionContext, exc: DayFailures, recorded: set[date]
) -> Iterator[Event]:
    """Before an ingest step fails on some days: every published day (the run's own ones too)
    not ``recorded`` yet as a materialization of its partition, and each failed day's own error
    as an observation of its partition (``clv status`` shows it; a later materialization
    supersedes it)."""
    for result in exc.results:
        for published in result.published:
            if published.day not in recorded:
                yield _day_materialization(context, published)
    for day, error in exc.failures.items():
        yield dg.AssetObservation(
            asset_key=context.asset_key,
            partition=day.isoformat(),
            metadata={DAY_FAILURE: error, "run_for": context.partition_key_range.end},
        )


def _history_check(gaps: list[history.Gap]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=HISTORY_CHECK,
        passed=not gaps,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "missing_or_stale_days": len(gaps),
            "days": "\n".join(f"{g.day}: {g.why}" for g in gaps[:50]) or "none",
        },
    )


def _as_of(context: dg.AssetExecutionContext) -> date:
    return date.fromisoformat(context.partition_key)


def _summary(context: dg.AssetExecutionContext, results: list[StepResult]) -> dict[str, Any]:
    rows = sum(p.rows for r in results for p in r.published)
    if len(results) == 1:
        return results[0].metadata()
    context.log.info(f"{context.asset_key.to_user_string()}: {len(results)} days, {rows} rows")
    return {"days": len(results), "rows": rows}


IO_RETRIES = 2


def _published(
    context: dg.AssetExecutionContext, asset: str, step: Callable[[], StepResult]
) -> Iterator[Event]:
    """Run a one-table step; report its audits as asset checks, also when they fail.

    A write that failed on I/O (disk full, permissions, a flaky mount) is retried twice with
    exponential backoff (1 s, 2 s); a failed audit is not retried: the data would not change.
    """
    try:
        result = step()
    except PublishError as exc:
        if exc.checks:
            yield from table_check_results(exc.table or asset, exc.checks)
            raise
        raise dg.RetryRequested(
            max_retries=IO_RETRIES, seconds_to_wait=2**context.retry_number
        ) from exc
    for published in result.published:
        own = published.table == asset
        yield dg.MaterializeResult(
            asset_key=published.table,
            metadata={
                **dagster_metadata(
                    result.metadata() if own else published.metadata(), published.table
                ),
                **({PEAK_RSS: _process_peak()} if own else {}),
            },
            check_results=table_check_results(published.table, published.checks),
        )


#: The step process's peak RSS so far (MB): its own with a process per step (sizing workers).
PEAK_RSS = "process_peak_rss_mb"


def _process_peak() -> dg.MetadataValue:
    return dg.MetadataValue.float(
        round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    )


def _snapshot_asset(
    partitions: dg.PartitionsDefinition,
    name: str,
    step: Callable[[ClvConfig, date], StepResult],
    deps: list[Any],
    description: str,
) -> dg.AssetsDefinition:
    """A snapshot asset: one table per as-of date, published through its audits."""

    @dg.asset(
        name=name,
        group_name=SNAPSHOT,
        partitions_def=partitions,
        deps=deps,
        kinds={"polars", "parquet"},
        check_specs=table_check_specs(name),
        description=description,
    )
    def _asset(context: dg.AssetExecutionContext, clv: ClvSettings) -> Iterator[Event]:
        yield from _published(context, name, lambda: step(clv, _as_of(context)))

    return _asset


def _shard_asset(
    partitions: dg.PartitionsDefinition,
    name: str,
    step: Callable[[ClvConfig, date], StepResult],
    deps: list[Any],
    description: str,
) -> dg.AssetsDefinition:
    """A step of the sharded valuation: internal files under ``.work/shards/`` (no table, so no
    table checks); its own Dagster step, run wherever the executor puts it."""

    @dg.asset(
        name=name,
        group_name=SHARDS,
        partitions_def=partitions,
        deps=deps,
        kinds={"numpy", "parquet"},
        description=description,
    )
    def _asset(context: dg.AssetExecutionContext, clv: ClvSettings) -> dg.MaterializeResult:
        result = step(clv, _as_of(context))
        return dg.MaterializeResult(
            metadata={**dagster_metadata(result.stats), PEAK_RSS: _process_peak()}
        )

    return _asset


def _of_shard(
    step: Callable[[ClvConfig, date, int], StepResult], shard: int
) -> Callable[[ClvConfig, date], StepResult]:
    def run(config: ClvConfig, as_of: date) -> StepResult:
        return step(config, as_of, shard)

    return run


def _per_shard(
    partitions: dg.PartitionsDefinition,
    shards: int,
    name: str,
    step: Callable[[ClvConfig, date, int], StepResult],
    deps: list[Any],
    description: str,
) -> list[dg.AssetsDefinition]:
    """One :func:`_shard_asset` per shard ``k`` (none with one shard): ``name`` and
    ``description`` are formatted with ``k`` and ``shards``."""
    return [
        _shard_asset(
            partitions,
            name.format(k=k),
            _of_shard(step, k),
            deps,
            description.format(k=k, shards=shards),
        )
        for k in range(shards)
        if shards > 1
    ]


def _sharded_valuation(
    partitions: dg.PartitionsDefinition, shards: int, features: Any, validated: Any
) -> list[dg.AssetsDefinition]:
    """``clv_shard_<k>_inputs`` (map) -> ``clv_fit`` (reduce) -> ``clv_shard_<k>_values``
    (map, also after ``clv_activity``); ``customer_clv`` gathers them (docs/scaling.md)."""
    inputs = _per_shard(
        partitions,
        shards,
        "clv_shard_{k}_inputs",
        pipeline.build_shard_inputs,
        [features],
        "Shard {k} of {shards}: its customers' weighted unique (frequency, recency, T) "
        "patterns and repeat customers' spend, the fit's sufficient statistics.",
    )
    fit = _shard_asset(
        partitions,
        SHARD_FIT,
        pipeline.fit_shards,
        [*inputs, validated],  # the holdout selection reads the history
        "The models fitted, checked and selected once over every shard's statistics (the "
        "unsharded fit), and their predictions per unique pattern.",
    )
    activity = _shard_asset(
        partitions,
        SHARD_ACTIVITY,
        pipeline.build_shard_activity,
        [features, validated],
        "Who bought in this churn window and the previous one, and their window revenue: the "
        "formula CLV's inputs (a history scan, beside the fit).",
    )
    values = _per_shard(
        partitions,
        shards,
        "clv_shard_{k}_values",
        pipeline.value_shard,
        [fit, activity],
        "Shard {k} of {shards}: its customers' customer_clv rows from the shared fit.",
    )
    return [*inputs, fit, activity, *values]


def _sharded_customers(
    partitions: dg.PartitionsDefinition, shards: int, tables: list[Any], backtest: Any
) -> list[dg.AssetsDefinition]:
    """``customer_shard_<k>_counts`` (map) -> ``customer_population`` (reduce) ->
    ``customer_shard_<k>_rows`` (map); ``customer_segments`` and ``customer_churn`` gather them
    (docs/scaling.md)."""
    counts = _per_shard(
        partitions,
        shards,
        "customer_shard_{k}_counts",
        pipeline.build_customer_shard_counts,
        tables,
        "Shard {k} of {shards}: its customers' RFM value counts, interval counts and "
        "segment values, its part of the population they are compared with.",
    )
    population = _shard_asset(
        partitions,
        CUSTOMER_POPULATION,
        pipeline.build_customer_population,
        counts,
        "The snapshot's population from every shard's counts (RFM scores of each distinct "
        "value, the median rhythm, the value ranks), once.",
    )
    rows = _per_shard(
        partitions,
        shards,
        "customer_shard_{k}_rows",
        pipeline.build_customer_shard_rows,
        [population, backtest],  # the churn basis reads the day's backtest
        "Shard {k} of {shards}: its customers' customer_segments and customer_churn rows "
        "against the population.",
    )
    return [*counts, population, *rows]


def build_assets(
    partitions: dg.PartitionsDefinition, *, shards: int = 1
) -> list[dg.AssetsDefinition]:
    """Every asset of the pipeline over ``partitions`` (ingest group first, then snapshot);
    with ``shards`` > 1 every per-customer stage runs as one step per shard plus its reduce."""

    @dg.asset(
        group_name=INGEST,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"polars", "parquet"},
        check_specs=[
            *table_check_specs("raw_transactions"),
            dg.AssetCheckSpec(
                RAW_ROWS_CHECK, asset="raw_transactions", description="Rows arrived."
            ),
        ],
        description="The partition day's rows as delivered to the landing folder (strings).",
    )
    def raw_transactions(context: dg.AssetExecutionContext, clv: ClvSettings) -> Iterator[Event]:
        def pulled(i: int, day: date) -> None:
            if i % 100 == 0:
                context.log.info(f"raw_transactions: {i} days pulled")

        recorder = _CaughtUpRecorder(context)
        try:
            with _ingest_lock(clv), recorder:
                results = pipeline.pull_raw_days(
                    clv, _ingest_days(context, clv), on_day=pulled, on_published=recorder
                )
        except DayFailures as exc:
            yield from _days_failed(context, exc, recorder.recorded)
            raise
        empty = [str(r.published[0].day) for r in results if r.published[0].rows == 0]
        yield dg.MaterializeResult(
            metadata=dagster_metadata(_summary(context, results), "raw_transactions"),
            check_results=[
                *table_check_results(
                    "raw_transactions", merge_checks(r.published[0].checks for r in results)
                ),
                dg.AssetCheckResult(
                    check_name=RAW_ROWS_CHECK,
                    passed=not empty,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"empty_days": ", ".join(empty[:20]) or "none"},
                ),
            ],
        )

    @dg.asset(
        group_name=INGEST,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[raw_transactions],
        kinds={"great_expectations", "polars", "parquet"},
        check_specs=[
            *table_check_specs("validated_transactions"),
            dg.AssetCheckSpec(
                GX_CHECK,
                asset="validated_transactions",
                blocking=True,
                description=f"GX suite v{SUITE_VERSION}: share of rejected rows within the limit.",
            ),
        ],
        description="Typed, normalised, deduplicated transactions; bad rows to quarantine/.",
    )
    def validated_transactions(
        context: dg.AssetExecutionContext, clv: ClvSettings
    ) -> Iterator[Event]:
        recorder = _CaughtUpRecorder(context)
        try:
            with _ingest_lock(clv), recorder:
                results = pipeline.validate_days(
                    clv, _ingest_days(context, clv), on_published=recorder
                )
        except InputError as exc:
            if isinstance(exc, DayFailures):
                yield from _days_failed(context, exc, recorder.recorded)
            yield dg.AssetCheckResult(
                check_name=GX_CHECK, passed=False, metadata={"failure": str(exc)[:10_000]}
            )
            raise
        suite: list[dict[str, Any]] = next(
            (r.stats["gx_suite"] for r in reversed(results) if r.stats["gx_suite"]), []
        )
        rejected = sum(int(r.stats["rows_quarantined"]) for r in results)
        yield dg.MaterializeResult(
            metadata=dagster_metadata(
                {
                    k: v
                    for k, v in _summary(context, results).items()
                    if k not in {"gx_suite", "day"}
                },
                "validated_transactions",
            ),
            check_results=[
                *table_check_results(
                    "validated_transactions",
                    merge_checks(p.checks for r in results for p in r.published),
                ),
                dg.AssetCheckResult(
                    check_name=GX_CHECK,
                    passed=True,
                    metadata={
                        "suite_version": SUITE_VERSION,
                        "rows_quarantined": rejected,
                        "expectations": dg.MetadataValue.md(gx_markdown(suite)),
                    },
                ),
            ],
        )

    state_shards = _per_shard(
        partitions,
        shards,
        "state_shard_{k}",
        pipeline.build_state_shard,
        [validated_transactions],
        "Shard {k} of {shards}: its customers' customer_state rows (their rows of the reused "
        "state and of the new days, or of the whole history) and customer_features rows.",
    )
    build_state = pipeline.publish_sharded_state if state_shards else pipeline.build_customer_state
    gathered = f" Gathered from {shards} shards." if state_shards else ""

    @dg.asset(
        group_name=SNAPSHOT,
        partitions_def=partitions,
        deps=[validated_transactions, *state_shards],
        kinds={"polars", "parquet"},
        check_specs=[
            dg.AssetCheckSpec(
                HISTORY_CHECK,
                asset="customer_state",
                blocking=True,
                description="Every landed day up to the partition is validated: a snapshot "
                "never misses a day (skipped run, late file, failed validation).",
            ),
            *table_check_specs("customer_state"),
        ],
        description="Running per-customer summary: yesterday's state + today's validated rows "
        "(full recompute when inputs changed or every CLV_STATE_FULL_EVERY_DAYS)." + gathered,
    )
    def customer_state(context: dg.AssetExecutionContext, clv: ClvSettings) -> Iterator[Event]:
        as_of = _as_of(context)
        gaps = history.history_gaps(clv, as_of)
        yield _history_check(gaps)
        if gaps:
            raise InputError(history.describe_gaps(clv, as_of, gaps))
        yield from _published(context, "customer_state", lambda: build_state(clv, as_of))

    customer_features = _snapshot_asset(
        partitions,
        "customer_features",
        pipeline.publish_sharded_features if state_shards else pipeline.build_customer_features,
        [customer_state, *state_shards],
        "Per-customer frequency, recency, T (days) and spend as of the partition date." + gathered,
    )

    sharded = (
        _sharded_valuation(partitions, shards, customer_features, validated_transactions)
        if shards > 1
        else []
    )
    build_clv = pipeline.publish_sharded_clv if sharded else pipeline.build_customer_clv

    @dg.multi_asset(
        group_name=SNAPSHOT,
        partitions_def=partitions,
        specs=[
            # the holdout selection reads the validated history (calibration/holdout split)
            dg.AssetSpec(
                name,
                deps=[a.key for a in sharded[shards + 2 :]]
                if sharded
                else ["customer_features", validated_transactions],
                kinds={"scipy", "parquet"},
                description=TABLES[name].description,  # one description per table
            )
            for name in CLV_TABLES
        ],
        check_specs=[spec for name in CLV_TABLES for spec in table_check_specs(name)],
        description=CLV_DESCRIPTION + (f" Gathered from {shards} shards." if sharded else ""),
    )
    def customer_clv(context: dg.AssetExecutionContext, clv: ClvSettings) -> Iterator[Event]:
        yield from _published(context, "customer_clv", lambda: build_clv(clv, _as_of(context))[0])

    CLV = dg.AssetKey("customer_clv")
    BACKTEST = dg.AssetKey("model_backtest")
    customers_sharded = (
        _sharded_customers(partitions, shards, [customer_features, CLV, customer_state], BACKTEST)
        if shards > 1
        else []
    )
    customer_segments = _snapshot_asset(
        partitions,
        "customer_segments",
        pipeline.publish_sharded_segments if shards > 1 else pipeline.build_customer_segments,
        # the lifecycle stage is banded on the churn probability, whose basis needs the backtest
        [customer_features, CLV, customer_state, BACKTEST, *customers_sharded[shards + 1 :]],
        "RFM scores and segments, value tier, lifecycle stage, micro-segment per customer."
        + gathered,
    )
    customer_churn = _snapshot_asset(
        partitions,
        "customer_churn",
        pipeline.publish_sharded_churn if shards > 1 else pipeline.build_customer_churn,
        # the day's backtest says whether the model ranks churn (purchases_auc), see churn_basis
        [customer_features, CLV, BACKTEST, *customers_sharded[shards + 1 :]],
        "Churn probability (model or recency basis), percentile, risk band, days overdue and "
        "value at risk per customer." + gathered,
    )
    segment_migration = _snapshot_asset(
        partitions,
        "segment_migration",
        pipeline.build_segment_migration,
        [customer_segments],
        "Customers and value moving between segments, tiers and stages since the last snapshot.",
    )
    cohort_shards = _per_shard(
        partitions,
        shards,
        "cohort_shard_{k}",
        pipeline.build_cohort_shard,
        [validated_transactions, CLV],
        "Shard {k} of {shards}: its customers' cohort state (a chain of its own) and their "
        "sums per cohort (members, fixed-point CLV and revenue sums, active customers).",
    )
    cohorts = _snapshot_asset(
        partitions,
        "cohorts",
        pipeline.publish_sharded_cohorts if cohort_shards else pipeline.build_cohorts,
        [validated_transactions, CLV, *cohort_shards],
        "Acquisition-month x channel cohorts: retention, revenue per customer, average CLV."
        + gathered,
    )
    unit_economics = _snapshot_asset(
        partitions,
        "unit_economics",
        pipeline.build_unit_economics,
        [customer_features, CLV],
        "CAC, CLV - CAC and CLV:CAC per channel and cohort (needs landing/customers + spend).",
    )
    kpis = _snapshot_asset(
        partitions,
        "kpis",
        pipeline.build_kpis,
        [customer_features, CLV, customer_segments, customer_churn],
        "One row of KPIs per as-of date with the change against the previous snapshot.",
    )

    @dg.multi_asset(
        group_name=SNAPSHOT,
        partitions_def=partitions,
        specs=[
            # reads the validated history and the state (its customer count): never ahead of
            # the history check on customer_state
            dg.AssetSpec(
                name,
                deps=[validated_transactions, customer_state],
                kinds={"scipy", "parquet"},
                description=TABLES[name].description,
            )
            for name in ("model_backtest", "backtest_deciles", "backtest_calibration")
        ],
        check_specs=[
            spec
            for name in ("model_backtest", "backtest_deciles", "backtest_calibration")
            for spec in table_check_specs(name)
        ],
        description="Fit on history before as_of - holdout, score the holdout vs a naive baseline.",
    )
    def model_backtest(context: dg.AssetExecutionContext, clv: ClvSettings) -> Iterator[Event]:
        yield from _published(
            context, "model_backtest", lambda: pipeline.build_model_backtest(clv, _as_of(context))
        )

    SNAPSHOT_TABLE_ASSETS = [
        customer_segments,
        customer_churn,
        segment_migration,
        cohorts,
        unit_economics,
        kpis,
    ]

    @dg.asset(
        group_name=SNAPSHOT,
        partitions_def=partitions,
        deps=[
            customer_state,
            customer_features,
            dg.AssetKey("model_params"),
            dg.AssetKey("model_diagnostics"),
            CLV,
            *SNAPSHOT_TABLE_ASSETS,
            model_backtest,
        ],
        kinds={"duckdb"},
        check_specs=[
            dg.AssetCheckSpec(
                CATALOG_CHECK,
                asset="clv_snapshot",
                blocking=True,
                description="A new read-only session sees the day in every snapshot view, with "
                "the rows of its committed file.",
            )
        ],
        description="Commit point: the snapshot becomes visible in the DuckDB views and the manifest.",
    )
    def clv_snapshot(context: dg.AssetExecutionContext, clv: ClvSettings) -> dg.MaterializeResult:
        result = pipeline.commit_snapshot(clv, _as_of(context))
        problems = result.stats.pop("catalog_problems")
        return dg.MaterializeResult(
            metadata=dagster_metadata(result.metadata()),
            check_results=[
                dg.AssetCheckResult(
                    check_name=CATALOG_CHECK,
                    passed=not problems,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={"problems": "\n".join(problems) or "none"},
                )
            ],
        )

    @dg.asset(
        group_name=SNAPSHOT,
        partitions_def=partitions,
        deps=[clv_snapshot],
        kinds={"plotly", "html"},
        check_specs=[
            dg.AssetCheckSpec(
                REPORT_CHECK,
                asset="report",
                description="The report file was written for the partition's date.",
            )
        ],
        description="HTML report (warehouse/reports/as_of=D/report.html; plotly.js shared in reports/_assets/): KPIs, CLV, segments, churn, cohorts, backtest.",
    )
    def report(context: dg.AssetExecutionContext, clv: ClvSettings) -> dg.MaterializeResult:
        built = pipeline.build_report(clv, _as_of(context))
        size = built.path.stat().st_size if built.path.exists() else 0
        dated = size > 0 and str(_as_of(context)) in built.path.read_text(errors="replace")
        return dg.MaterializeResult(
            check_results=[
                dg.AssetCheckResult(
                    check_name=REPORT_CHECK,
                    passed=dated,
                    metadata={"bytes": size, "mentions_as_of": dated},
                )
            ],
            metadata={
                "path": dg.MetadataValue.path(str(built.path)),
                "open": dg.MetadataValue.url(built.path.as_uri()),
                **{k: v for k, v in built.headline.items() if v is not None},
            },
        )

    ingest_assets = [raw_transactions, validated_transactions]
    snapshot_assets = [
        *state_shards,
        customer_state,
        customer_features,
        *sharded,
        customer_clv,
        *customers_sharded,
        *cohort_shards,
        *SNAPSHOT_TABLE_ASSETS,
        model_backtest,
        clv_snapshot,
        report,
    ]
    return [*ingest_assets, *snapshot_assets]
