"""One function per asset: read inputs from the data home, call the pure stage, publish.

Dagster assets and the CLI both call these, so neither carries logic of its own. Each function
takes the typed :class:`~clv_pipeline.config.ClvConfig` and an explicit date.
"""

from __future__ import annotations

import functools
import json
import logging
import pickle  # noqa: S403 - the sharded fit's own file (.work/shards), written by fit_shards
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from clv_pipeline.config import ClvConfig
from clv_pipeline.errors import DayFailures, InputError, PublishError
from clv_pipeline.faults import failpoint
from clv_pipeline.features.customers import (
    apply_refund_ties,
    features_from_state,
    merge_states,
    summarise_transactions,
)
from clv_pipeline.features.months import FOLDER as MONTHS_FOLDER
from clv_pipeline.features.months import (
    CohortState,
    collect_state,
    plan_months,
    summarise_firsts,
    summarise_state,
)
from clv_pipeline.features.months import merge_state as merge_month_state
from clv_pipeline.features.months import read_state as read_month_state
from clv_pipeline.features.months import shard_root as months_shard_root
from clv_pipeline.features.months import write_state as write_month_state
from clv_pipeline.features.periods import rates_from_totals, window_activity, window_totals
from clv_pipeline.features.state import META_KEY as STATE_META_KEY
from clv_pipeline.features.state import StatePlan, fingerprints, plan_state
from clv_pipeline.features.window_totals import read_totals, write_totals
from clv_pipeline.history import describe_gaps, history_gaps
from clv_pipeline.models.base import Patterns
from clv_pipeline.models.clv import FitInputs, ModelFit, customer_arrays, fit_models
from clv_pipeline.models.diagnostics import DROPOUT_CHECK, GROUP_FIT_CHECK
from clv_pipeline.models.seasonality import seasonality_diagnostics
from clv_pipeline.parquet import (
    IO_WORKERS,
    iter_in_threads,
    map_in_threads,
    read_footer,
    replace_atomically,
    stored_digest,
)
from clv_pipeline.paths import PART_FILE, Layout
from clv_pipeline.publish.catalog import (
    committed_file,
    complete_dates,
    mark_complete,
    read_manifest,
    upgrade_warehouse,
    verify_snapshot,
)
from clv_pipeline.publish.files import write_parquet_atomic
from clv_pipeline.publish.warehouse import (
    Published,
    preview_markdown,
    publish_table,
    read_published,
    scan_published,
)
from clv_pipeline.report.backtest import calibration_holdout, in_sample, run_backtest
from clv_pipeline.report.html import (
    REPORT_COLUMNS,
    UnitEconomicsInputs,
    publish_report,
    render_report,
    self_contained_path,
    write_report,
)
from clv_pipeline.schema import (
    QUARANTINE_TRANSACTIONS,
    TABLES,
    conform,
    sort_rows,
    with_added_columns,
)
from clv_pipeline.segments.churn import CLV_COLUMNS as CHURN_CLV_COLUMNS
from clv_pipeline.segments.churn import ChurnBasis, choose_churn_basis, rank_churn, score_churn
from clv_pipeline.segments.churn import build_customer_churn as build_churn_table
from clv_pipeline.segments.cohorts import (
    CohortParts,
    cohort_parts,
    cohorts_from_parts,
    cohorts_from_state,
    first_purchases,
    merge_cohort_parts,
)
from clv_pipeline.segments.kpis import build_kpis as build_kpis_table
from clv_pipeline.segments.lifecycle import (
    FEATURE_COLUMNS,
    GAP_COLUMNS,
    LifecycleRules,
    purchase_gaps_from_state,
    side_by_side,
)
from clv_pipeline.segments.migration import build_segment_migration as build_migration_table
from clv_pipeline.segments.population import (
    COUNT_PARTS,
    Population,
    merge_population,
    shard_counts,
)
from clv_pipeline.segments.tiers import VALUE_COLUMNS as SEGMENT_VALUE_COLUMNS
from clv_pipeline.segments.tiers import build_customer_segments as build_segments_table
from clv_pipeline.segments.unit_economics import build_unit_economics as build_unit_economics_table
from clv_pipeline.shards import in_shard
from clv_pipeline.sources.base import LandingSource, TransactionSource
from clv_pipeline.sources.landing import (
    ACQUISITION_CHANNEL,
    FIRST_CHANNEL,
    check_import_timezone,
    read_customer_attribute,
    read_delivered_file,
    read_marketing_inputs,
    undated_reason,
)
from clv_pipeline.sources.object_store import ObjectStoreSource
from clv_pipeline.sources.sql import SqlSource
from clv_pipeline.validation.parse import event_date, parse_timestamps
from clv_pipeline.validation.rules import ValidationRules
from clv_pipeline.validation.suite import SuiteResult
from clv_pipeline.validation.suite import warm_up as warm_up_validation
from clv_pipeline.validation.transactions import (
    DAY,
    DUPLICATE_ID_REASON,
    DayResult,
    ValidationResult,
    empty_day_result,
    validate_transactions,
)
from clv_pipeline.valuation import (
    ALL_GROUPS,
    DESCRIBE_COLUMNS,
    ModelSummary,
    Valuation,
    describe_fit,
    fit_groups,
    formula_basis,
    holdout_split,
    run_valuation,
    selected_purchase_model,
    value_customers,
    value_customers_by_group,
)

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepResult:
    """What a step published plus figures for the run log / Dagster metadata."""

    published: list[Published]
    stats: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """Dagster metadata: the first table's row count, path and preview plus the stats."""
        first = self.published[0].metadata() if self.published else {}
        stats = {k: v for k, v in self.stats.items() if k not in {"gx_suite", "day"}}
        return {**first, **stats}


def transaction_source(config: ClvConfig) -> TransactionSource:
    """The configured source of raw transactions (``[source] kind``)."""
    settings = config.source
    if settings.kind == "s3":
        s3 = settings.s3
        if not s3.bucket:
            raise InputError(
                "source kind s3 needs a bucket: set [source.s3] bucket in clv.toml or CLV_S3_BUCKET"
            )
        return ObjectStoreSource(
            bucket=s3.bucket,
            prefix=s3.prefix,
            pattern=s3.pattern or None,
            endpoint_url=s3.endpoint_url or None,
            options=config.read_options(),
        )
    if settings.kind == "postgres":
        pg = settings.postgres
        return SqlSource(
            url_env=pg.url_env,
            table=pg.table or None,
            query=pg.query or None,
            timestamp_column=pg.timestamp_column or None,
            options=config.read_options(),
            batch_size=pg.batch_size,
        )
    return LandingSource(config.layout, options=config.read_options())


def pull_raw_transactions(config: ClvConfig, day: date) -> StepResult:
    """Pull the day from the configured source (as delivered, strings); publish ``raw_transactions``."""
    source = transaction_source(config)
    raw = source.pull_day(day, timezone=config.timezone)
    files = raw.get_column("_source_file").n_unique() if raw.height else 0
    published = publish_table(config.layout, "raw_transactions", raw, day=day)
    return StepResult([published], {"files": files, "source": source.describe()})


def pull_raw_days(
    config: ClvConfig,
    days: list[date],
    *,
    on_day: Callable[[int, date], None] | None = None,
    on_published: Callable[[StepResult], None] | None = None,
) -> list[StepResult]:
    """:func:`pull_raw_transactions` for each of ``days``; a day that cannot be read (a bad file,
    a failed audit) does not stop the others. ``on_published`` gets each published day's result
    as soon as it is published, in day order; ``on_day`` each day's number and date.

    Raises
    ------
    clv_pipeline.errors.DayFailures
        After every other day was published: each failed day with its own error.
    """
    landing = config.source.kind == "landing"
    if landing:  # a timezone change needs a re-import, not a rerun
        check_import_timezone(config.layout, config.timezone)
    if len(days) >= WARM_UP_DAYS:
        # a catch-up: import GX (seconds of Python) on a spare core while the days are read
        threading.Thread(target=warm_up_validation, name="clv-gx-import", daemon=True).start()
    results: list[StepResult] = []
    failures: dict[date, str] = {}

    def pull(day: date) -> StepResult | Exception:
        try:
            return pull_raw_transactions(config, day)
        except (InputError, PublishError) as exc:
            return exc

    # local files: days are read and published by a few threads (file I/O, fsync and polars
    # release the GIL; a first run catching up two years is ~730 small files); other sources
    # (a database connection, S3 listings) are pulled one day at a time
    outcomes = iter_in_threads(pull, days, workers=IO_WORKERS if landing else 1)
    for i, (day, outcome) in enumerate(zip(days, outcomes, strict=True), start=1):
        if isinstance(outcome, PublishError) and not outcome.checks:
            raise outcome  # I/O (disk full, permissions): every day would fail the same way
        if isinstance(outcome, Exception):
            failures[day] = str(outcome)
        else:
            results.append(outcome)
            if on_published is not None:
                on_published(outcome)
        if on_day is not None:
            on_day(i, day)
    if failures:
        raise DayFailures("to load", failures, total=len(days), results=results)
    return results


MAX_BATCH_ROWS = 2_000_000  # rows validated per GX call when a run covers many days
WARM_UP_DAYS = 30  # pulling this many days leaves time to import GX alongside


def validate_days(
    config: ClvConfig,
    days: list[date],
    *,
    on_published: Callable[[StepResult], None] | None = None,
) -> list[StepResult]:
    """Validate the raw rows of ``days`` and publish each day's clean rows and quarantine file.

    Days are validated in batches (GX costs about a second per call, whatever the size). A day
    fails, and nothing of it is published, when it has no rows and ``on_empty_day`` is "fail", or
    when more than ``max_bad_row_share`` of its rows are quarantined; the other days are published
    and one :class:`~clv_pipeline.errors.DayFailures` names each failed day with its own
    error at the end (its ``results`` are the published days). ``on_published`` gets each day's
    result as soon as the day is published (a batch of days at a time).
    """
    failpoint("validate:start")
    layout = config.layout
    rules = config.validation_rules()
    results: list[StepResult] = []
    failures: dict[date, str] = {}
    batch: list[pl.DataFrame] = []
    batch_rows = 0

    def done(step: StepResult, failure: str | None) -> None:
        results.append(step)
        if failure:
            failures[step.stats["day"]] = failure
        elif on_published is not None:
            on_published(step)

    def record(result: DayResult, suite: list[dict[str, Any]]) -> None:
        done(*_publish_validated(config, rules, result, suite))

    def flush() -> None:
        nonlocal batch, batch_rows
        if not batch:
            return
        raw = pl.concat(batch, how="vertical")
        in_batch = sorted(raw.get_column(DAY).unique().to_list())
        outcome = validate_transactions(raw, rules=rules, earlier=_ids_outside(layout, in_batch))
        suite = outcome.suite.summary()
        published = map_in_threads(
            lambda day: _publish_validated(config, rules, outcome.day(day), suite),
            in_batch,
            workers=IO_WORKERS,
        )
        for step, failure in published:
            done(step, failure)
        batch, batch_rows = [], 0

    def add(day: date, raw: pl.DataFrame | None) -> None:
        nonlocal batch_rows
        if raw is None:
            failures[day] = f"raw_transactions {day} is not published; run raw_transactions first"
            return
        if raw.is_empty():
            record(empty_day_result(day), [])
            return
        batch.append(raw.with_columns(pl.lit(day).alias(DAY)))
        batch_rows += raw.height
        if batch_rows >= MAX_BATCH_ROWS:
            flush()

    def read_raw(day: date) -> pl.DataFrame | None:
        return read_published(layout, "raw_transactions", day)

    # a catch-up reads hundreds of day files: a few at a time on threads (decoding parquet
    # releases the GIL), the next days while this thread validates and publishes a batch, a
    # bounded number ahead so memory stays that of about one batch. (Reading a batch's files in
    # one multi-file read costs a third of the CPU, but it cannot overlap the validation: the
    # first run's validated step was ~1.5 s slower with it, measured.)
    ahead = 4 * IO_WORKERS
    for day, raw in zip(
        days, iter_in_threads(read_raw, days, workers=IO_WORKERS, ahead=ahead), strict=True
    ):
        add(day, raw)
    flush()
    ordered = sorted(results, key=lambda r: r.stats["day"])
    if failures:
        published = [r for r in ordered if r.published]
        raise DayFailures("validation", failures, total=len(days), results=published)
    return ordered


def _ids_outside(layout: Layout, days: list[date]) -> pl.LazyFrame:
    """``transaction_id, event_date`` of validated days other than ``days`` (re-delivery check)."""
    return (
        scan_published(layout, "validated_transactions")
        .select("transaction_id", "event_date")
        .filter(~pl.col("event_date").is_in(days))
    )


def _publish_validated(
    config: ClvConfig, rules: ValidationRules, result: DayResult, suite: list[dict[str, Any]]
) -> tuple[StepResult, str | None]:
    """Write the day's quarantine file, apply the partition-level rules, publish clean rows."""
    layout = config.layout
    day = result.day
    quarantine_path = layout.quarantine_file("transactions", day)
    if result.quarantine.height:
        write_parquet_atomic(result.quarantine, quarantine_path)
    else:
        quarantine_path.unlink(missing_ok=True)  # a rerun with fixed input clears old rejects
    stats: dict[str, Any] = {"day": day, **result.stats, "gx_suite": suite}
    if result.quarantine.height:
        stats["quarantine_path"] = str(quarantine_path)
        stats["quarantine_reasons"] = result.reasons()
    failure = partition_failure(result, rules, quarantine_path=quarantine_path)
    if failure is None and result.stats["rows_in"] == 0:
        stats["warning"] = f"no rows delivered for {day} ({layout.landing_day(day)})"
    if failure:
        stats["failure"] = failure
        return StepResult([], stats), failure
    published = publish_table(layout, "validated_transactions", result.clean, day=day)
    return StepResult([published], stats), None


def partition_failure(
    result: DayResult, rules: ValidationRules, *, quarantine_path: Any
) -> str | None:
    """Why the whole day must fail (None when it may be published)."""
    rows = result.stats["rows_in"]
    if rows == 0:
        if rules.on_empty_day == "fail":
            return (
                f"{result.day}: no rows delivered (CLV_ON_EMPTY_DAY=fail); check the source or set "
                "CLV_ON_EMPTY_DAY=warn"
            )
        return None
    bad = result.stats["rows_quarantined"]
    if bad / rows <= rules.max_bad_row_share or bad <= rules.max_bad_rows:
        return None
    examples = result.examples(limit=2)
    top = "; ".join(
        f"{reason} x{count} (e.g. {', '.join(examples.get(reason, []))})"
        for reason, count in list(result.reasons().items())[:3]
    )
    return (
        f"{result.day}: {bad} of {rows} rows ({bad / rows:.1%}) failed validation, more than "
        f"both CLV_MAX_BAD_ROW_SHARE={rules.max_bad_row_share:.0%} and CLV_MAX_BAD_ROWS="
        f"{rules.max_bad_rows}; nothing published for this day. {top}.{order_line_hint(result)} "
        f"All rejected rows: {quarantine_path}"
    )


def order_line_hint(result: DayResult) -> str:
    """A hint when ids repeat with different values: the file is probably one row per line."""
    repeated = result.reasons().get(DUPLICATE_ID_REASON, 0)
    if repeated and repeated * 4 >= result.stats["rows_quarantined"]:
        return (
            f" {repeated} rows share a transaction_id with other values: the file looks like "
            "order lines (one row per product); import it with --order-id <order column> "
            "(and --amount 'Quantity * UnitPrice' when lines have a unit price)."
        )
    return ""


def build_customer_state(config: ClvConfig, as_of: date) -> StepResult:
    """``customer_state[as_of]`` from the latest reusable state plus the days after it.

    Falls back to a full recompute over the validated history (see :mod:`~clv_pipeline.features.state`).
    """
    plan = plan_customer_state(config, as_of)
    frame = _summarised_state(config, plan)
    published = publish_table(
        config.layout, "customer_state", frame, day=as_of, file_metadata=plan.file_metadata()
    )
    return StepResult([published], _state_stats(plan, frame.height))


def _state_stats(plan: StatePlan, customers: int) -> dict[str, Any]:
    return {
        "mode": plan.mode,
        "reason": plan.reason,
        "days_read": len(plan.days),
        "customers": customers,
    }


def plan_customer_state(config: ClvConfig, as_of: date) -> StatePlan:
    """How ``customer_state[as_of]`` is built: the latest reusable state and the days after it,
    from before the earliest purchase a new tied refund cancels (else a full recompute)."""
    layout = config.layout
    upgrade_warehouse(layout)  # a data home written before the snapshot=D folders
    plan = plan_state(
        layout,
        as_of,
        full_every_days=config.scale.state_full_every_days,
        rebuild=config.scale.state_rebuild,
    )
    refunded = _first_refunded_day(layout, plan)
    if refunded is not None:  # a new refund cancels an older purchase: fold its day in again
        plan = plan_state(
            layout,
            as_of,
            full_every_days=config.scale.state_full_every_days,
            rebuild=config.scale.state_rebuild,
            before=refunded,
        )
    return plan


def _summarised_state(config: ClvConfig, plan: StatePlan, shard: int | None = None) -> pl.DataFrame:
    """The state of ``plan`` (every customer, or those of ``shard``), sorted by customer_id.

    Every step is per customer (refund ties, the day summaries, the merge), so a shard's state
    is exactly those customers' rows of the whole state."""
    layout = config.layout
    if plan.base is None:
        history = scan_published(layout, "validated_transactions", upto=plan.as_of)
        if shard is not None:
            history = _history_of_shard(config, history, shard)
        state = summarise_transactions(apply_refund_ties(history))
    else:
        new_rows = scan_published(layout, "validated_transactions", days=set(plan.days))
        base = _state(config, plan.base)
        if shard is not None:
            new_rows = in_shard(new_rows.collect(), shard, config.scale.shards).lazy()
            base = _shard_rows(config, "customer_state", plan.base, shard).lazy()
        state = merge_states(base, summarise_transactions(apply_refund_ties(new_rows)))
    return (
        state.with_columns(pl.lit(plan.as_of).alias("as_of"))
        .sort("customer_id")
        .collect(engine="streaming")  # history-wide: the streaming engine is faster and smaller
    )


def _first_refunded_day(layout: Layout, plan: StatePlan) -> date | None:
    """The earliest day, up to the plan's base state, of a purchase that a tied refund among the
    plan's new days refers to (None when there is none or the plan is a full recompute)."""
    if plan.base is None:
        return None
    refunds = (
        scan_published(layout, "validated_transactions", days=set(plan.days))
        .filter((pl.col("revenue_kind") == "refund") & pl.col("refund_of").is_not_null())
        .select("customer_id", pl.col("refund_of").alias("transaction_id"))
        .collect()
    )
    if refunds.is_empty():
        return None
    first = (
        scan_published(layout, "validated_transactions", upto=plan.base)
        .filter(pl.col("revenue_kind") == "purchase")
        .join(refunds.lazy(), on=["customer_id", "transaction_id"], how="semi")
        .select(pl.col("event_date").min())
        .collect(engine="streaming")
        .item()
    )
    return first if isinstance(first, date) else None


def _state(config: ClvConfig, as_of: date) -> pl.LazyFrame:
    return _read(config, "customer_state", as_of).lazy()


def build_customer_features(config: ClvConfig, as_of: date) -> StepResult:
    """Features of every customer as of ``as_of`` from ``customer_state`` (never later rows)."""
    features = sort_rows(
        features_from_state(_state(config, as_of), as_of=as_of, sort=False).collect(), "customer_id"
    )
    published = publish_table(config.layout, "customer_features", features, day=as_of)
    return StepResult([published], {"customers": features.height})


# --------------------------------------------------------------------------------------
# Customer shards of the state and the features: each shard step builds its customers' state
# (from their rows of the reused state and of the new days, or of the whole history) and their
# features; customer_state and customer_features gather them (merged by customer_id).
_STATE_PART = "state"
_FEATURES_PART = "features"
_STATE_PARTS = (_STATE_PART, _FEATURES_PART)


def state_shard_dir(layout: Layout, as_of: date) -> Path:
    """The sharded state's and features' working files of ``as_of`` (removed once both tables
    are published)."""
    return layout.work / "state_shards" / f"as_of={as_of.isoformat()}"


def _state_basis(plan: StatePlan) -> str:
    """What a state shard summarises (the validated days' digests): the published state's
    footer says the same, so a shard of another plan is never mixed in."""
    return json.dumps(plan.file_metadata(), sort_keys=True)


def build_state_shard(config: ClvConfig, as_of: date, shard: int) -> StepResult:
    """Map: one shard's customer_state and customer_features rows."""
    gaps = history_gaps(config, as_of)
    if gaps:
        raise InputError(describe_gaps(config, as_of, gaps))
    plan = plan_customer_state(config, as_of)
    basis = _state_basis(plan)
    state = _summarised_state(config, plan, shard)
    features = sort_rows(
        features_from_state(state.lazy(), as_of=as_of, sort=False).collect(), "customer_id"
    )
    folder = state_shard_dir(config.layout, as_of)
    failpoint(f"state:{shard}")
    write_parquet_atomic(state, folder / f"{_STATE_PART}-{shard}.parquet", {BASIS_KEY: basis})
    write_parquet_atomic(features, folder / f"{_FEATURES_PART}-{shard}.parquet", {BASIS_KEY: basis})
    return StepResult([], {"shard": shard, "mode": plan.mode, "customers": state.height})


def _state_parts(config: ClvConfig, as_of: date, part: str, basis: str) -> pl.DataFrame:
    """Every shard's ``part`` rows (each sorted by customer_id), merged by customer_id."""
    folder = state_shard_dir(config.layout, as_of)
    frames = [
        pl.scan_parquet(
            _shard_file(
                folder / f"{part}-{k}.parquet",
                basis,
                missing=f"{part} shard {k} of {as_of} is missing: run its step first (clv run "
                "--date D reruns them all)",
                stale="summarises other validated days than the published ones; rerun the "
                "day's state shard steps (clv run --date D reruns them all)",
            )
        )
        for k in range(config.scale.shards)
    ]
    return _merged(frames, "customer_id").collect()


def _state_spent(config: ClvConfig, as_of: date, part: str) -> None:
    _spend(state_shard_dir(config.layout, as_of), part, config.scale.shards, _STATE_PARTS)


def publish_sharded_state(config: ClvConfig, as_of: date) -> StepResult:
    """Gather: customer_state from every shard's rows, with the plan's footer."""
    plan = plan_customer_state(config, as_of)
    frame = _state_parts(config, as_of, _STATE_PART, _state_basis(plan))
    published = publish_table(
        config.layout, "customer_state", frame, day=as_of, file_metadata=plan.file_metadata()
    )
    _state_spent(config, as_of, _STATE_PART)
    return StepResult([published], _state_stats(plan, frame.height))


def publish_sharded_features(config: ClvConfig, as_of: date) -> StepResult:
    """Gather: customer_features from every shard's rows (computed from the shard's state, the
    one customer_state published)."""
    path = config.layout.partition_file("customer_state", "as_of", as_of)
    if not path.exists():
        raise InputError(f"customer_state for {as_of} is not published; run it first")
    footer = read_footer(path).metadata or {}
    published_plan = {k.decode(): v.decode() for k, v in footer.items() if k == STATE_META_KEY}
    features = _state_parts(
        config, as_of, _FEATURES_PART, json.dumps(published_plan, sort_keys=True)
    )
    published = publish_table(config.layout, "customer_features", features, day=as_of)
    _state_spent(config, as_of, _FEATURES_PART)
    return StepResult([published], {"customers": features.height})


def build_customer_clv(config: ClvConfig, as_of: date) -> tuple[StepResult, Valuation]:
    """Fit and check the models, select one, and publish ``model_params``,
    ``model_diagnostics`` and ``customer_clv``.

    With ``models.selection = holdout`` the models are also scored on the backtest's
    calibration/holdout split (:func:`~clv_pipeline.report.backtest.calibration_holdout`, the
    same customer sample as the backtest).
    """
    features = _read(config, "customer_features", as_of)
    holdout = None
    inputs = fingerprints(config.layout, upto=as_of)  # what the activity below summarises
    if config.models.selection == "holdout":
        share = _backtest_share(config, as_of)
        holdout = calibration_split(config, as_of, share=share, inputs=inputs)
    activity = period_activity(config, as_of)
    options = _valuation_options(config, activity)
    fit_by = config.models.fit_by.strip()
    if fit_by:
        valuation = value_customers_by_group(
            features,
            customer_groups(config, as_of, fit_by),
            as_of=as_of,
            min_repeat_customers=config.models.fit_by_min_repeat_customers,
            attribute=fit_by,
            holdout=holdout,
            **options,
        )
    else:
        valuation = value_customers(features, as_of=as_of, holdout=holdout, **options)
    return _publish_valuation(config, as_of, valuation, activity, inputs, features)


def _publish_valuation(
    config: ClvConfig,
    as_of: date,
    valuation: Valuation,
    activity: pl.DataFrame,
    inputs: dict[str, str],
    features: pl.DataFrame,
) -> tuple[StepResult, Valuation]:
    """Publish ``model_params``, ``model_diagnostics`` (+ the seasonality checks) and
    ``customer_clv`` of ``valuation``; store the churn-window totals of ``activity``."""
    fit_by = config.models.fit_by.strip()
    valuation = replace(
        valuation,
        diagnostics=pl.concat([valuation.diagnostics, _seasonality(config, as_of)], how="vertical"),
    )
    params = publish_table(config.layout, "model_params", valuation.params, day=as_of)
    checks = publish_table(config.layout, "model_diagnostics", valuation.diagnostics, day=as_of)
    clv = publish_table(config.layout, "customer_clv", valuation.clv, day=as_of)
    _store_period_totals(config, as_of, window_totals(activity.lazy()).collect(), inputs)
    flagged = valuation.diagnostics.filter(pl.col("status") != "ok")
    summary = _describe(config, valuation.params, features)
    stats: dict[str, object] = {
        "model": valuation.selected_model or "none",
        "selection_reason": valuation.selection_reason or "none",
        "data_sufficient": valuation.data_sufficient,
        "messages": "\n".join(valuation.messages),
        "params": preview_markdown(valuation.params, rows=20),
        "diagnostics": preview_markdown(
            flagged.select("model", "check", "status", "message"), rows=20
        )
        if flagged.height
        else "every check ok",
        "summary": summary.markdown() if summary else "no selected purchase model",
    }
    if fit_by:
        groups = valuation.diagnostics.filter(pl.col("check") == GROUP_FIT_CHECK)
        stats["fit_groups"] = preview_markdown(
            groups.select("fit_group", "status", "message"), rows=50
        )
    return StepResult([clv, params, checks], stats), valuation


# --------------------------------------------------------------------------------------
# Sharded valuation (scale.shards > 1): map (inputs per shard) -> reduce (fit) -> map (values
# per shard) -> gather (publish). docs/scaling.md. Every file is internal: .work/shards/as_of=D/.
# --------------------------------------------------------------------------------------
#: The per-customer columns a shard reads of customer_features.
SHARD_FEATURES = ("customer_id", "frequency", "recency", "T", "monetary_value")
_ROW = "_row"
SHARD_READ_BATCH = 1 << 20  # rows of customer_features a shard step filters at a time
BASIS_KEY = "clv.basis"  # the footer key of a shard file's inputs


def shard_dir(layout: Layout, as_of: date) -> Path:
    """The sharded valuation's working files of ``as_of`` (removed once it is published)."""
    return layout.work / "shards" / f"as_of={as_of.isoformat()}"


def _features_basis(config: ClvConfig, as_of: date) -> str:
    """Which customer_features the shard files of ``as_of`` were computed from (its digest)."""
    return _published_digest(config, "customer_features", as_of)


def _published_digest(config: ClvConfig, table: str, as_of: date) -> str:
    """The content digest of ``table``'s published file of ``as_of`` (its mtime for a file
    without one): what a shard's working files record they were computed from."""
    path = config.layout.partition_file(table, "as_of", as_of)
    if not path.exists():
        raise InputError(f"{table} for {as_of} is not published; run it first")
    return stored_digest(path) or str(path.stat().st_mtime_ns)


def _stored_basis(path: Path) -> str:
    """The basis a shard's working file records in its footer (``clv.basis``)."""
    return (read_footer(path).metadata or {}).get(BASIS_KEY.encode(), b"").decode()


def _shard_file(path: Path, basis: str, *, missing: str, stale: str) -> Path:
    """``path``, a shard's working file, when it exists and was computed from ``basis``; else
    an :class:`InputError` with ``missing``, or ``stale`` after the path."""
    if not path.exists():
        raise InputError(missing)
    if _stored_basis(path) != basis:
        raise InputError(f"{path} {stale}")
    return path


def _merged(frames: list[pl.LazyFrame], key: str) -> pl.LazyFrame:
    """Shards' rows, each sorted by ``key``, merged in ``key`` order (a merge, not a sort: one
    copy of the table in memory)."""
    return functools.reduce(lambda a, b: a.merge_sorted(b, key), frames)


def _spend(folder: Path, part: str, shards: int, parts: tuple[str, ...]) -> None:
    """Remove ``part``'s shard files once its table is published, and ``folder`` once no file
    of ``parts`` (the tables gathered from it) is left."""
    for k in range(shards):
        (folder / f"{part}-{k}.parquet").unlink(missing_ok=True)
    if not any(any(folder.glob(f"{p}-*.parquet")) for p in parts):
        shutil.rmtree(folder, ignore_errors=True)


def _shard_rows(
    config: ClvConfig,
    table: str,
    as_of: date,
    shard: int,
    columns: list[str] | None = None,
    *,
    row_index: bool = False,
) -> pl.DataFrame:
    """The rows of ``table`` (of ``as_of``) whose customers are in ``shard``, in the table's
    order; with ``row_index`` their row in the whole table (``_row``: the unsharded order,
    restored when the shards are gathered).

    Read a batch at a time and filtered as it goes: a shard's process holds its own customers,
    never the whole table.
    """
    path = config.layout.partition_file(table, "as_of", as_of)
    if not path.exists():
        raise InputError(f"{table} for {as_of} is not published; run it first")
    parts, offset = [], 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=SHARD_READ_BATCH, columns=columns):
        frame = pl.DataFrame(pl.from_arrow(batch))
        if row_index:
            frame = frame.with_row_index(_ROW, offset=offset)
        offset += frame.height
        parts.append(in_shard(frame, shard, config.scale.shards))
    if parts:
        return pl.concat(parts, how="vertical")
    empty = pl.read_parquet(path, columns=columns).head(0)
    return empty.with_row_index(_ROW) if row_index else empty


def _shard_features(config: ClvConfig, as_of: date, shard: int) -> pl.DataFrame:
    """The customers of ``shard`` (all of customer_features' columns) with ``_row``
    (:func:`_shard_rows`)."""
    features = _shard_rows(config, "customer_features", as_of, shard, row_index=True)
    return with_added_columns(features, TABLES["customer_features"])


def _check_basis(found: str, expected: str, what: Path) -> None:
    if found != expected:
        raise InputError(
            f"{what} was computed from another customer_features than the published one; "
            "rerun the day's shard steps (clv run --date D reruns them all)"
        )


def build_shard_inputs(config: ClvConfig, as_of: date, shard: int) -> StepResult:
    """Map: the fit inputs of one shard (weighted unique patterns, repeat customers' spend)."""
    basis = _features_basis(config, as_of)
    features = _shard_features(config, as_of, shard)
    arrays = customer_arrays(
        *(features.get_column(c).cast(pl.Float64).to_numpy() for c in SHARD_FEATURES[1:])
    )
    inputs = FitInputs.from_arrays(*arrays, order=features.get_column(_ROW).to_numpy())
    pat = inputs.patterns
    target = shard_dir(config.layout, as_of) / f"inputs-{shard}.npz"

    def write(path: Path) -> None:
        with path.open("wb") as handle:
            np.savez(
                handle,
                x=pat.x,
                tx=pat.tx,
                T=pat.T,
                weights=pat.weights,
                spend_x=inputs.spend_x,
                spend_m=inputs.spend_m,
                order=inputs.order,
                basis=np.array(basis),
            )

    replace_atomically(target, write)
    return StepResult(
        [],
        {
            "shard": shard,
            "customers": features.height,
            "patterns": pat.n_patterns,
            "repeat_customers": inputs.n_repeat,
            "path": str(target),
        },
    )


def _load_inputs(path: Path, basis: str) -> FitInputs:
    with np.load(path) as data:
        _check_basis(str(data["basis"]), basis, path)
        return FitInputs(
            Patterns.from_arrays(data["x"], data["tx"], data["T"], data["weights"]),
            data["spend_x"],
            data["spend_m"],
            data["order"],
        )


def fit_shards(config: ClvConfig, as_of: date) -> StepResult:
    """Reduce: merge every shard's inputs and fit, check and select the models once (the same
    fit as an unsharded run: the merged patterns and spend rows are the whole base's), and
    predict once per unique pattern."""
    if config.models.fit_by.strip():
        raise InputError(
            "scale.shards > 1 does not combine with models.fit_by yet: set CLV_SHARDS=1 "
            "(or unset CLV_FIT_BY)"
        )
    basis = _features_basis(config, as_of)
    folder = shard_dir(config.layout, as_of)
    shards = config.scale.shards
    missing = [k for k in range(shards) if not (folder / f"inputs-{k}.npz").exists()]
    if missing:
        raise InputError(f"shard inputs {missing} of {as_of} are missing: run those shards first")
    inputs = FitInputs.merge(
        [_load_inputs(folder / f"inputs-{k}.npz", basis) for k in range(shards)]
    )
    holdout = None
    if config.models.selection == "holdout":
        share = _backtest_share(config, as_of)
        calibration = calibration_split(config, as_of, share=share)
        holdout = holdout_split(calibration, holdout_days=config.scale.backtest_holdout_days)
    fit = fit_models(
        inputs,
        horizon_days=config.models.horizon_days,
        gross_margin=config.models.gross_margin,
        holdout=holdout,
        **config.model_options(),
    )
    fit = replace(fit, patterns=None)  # the shards look their patterns' predictions up
    target = replace_atomically(
        folder / "fit.pickle",
        lambda path: path.write_bytes(pickle.dumps((basis, fit), protocol=5)),
    )
    return StepResult(
        [],
        {
            "shards": shards,
            "customers": inputs.n_customers,
            "patterns": inputs.patterns.n_patterns,
            "model": fit.chosen.model if fit.chosen else "none",
            "path": str(target),
        },
    )


def _load_fit(config: ClvConfig, as_of: date, basis: str) -> ModelFit:
    """The reduced fit of ``as_of``."""
    path = shard_dir(config.layout, as_of) / "fit.pickle"
    if not path.exists():
        raise InputError(f"the sharded fit of {as_of} is missing: run clv_fit first")
    found, fit = pickle.loads(path.read_bytes())  # noqa: S301 - written by fit_shards
    _check_basis(found, basis, path)
    return cast(ModelFit, fit)


def build_shard_activity(config: ClvConfig, as_of: date) -> StepResult:
    """The churn-window activity of everyone (the formula CLV's rates and each customer's window
    revenue), for the shards; a step of its own, beside the fit (it scans the history)."""
    basis = _features_basis(config, as_of)
    summarised = fingerprints(config.layout, upto=as_of)  # what the activity below summarises
    activity = period_activity(config, as_of)
    target = write_parquet_atomic(
        activity,
        shard_dir(config.layout, as_of) / "activity.parquet",
        metadata={BASIS_KEY: basis, "clv.summarised": json.dumps(summarised, sort_keys=True)},
    )
    return StepResult([], {"rows": activity.height, "path": str(target)})


def _load_activity(
    config: ClvConfig, as_of: date, basis: str
) -> tuple[pl.DataFrame, dict[str, str]]:
    """The activity of ``as_of`` and the fingerprints of the history it summarises."""
    path = shard_dir(config.layout, as_of) / "activity.parquet"
    if not path.exists():
        raise InputError(f"the churn-window activity of {as_of} is missing: run clv_activity")
    metadata = read_footer(path).metadata or {}
    _check_basis(_stored_basis(path), basis, path)
    summarised = json.loads(metadata.get(b"clv.summarised", b"{}"))
    return pl.read_parquet(path), cast(dict[str, str], summarised)


def _valuation_options(config: ClvConfig, activity: pl.DataFrame) -> dict[str, Any]:
    return {
        "gross_margin": config.models.gross_margin,
        "horizon_days": config.models.horizon_days,
        "activity": activity,
        "window_days": config.segments.active_window_days,
        "currency": config.report_currency(),
        "model_options": config.model_options(),
        "holdout_days": config.scale.backtest_holdout_days,
    }


def value_shard(config: ClvConfig, as_of: date, shard: int) -> StepResult:
    """Map: the customer_clv rows of one shard from the reduced fit."""
    basis = _features_basis(config, as_of)
    fit = _load_fit(config, as_of, basis)
    folder = shard_dir(config.layout, as_of)
    activity, _ = _load_activity(config, as_of, basis)
    features = _shard_features(config, as_of, shard)
    valuation = value_customers(
        features.drop(_ROW), as_of=as_of, fit=fit, **_valuation_options(config, activity)
    )
    frame = valuation.clv.with_columns(features.get_column(_ROW))
    failpoint(f"shard:{shard}:values")
    target = write_parquet_atomic(
        frame,
        folder / f"clv-{shard}.parquet",
        metadata={BASIS_KEY: basis, "clv.messages": json.dumps(list(valuation.messages))},
    )
    return StepResult([], {"shard": shard, "customers": frame.height, "path": str(target)})


def publish_sharded_clv(config: ClvConfig, as_of: date) -> tuple[StepResult, Valuation]:
    """Gather: the shards' customer_clv rows in the unsharded order, with the fit's
    model_params and model_diagnostics, published like :func:`build_customer_clv`'s."""
    basis = _features_basis(config, as_of)
    fit = _load_fit(config, as_of, basis)
    folder = shard_dir(config.layout, as_of)
    activity, summarised = _load_activity(config, as_of, basis)
    period, _, formula = formula_basis(
        activity,
        window_days=config.segments.active_window_days,
        horizon_days=config.models.horizon_days,
        model_options=config.model_options(),
    )
    run = fit.outcome or fit.summary_run()
    messages = [formula, *run.messages]
    parts = []
    for k in range(config.scale.shards):
        path = folder / f"clv-{k}.parquet"
        if not path.exists():
            raise InputError(f"customer_clv shard {k} of {as_of} is missing: run it first")
        _check_basis(_stored_basis(path), basis, path)
        metadata = read_footer(path).metadata or {}
        for message in json.loads(metadata.get(b"clv.messages", b"[]")):
            if message not in messages:  # e.g. a spend fallback some shard's customers needed
                messages.append(message)
        parts.append(pl.scan_parquet(path))
    # each shard is in the whole table's order: merged, not sorted (10M customers: one copy of
    # the table in memory instead of 2.5)
    clv = _merged(parts, _ROW).drop(_ROW).collect()
    valuation = run_valuation(run, clv, as_of=as_of, period=period, messages=messages)
    features = read_published(config.layout, "customer_features", as_of, DESCRIBE_COLUMNS)
    if features is None:
        raise InputError(f"customer_features for {as_of} is not published; run it first")
    result = _publish_valuation(config, as_of, valuation, activity, summarised, features)
    shutil.rmtree(folder, ignore_errors=True)  # published: the shard files are spent
    return result


def period_activity(config: ClvConfig, as_of: date) -> pl.DataFrame:
    """:func:`~clv_pipeline.features.periods.window_activity` of ``as_of``: who bought in this
    churn window and the previous one, and their net revenue in this one."""
    return window_activity(
        _history(config, as_of), as_of=as_of, window_days=config.segments.active_window_days
    ).collect(engine="streaming")


def customer_groups(config: ClvConfig, as_of: date, fit_by: str) -> pl.DataFrame:
    """``customer_id, group`` for ``models.fit_by``: the channel of the first purchase
    (``first_channel``) or a column of the ``landing/customers/`` files."""
    if fit_by == FIRST_CHANNEL:
        purchases = _history(config, as_of).filter(pl.col("revenue_kind") == "purchase")
        return (
            first_purchases(purchases)
            .select("customer_id", pl.col("channel").alias("group"))
            .collect(engine="streaming")
        )
    return read_customer_attribute(config.layout, fit_by)


def model_summary(config: ClvConfig, as_of: date) -> ModelSummary | None:
    """What the selected model of ``as_of`` says in plain words (None without one)."""
    params = read_published(config.layout, "model_params", as_of)
    features = read_published(config.layout, "customer_features", as_of, DESCRIBE_COLUMNS)
    if params is None or features is None:
        return None
    return _describe(config, params, features)


def group_summaries(config: ClvConfig, as_of: date) -> dict[str, ModelSummary]:
    """With ``models.fit_by``: what each group's own fit says, for the groups it values (groups
    valued with the fit over everyone have none)."""
    params = read_published(config.layout, "model_params", as_of)
    clv = read_published(config.layout, "customer_clv", as_of, ("customer_id", "fit_group"))
    features = read_published(config.layout, "customer_features", as_of, DESCRIBE_COLUMNS)
    if params is None or clv is None or features is None or "fit_group" not in clv.columns:
        return {}
    summaries = {}
    for group in fit_groups(params):
        members = clv.filter(pl.col("fit_group") == group).select("customer_id")
        if members.is_empty():  # its own fit was not trusted: valued with everyone's
            continue
        summary = _describe(
            config, params, features.join(members, on="customer_id", how="semi"), group
        )
        if summary is not None:
            summaries[group] = summary
    return summaries


def _describe(
    config: ClvConfig, params: pl.DataFrame, features: pl.DataFrame, fit_group: str = ALL_GROUPS
) -> ModelSummary | None:
    """The selected model's figures in plain words and the CLV of a new customer (None, with a
    logged warning, when a figure cannot be computed: a summary never fails the day)."""
    try:
        return describe_fit(
            params,
            features,
            horizon_days=config.models.horizon_days,
            gross_margin=config.models.gross_margin,
            discount_rate=config.models.discount_rate,
            discount_period=config.models.discount_period,
            fit_group=fit_group,
        )
    except (ArithmeticError, ValueError) as exc:
        _LOG.warning("model summary of fit %s not computed: %s", fit_group, exc)
        return None


def _seasonality(config: ClvConfig, as_of: date) -> pl.DataFrame:
    """``model_diagnostics`` rows of the weekly and annual seasonality checks."""
    daily = (
        _history(config, as_of)
        .filter(pl.col("revenue_kind") == "purchase")
        .group_by("event_date")
        .agg(pl.len().alias("purchases"))
        .sort("event_date")
        .collect()
    )
    days = daily["event_date"].cast(pl.Int64).to_numpy() + date(1970, 1, 1).toordinal()
    rows = [d.row() for d in seasonality_diagnostics(days, daily["purchases"].to_numpy())]
    return conform(
        pl.DataFrame(
            [{"as_of": as_of, **row, "fit_group": ALL_GROUPS} for row in rows],
            schema=TABLES["model_diagnostics"].schema,
        ),
        TABLES["model_diagnostics"],
    )


def _sample_share(config: ClvConfig, customers: int) -> float:
    """Share of ``customers`` the backtest and the holdout selection score
    (``scale.backtest_max_customers``; 1 = all)."""
    limit = config.scale.backtest_max_customers
    return min(1.0, limit / customers) if limit and customers else 1.0


def _backtest_share(config: ClvConfig, as_of: date) -> float:
    """:func:`_sample_share` of the day's ``customer_state`` customers: the one share of the
    backtest and the holdout selection, so both score the same sample (the selection used to
    count ``customer_features`` rows, which leave out customers with refunds only: another
    share, another sample, and the split built twice)."""
    state = config.layout.partition_file("customer_state", "as_of", as_of)
    return _sample_share(config, read_footer(state).num_rows)


def _sampled(history: pl.LazyFrame, share: float) -> pl.LazyFrame:
    return history if share >= 1 else history.filter(in_sample(share))


_SPLIT_FOLDER = "calibration_split"
_SPLIT_KEY = "clv.calibration_split"
_SPLIT_VERSION = "1"  # bump when calibration_holdout's columns or rules change


def calibration_split(
    config: ClvConfig, as_of: date, *, share: float, inputs: dict[str, str] | None = None
) -> pl.DataFrame:
    """:func:`~clv_pipeline.report.backtest.calibration_holdout` of the sampled validated
    history of ``as_of``: the backtest and the holdout model selection score the same customers
    on the same split, so the first of the two steps stores it and the other reads it back
    (``warehouse/.work/calibration_split/as_of=D/part-0.parquet``, never published). Building it
    reads every validated day (hashing each row's customer for the sample): 8 s at 100M rows.

    The footer records what the split summarises (the digests of the validated days up to
    ``as_of``, ``inputs`` when the caller has them; the share; the holdout length): a file that
    does not match is computed again, exactly as before. Older days' files are removed."""
    holdout_days = config.scale.backtest_holdout_days
    inputs = fingerprints(config.layout, upto=as_of) if inputs is None else inputs
    record = json.dumps(
        {"version": _SPLIT_VERSION, "share": share, "holdout_days": holdout_days, "inputs": inputs},
        sort_keys=True,
    )
    folder = config.layout.work / _SPLIT_FOLDER
    path = folder / f"as_of={as_of.isoformat()}" / PART_FILE
    try:
        if (read_footer(path).metadata or {}).get(_SPLIT_KEY.encode()) == record.encode():
            return pl.read_parquet(path)
    except (OSError, ValueError, pl.exceptions.PolarsError):
        pass  # absent or unreadable: computed below
    history = _sampled(_history(config, as_of), share)
    split = calibration_holdout(
        # read once: the split's two branches would each scan every day's file
        history.collect(engine="streaming").lazy(),
        as_of=as_of,
        holdout_days=holdout_days,
    ).collect()
    write_parquet_atomic(split, path, metadata={_SPLIT_KEY: record})
    for old in folder.glob("as_of=*"):
        if old != path.parent:
            shutil.rmtree(old, ignore_errors=True)
    return split


def _read(config: ClvConfig, table: str, as_of: date) -> pl.DataFrame:
    frame = read_published(config.layout, table, as_of)
    if frame is None:
        raise InputError(f"{table} for {as_of} is not published; run it first")
    return frame


def _scan(config: ClvConfig, table: str, as_of: date) -> pl.LazyFrame:
    """:func:`_read` as a lazy scan: a step reads only the columns it uses."""
    layout = config.layout
    if not layout.partition_file(table, TABLES[table].partition_key, as_of).exists():
        raise InputError(f"{table} for {as_of} is not published; run it first")
    return scan_published(layout, table, days={as_of})


def _history(config: ClvConfig, as_of: date) -> pl.LazyFrame:
    """Validated rows up to ``as_of``, fully refunded purchases marked ``cancelled``."""
    return apply_refund_ties(scan_published(config.layout, "validated_transactions", upto=as_of))


def _previous(config: ClvConfig, table: str, as_of: date) -> pl.LazyFrame | None:
    """``table`` of the latest complete snapshot before ``as_of`` (None when there is none)."""
    earlier = [d for d in complete_dates(config.layout) if d < as_of]
    path = committed_file(config.layout, table, earlier[-1]) if earlier else None
    if path is None:
        return None
    # a scan: the comparisons read a few columns of it (segment_migration at 10M customers:
    # 7.1 -> 2.9 GB peak)
    return with_added_columns(pl.scan_parquet(path), TABLES[table])


#: Snapshot tables comparing ``as_of`` with the previous complete snapshot (``previous_as_of``).
COMPARISON_TABLES = ("kpis", "segment_migration")


def comparison_outdated(
    config: ClvConfig, as_of: date, *, manifest: list[tuple[date, str, str]] | None = None
) -> bool:
    """True when the committed ``kpis`` or ``segment_migration`` of ``as_of`` compare with another
    snapshot than the latest complete one before it (an earlier day, or none, because that day
    was published later, e.g. by a backfill). False when ``as_of`` is not committed.

    ``manifest``: the files of :func:`~clv_pipeline.publish.catalog.read_manifest`, to check many
    days with one read."""
    files = read_manifest(config.layout)[0] if manifest is None else manifest
    committed = {(day, table): Path(path) for day, table, path in files}
    earlier = sorted({day for day, _, _ in files if day < as_of})
    expected = earlier[-1] if earlier else None
    for table in COMPARISON_TABLES:
        path = committed.get((as_of, table))
        if path is None or not path.exists():
            return False
        seen = set(pl.read_parquet(path, columns=["previous_as_of"])["previous_as_of"].to_list())
        if seen and seen != {expected}:  # no rows (no customers on either side): nothing to say
            return True
    return False


def _publish(
    config: ClvConfig, table: str, frame: pl.LazyFrame, as_of: date, **stats: Any
) -> StepResult:
    published = publish_table(config.layout, table, frame.collect(), day=as_of)
    return StepResult([published], stats)


def lifecycle_rules(config: ClvConfig) -> LifecycleRules:
    """Lifecycle rules tied to the churn period and the risk bands: lost needs a whole churn
    period of silence; active / cooling / at_risk+lost are the lower bands / the band below the
    top / the top band of ``segments.risk_bands``."""
    bounds = [bound for _, bound in config.segments.risk_bands.items()]
    cooling_below = bounds[-2] if len(bounds) >= 2 else 1.0
    active_below = bounds[-3] if len(bounds) >= 3 else cooling_below
    return LifecycleRules(
        lost_min_days=config.segments.active_window_days,
        active_below=active_below,
        cooling_below=cooling_below,
    )


def period_retention(config: ClvConfig, as_of: date) -> float | None:
    """The period retention of ``as_of`` (``kpis.retention_rate``; None when unknown)."""
    return rates_from_totals(
        period_totals(config, as_of), window_days=config.segments.active_window_days
    ).retention


def period_totals(config: ClvConfig, as_of: date) -> pl.DataFrame:
    """:func:`~clv_pipeline.features.window_totals.window_totals` of :func:`period_activity`:
    read back from what ``customer_clv`` stored when it still summarises the validated history,
    else computed from the history (and stored)."""
    inputs = fingerprints(config.layout, upto=as_of)
    window_days = config.segments.active_window_days
    stored = read_totals(config.layout, as_of, window_days=window_days, inputs=inputs)
    if stored is not None:
        return stored
    totals = window_totals(period_activity(config, as_of).lazy()).collect()
    return _store_period_totals(config, as_of, totals, inputs)


def _store_period_totals(
    config: ClvConfig, as_of: date, totals: pl.DataFrame, inputs: dict[str, str]
) -> pl.DataFrame:
    write_totals(
        config.layout,
        as_of,
        totals,
        window_days=config.segments.active_window_days,
        inputs=inputs,
    )
    return totals


def build_customer_segments(config: ClvConfig, as_of: date) -> StepResult:
    """RFM scores and map, value tier, lifecycle stage (banded on the churn probability of
    ``customer_churn``), micro-segment."""
    basis = churn_basis(config, as_of)
    gaps = purchase_gaps_from_state(_scan(config, "customer_state", as_of), as_of=as_of)
    customers = _customers_side_by_side(
        config,
        as_of,
        ["p_alive", *SEGMENT_VALUE_COLUMNS],
        gaps.select("customer_id", *GAP_COLUMNS),
    )
    segments = build_segments_table(
        customers,
        _scan(config, "customer_clv", as_of),
        purchase_gaps=gaps,
        tiers=tuple(config.segments.value_tiers.items()),
        rules=lifecycle_rules(config),
        basis=basis,
        period_retention=period_retention(config, as_of),
        window_days=config.segments.active_window_days,
    ).collect()
    published = publish_table(config.layout, "customer_segments", segments, day=as_of)
    counts = segments.group_by("rfm_segment").len().sort("len", descending=True)
    return StepResult([published], {"segments": dict(counts.iter_rows())})


def build_customer_churn(config: ClvConfig, as_of: date) -> StepResult:
    """Churn probability, percentile, risk band, days overdue and value at risk."""
    basis = churn_basis(config, as_of)
    churn = build_churn_table(
        _customers_side_by_side(config, as_of, ["p_alive", *CHURN_CLV_COLUMNS]),
        _scan(config, "customer_clv", as_of),
        risk_bands=tuple(config.segments.risk_bands.items()),
        rules=lifecycle_rules(config),
        basis=basis,
        period_retention=period_retention(config, as_of),
        window_days=config.segments.active_window_days,
    )
    return _publish(
        config,
        "customer_churn",
        churn,
        as_of,
        churn_basis=basis.kind,
        churn_basis_reason=basis.reason,
    )


def _customers_side_by_side(
    config: ClvConfig, as_of: date, clv_columns: list[str], *more: pl.LazyFrame
) -> pl.LazyFrame:
    """The day's ``customer_features`` (the columns segments and churn use) with ``clv_columns``
    of ``customer_clv`` and the columns of ``more`` (which carry ``customer_id``) put side by
    side when they list the same customers in the same order, as the day's tables do
    (:func:`side_by_side`; else features alone, and the stages join). Saves a join on 10M
    string keys per table (~2 s each)."""
    features = _scan(config, "customer_features", as_of).select(FEATURE_COLUMNS).collect()
    others = [_scan(config, "customer_clv", as_of).select("customer_id", *clv_columns)]
    others += more
    return side_by_side(features, *(frame.collect() for frame in others)).lazy()


def churn_basis(config: ClvConfig, as_of: date) -> ChurnBasis:
    """From the day's selected model, its dropout diagnostic and its holdout ``purchases_auc``
    (``model_backtest`` of the same day when it is published)."""
    params = _read(config, "model_params", as_of)
    model = selected_purchase_model(params)
    if model is None:
        return choose_churn_basis(degenerate=False, purchases_auc=None, model_available=False)
    diagnostics = read_published(config.layout, "model_diagnostics", as_of)
    degenerate = diagnostics is not None and (
        diagnostics.filter(
            (pl.col("model") == model)
            & (pl.col("check") == DROPOUT_CHECK)
            & (
                pl.col("fit_group").fill_null(ALL_GROUPS) == ALL_GROUPS
                if "fit_group" in diagnostics.columns
                else pl.lit(True)
            )
            & (pl.col("status") != "ok")
        ).height
        > 0
    )
    backtest = read_published(config.layout, "model_backtest", as_of)
    auc = (
        backtest.filter((pl.col("model") == model) & (pl.col("metric") == "purchases_auc"))[
            "value"
        ].to_list()
        if backtest is not None
        else []
    )
    return choose_churn_basis(
        degenerate=degenerate, purchases_auc=auc[0] if auc and auc[0] is not None else None
    )


# --------------------------------------------------------------------------------------
# Customer shards of segments and churn (docs/scaling.md): map counts -> reduce population ->
# map rows -> gather each table. A shard's rows are computed against the whole snapshot's
# population (segments/population.py), so the gathered tables are the unsharded ones.
#: What a shard reads of customer_clv and of customer_state (for the purchase gaps).
_SHARD_CLV = list(
    dict.fromkeys(["customer_id", "as_of", "p_alive", *SEGMENT_VALUE_COLUMNS, *CHURN_CLV_COLUMNS])
)
_SHARD_STATE = ["customer_id", "first_day", "last_day", "previous_day", "n_purchase_days"]
_SEGMENTS_PART = "segments"
_CHURN_PART = "churn"


def customer_shard_dir(layout: Layout, as_of: date) -> Path:
    """The sharded segments' and churn's working files of ``as_of`` (removed once both tables
    are published)."""
    return layout.work / "customer_shards" / f"as_of={as_of.isoformat()}"


def _customers_basis(config: ClvConfig, as_of: date) -> str:
    """Which customer_features, customer_clv and customer_state the files were computed from."""
    tables = ("customer_features", "customer_clv", "customer_state")
    return " ".join(_published_digest(config, table, as_of) for table in tables)


def _check_customers_basis(path: Path, basis: str) -> Path:
    return _shard_file(
        path,
        basis,
        missing=f"{path.name} of the sharded segments and churn is missing: run the steps "
        "before it (clv run --date D reruns them all)",
        stale="was computed from other customer_features / customer_clv / customer_state than "
        "the published ones; rerun the day's customer shard steps (clv run --date D reruns "
        "them all)",
    )


def _shard_customers(
    config: ClvConfig, as_of: date, shard: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The customers of ``shard``: their features and customer_clv columns."""
    features = _shard_rows(config, "customer_features", as_of, shard, list(FEATURE_COLUMNS))
    return features, _shard_rows(config, "customer_clv", as_of, shard, _SHARD_CLV)


def _shard_gaps(config: ClvConfig, as_of: date, shard: int) -> pl.DataFrame:
    """The purchase gaps of the customers of ``shard`` (from their customer_state rows)."""
    state = _shard_rows(config, "customer_state", as_of, shard, _SHARD_STATE)
    return purchase_gaps_from_state(state.lazy(), as_of=as_of).collect()


def build_customer_shard_counts(config: ClvConfig, as_of: date, shard: int) -> StepResult:
    """Map: one shard's part of the population (RFM value counts, interval counts, segment
    values), for :func:`build_customer_population`."""
    basis = _customers_basis(config, as_of)
    features, clv = _shard_customers(config, as_of, shard)
    counts = shard_counts(features.lazy(), clv.lazy())
    folder = customer_shard_dir(config.layout, as_of)
    for name, frame in counts.items():
        write_parquet_atomic(frame, folder / f"counts-{shard}-{name}.parquet", {BASIS_KEY: basis})
    return StepResult([], {"shard": shard, "customers": features.height, "path": str(folder)})


def build_customer_population(config: ClvConfig, as_of: date) -> StepResult:
    """Reduce: the whole snapshot's population from every shard's counts, and each shard's
    value ranks."""
    basis = _customers_basis(config, as_of)
    folder = customer_shard_dir(config.layout, as_of)
    parts = []
    for k in range(config.scale.shards):
        part = {}
        for name in COUNT_PARTS:
            path = folder / f"counts-{k}-{name}.parquet"
            _check_customers_basis(path, basis)
            part[name] = pl.read_parquet(path)
        parts.append(part)
    population, ranks = merge_population(parts)
    for k, rank in enumerate(ranks):
        write_parquet_atomic(rank.to_frame(), folder / f"ranks-{k}.parquet", {BASIS_KEY: basis})
    replace_atomically(
        folder / "population.pickle",
        lambda path: path.write_bytes(pickle.dumps((basis, population), protocol=5)),
    )
    return StepResult(
        [],
        {
            "shards": config.scale.shards,
            "customers": population.customers,
            "median_interval_days": population.rhythm.median_interval,
            "path": str(folder),
        },
    )


def _load_population(folder: Path, basis: str) -> Population:
    path = folder / "population.pickle"
    if not path.exists():
        raise InputError(f"the customer population of {folder.name} is missing: run it first")
    found, population = pickle.loads(path.read_bytes())  # noqa: S301 - written above
    if found != basis:
        raise InputError(
            f"{path} was computed from other customer tables than the published ones; rerun "
            "the day's customer shard steps"
        )
    return cast(Population, population)


def build_customer_shard_rows(config: ClvConfig, as_of: date, shard: int) -> StepResult:
    """Map: one shard's customer_segments and customer_churn rows (all but the churn percentile)
    against the population."""
    basis = _customers_basis(config, as_of)
    folder = customer_shard_dir(config.layout, as_of)
    population = _load_population(folder, basis)
    ranks_path = folder / f"ranks-{shard}.parquet"
    _check_customers_basis(ranks_path, basis)
    features, clv = _shard_customers(config, as_of, shard)
    gaps = _shard_gaps(config, as_of, shard)
    ranks = pl.read_parquet(ranks_path)
    if ranks.height != clv.height:
        raise InputError(f"{ranks_path} does not match shard {shard}'s customers: rerun it")
    clv = clv.hstack(ranks)
    options: dict[str, Any] = {
        "rules": lifecycle_rules(config),
        "basis": churn_basis(config, as_of),
        "period_retention": period_retention(config, as_of),
        "window_days": config.segments.active_window_days,
    }
    gap_columns = gaps.select("customer_id", *GAP_COLUMNS)
    segments = build_segments_table(
        side_by_side(features, clv.drop("as_of"), gap_columns).lazy(),
        clv.lazy(),
        purchase_gaps=gaps.lazy(),
        tiers=tuple(config.segments.value_tiers.items()),
        population=population,
        **options,
    ).collect()
    churn = score_churn(
        side_by_side(features, clv.select("customer_id", "p_alive", *CHURN_CLV_COLUMNS)).lazy(),
        clv.lazy(),
        risk_bands=tuple(config.segments.risk_bands.items()),
        rhythm=population.rhythm,
        **options,
    )
    churn_columns = [c for c in TABLES["customer_churn"].names if c != "churn_percentile"]
    failpoint(f"customers:{shard}:rows")
    write_parquet_atomic(segments, folder / f"{_SEGMENTS_PART}-{shard}.parquet", {BASIS_KEY: basis})
    write_parquet_atomic(
        churn.select(churn_columns).collect(),
        folder / f"{_CHURN_PART}-{shard}.parquet",
        {BASIS_KEY: basis},
    )
    return StepResult([], {"shard": shard, "customers": segments.height})


def _gathered(config: ClvConfig, as_of: date, part: str) -> list[pl.LazyFrame]:
    basis = _customers_basis(config, as_of)
    folder = customer_shard_dir(config.layout, as_of)
    paths = [folder / f"{part}-{k}.parquet" for k in range(config.scale.shards)]
    return [pl.scan_parquet(_check_customers_basis(path, basis)) for path in paths]


def _spent(config: ClvConfig, as_of: date, part: str) -> None:
    """Remove ``part``'s shard files once its table is published, and the folder once both
    tables' are gone."""
    folder = customer_shard_dir(config.layout, as_of)
    _spend(folder, part, config.scale.shards, (_SEGMENTS_PART, _CHURN_PART))


def publish_sharded_segments(config: ClvConfig, as_of: date) -> StepResult:
    """Gather: every shard's customer_segments rows (each sorted by customer_id), merged."""
    parts = _gathered(config, as_of, _SEGMENTS_PART)
    segments = _merged(parts, "customer_id").collect()
    published = publish_table(config.layout, "customer_segments", segments, day=as_of)
    _spent(config, as_of, _SEGMENTS_PART)
    counts = segments.group_by("rfm_segment").len().sort("len", descending=True)
    return StepResult([published], {"segments": dict(counts.iter_rows())})


def publish_sharded_churn(config: ClvConfig, as_of: date) -> StepResult:
    """Gather: every shard's customer_churn rows, the percentile ranked over all of them, in
    the table's order."""
    basis = churn_basis(config, as_of)
    churn = rank_churn(pl.concat(_gathered(config, as_of, _CHURN_PART), how="vertical"))
    result = _publish(
        config,
        "customer_churn",
        churn,
        as_of,
        churn_basis=basis.kind,
        churn_basis_reason=basis.reason,
    )
    _spent(config, as_of, _CHURN_PART)
    return result


def build_segment_migration(config: ClvConfig, as_of: date) -> StepResult:
    """Moves between segments, tiers and stages since the previous complete snapshot."""
    migration = build_migration_table(
        _previous(config, "customer_segments", as_of),
        _scan(config, "customer_segments", as_of),
        as_of=as_of,
    )
    return _publish(config, "segment_migration", migration, as_of)


def build_cohorts(config: ClvConfig, as_of: date) -> StepResult:
    """Acquisition-month (and channel) cohorts: retention, revenue per customer, average CLV,
    from the cohort state (:mod:`~clv_pipeline.features.months`)."""
    state, plan = build_cohort_state(config, as_of)
    cohorts = cohorts_from_state(state, _scan(config, "customer_clv", as_of), as_of=as_of)
    published = publish_table(
        config.layout, "cohorts", cohorts.collect(engine="streaming"), day=as_of
    )
    return StepResult([published], {"state_mode": plan.mode, "state_reason": plan.reason})


def build_cohort_state(
    config: ClvConfig, as_of: date, shard: int | None = None
) -> tuple[CohortState, StatePlan]:
    """The cohort state of ``as_of`` from the latest reusable one plus the days after it, or from
    the whole history; stored for the next day (the rules of :func:`build_customer_state`).
    With ``shard``: the state of that customer shard's customers, kept in a chain of its own."""
    layout = config.layout
    root = MONTHS_FOLDER if shard is None else months_shard_root(shard, config.scale.shards)
    every, rebuild = config.scale.state_full_every_days, config.scale.state_rebuild
    plan = plan_months(layout, as_of, full_every_days=every, rebuild=rebuild, root=root)
    refunded = _first_refunded_day(layout, plan)
    if refunded is not None:  # a new refund cancels an older purchase: fold its day in again
        plan = plan_months(
            layout, as_of, full_every_days=every, rebuild=rebuild, before=refunded, root=root
        )
    if plan.base is None:
        # history-wide: the streaming engine is faster and smaller; the first purchases once,
        # then the closed months aggregated as they are read and the open month per customer
        rows = scan_published(layout, "validated_transactions", upto=as_of)
        if shard is not None:
            rows = _history_of_shard(config, rows, shard)
        history = apply_refund_ties(rows)
        firsts = summarise_firsts(history).collect(engine="streaming").lazy()
        state = summarise_state(history, as_of=as_of, firsts=firsts)
        state = CohortState(
            open=state.open.collect(engine="streaming").lazy(),
            closed=state.closed.collect(engine="streaming").lazy(),
            firsts=firsts,
        )
    else:
        new_rows = scan_published(layout, "validated_transactions", days=set(plan.days)).collect()
        if shard is not None:
            new_rows = in_shard(new_rows, shard, config.scale.shards)
        new_rows = apply_refund_ties(new_rows.lazy()).collect()
        state = collect_state(
            merge_month_state(
                read_month_state(layout, plan.base, root), new_rows.lazy(), as_of=as_of
            )
        )
    write_month_state(layout, plan, state, root)
    return state, plan


def _history_of_shard(config: ClvConfig, rows: pl.LazyFrame, shard: int) -> pl.LazyFrame:
    """The history ``rows`` of the customers of ``shard``: a semi join on their ids (one streamed
    pass over the ids to find them)."""
    ids = rows.select("customer_id").unique().collect(engine="streaming")
    return rows.join(in_shard(ids, shard, config.scale.shards).lazy(), on="customer_id", how="semi")


# --------------------------------------------------------------------------------------
# Customer shards of the cohorts: each shard keeps its customers' cohort state and sums them
# (CohortParts, additive and exact); the cohorts step adds the shards' sums up.
_COHORT_PARTS = ("sizes", "activity", "any_channel")


def cohort_shard_dir(layout: Layout, as_of: date) -> Path:
    return layout.work / "cohort_shards" / f"as_of={as_of.isoformat()}"


def _cohort_basis(config: ClvConfig, as_of: date, inputs: dict[str, str]) -> str:
    """What a cohort shard's sums come from: the customer tables and the validated days."""
    return f"{_customers_basis(config, as_of)} {json.dumps(inputs, sort_keys=True)}"


def build_cohort_shard(config: ClvConfig, as_of: date, shard: int) -> StepResult:
    """Map: one shard's cohort state (its own chain) and its sums per cohort."""
    state, plan = build_cohort_state(config, as_of, shard)
    basis = _cohort_basis(config, as_of, plan.inputs)
    clv = _shard_rows(config, "customer_clv", as_of, shard, ["customer_id", "predicted_clv"])
    parts = cohort_parts(state, clv.lazy())
    frames = pl.collect_all([getattr(parts, name) for name in _COHORT_PARTS], engine="streaming")
    folder = cohort_shard_dir(config.layout, as_of)
    for name, frame in zip(_COHORT_PARTS, frames, strict=True):
        write_parquet_atomic(frame, folder / f"{name}-{shard}.parquet", {BASIS_KEY: basis})
    return StepResult([], {"shard": shard, "state_mode": plan.mode, "cohorts": frames[0].height})


def publish_sharded_cohorts(config: ClvConfig, as_of: date) -> StepResult:
    """Gather: the cohorts table from the sum of every shard's sums."""
    basis = _cohort_basis(config, as_of, fingerprints(config.layout, upto=as_of))
    folder = cohort_shard_dir(config.layout, as_of)
    parts = [
        CohortParts(
            **{
                name: pl.scan_parquet(
                    _shard_file(
                        folder / f"{name}-{k}.parquet",
                        basis,
                        missing=f"cohort shard {k} of {as_of} is missing: run its step first",
                        stale="was computed from other validated days or customer tables than "
                        "the published ones; rerun the day's cohort shard steps",
                    )
                )
                for name in _COHORT_PARTS
            }
        )
        for k in range(config.scale.shards)
    ]
    cohorts = cohorts_from_parts(merge_cohort_parts(parts), as_of=as_of)
    published = publish_table(
        config.layout, "cohorts", cohorts.collect(engine="streaming"), day=as_of
    )
    shutil.rmtree(folder, ignore_errors=True)
    return StepResult([published], {"shards": config.scale.shards})


def build_unit_economics(config: ClvConfig, as_of: date) -> StepResult:
    """CAC, CLV - CAC and CLV:CAC per channel and cohort (empty without marketing inputs)."""
    customers, spend = read_marketing_inputs(config.layout)
    summary = model_summary(config, as_of)
    table = build_unit_economics_table(
        _read(config, "customer_features", as_of).lazy(),
        _read(config, "customer_clv", as_of).lazy(),
        as_of=as_of,
        customers=customers,
        acquisition_spend=spend,
        gross_margin=1.0,  # customer_clv already carries the configured gross margin
        cost_to_serve_per_order=config.segments.cost_to_serve_per_order,
        benchmark_ratio=config.segments.clv_cac_benchmark,
        new_customer_clv=summary.new_customer_clv if summary else None,
        new_customer_clv_by_channel=_per_channel_clv(config, as_of),
    )
    inputs = "present" if customers is not None and spend is not None else "absent"
    return _publish(config, "unit_economics", table, as_of, marketing_inputs=inputs)


def _per_channel_clv(config: ClvConfig, as_of: date) -> dict[str, float]:
    """New-customer CLV per acquisition channel from the channels' own fits (only when
    ``models.fit_by`` is the ``acquisition_channel`` that unit_economics groups by)."""
    if config.models.fit_by.strip() != ACQUISITION_CHANNEL:
        return {}
    return {
        group: summary.new_customer_clv
        for group, summary in group_summaries(config, as_of).items()
        if summary.new_customer_clv is not None
    }


def build_kpis(config: ClvConfig, as_of: date) -> StepResult:
    """One row of KPIs for ``as_of`` with the change against the previous complete snapshot."""
    kpis = build_kpis_table(
        _scan(config, "customer_features", as_of),
        _scan(config, "customer_clv", as_of),
        _scan(config, "customer_segments", as_of),
        None,
        as_of=as_of,
        previous=_previous(config, "kpis", as_of),
        active_window_days=config.segments.active_window_days,
        gross_margin=config.models.gross_margin,
        churn_table=_scan(config, "customer_churn", as_of),
        totals=period_totals(config, as_of).lazy(),
    )
    return _publish(config, "kpis", kpis, as_of)


def build_model_backtest(config: ClvConfig, as_of: date) -> StepResult:
    """Fit on history before ``as_of - holdout``, score the holdout, against a naive baseline."""
    options = config.model_options()
    share = _backtest_share(config, as_of)
    result = run_backtest(
        _history(config, as_of),
        sample_share=share,
        split=calibration_split(config, as_of, share=share),
        as_of=as_of,
        holdout_days=config.scale.backtest_holdout_days,
        models=options["models"],
        penalizer=config.models.penalizer,
        min_customers=config.models.min_customers,
        min_repeat_customers=config.models.min_repeat_customers,
    )
    published = [
        publish_table(config.layout, name, frame, day=as_of)
        for name, frame in (
            ("model_backtest", result.metrics),
            ("backtest_deciles", result.deciles),
            ("backtest_calibration", result.calibration),
        )
    ]
    stats = {"data_sufficient": result.data_sufficient, "messages": "\n".join(result.messages)}
    return StepResult(published, stats)


@dataclass(frozen=True)
class Report:
    path: Path
    latest: Path | None
    headline: dict[str, Any]


def build_report(
    config: ClvConfig, as_of: date, *, self_contained: bool = False, output: Path | None = None
) -> Report:
    """Render the HTML report of ``as_of`` from the published tables.

    Daily: ``reports/as_of=D/report.html`` (and ``latest/``), loading the shared plotly.js from
    ``reports/_assets/``. ``self_contained``: one standalone file with plotly.js inline, written to
    ``output`` (default ``reports/as_of=D/report-self-contained.html``); the daily pages stay.
    """
    layout = config.layout
    tables = {
        name: read_published(layout, name, as_of, REPORT_COLUMNS.get(name))
        for name in (
            "customer_clv",
            "customer_segments",
            "customer_churn",
            "cohorts",
            "model_params",
            "model_backtest",
            "backtest_deciles",
            "backtest_calibration",
            "unit_economics",
        )
    }
    if tables["customer_clv"] is None:
        raise InputError(f"snapshot {as_of} is not published; run `clv run --date {as_of}` first")
    kpis = scan_published(layout, "kpis", upto=as_of).collect()
    features = read_published(layout, "customer_features", as_of, DESCRIBE_COLUMNS)
    summary = (
        _describe(config, tables["model_params"], features)
        if tables["model_params"] is not None and features is not None
        else None
    )
    html = render_report(
        as_of=as_of,
        kpis_history=kpis,
        clv=tables["customer_clv"],
        segments=tables["customer_segments"],
        churn=tables["customer_churn"],
        cohorts=tables["cohorts"],
        model_params=tables["model_params"],
        backtest=tables["model_backtest"],
        deciles=tables["backtest_deciles"],
        calibration=tables["backtest_calibration"],
        unit_economics=tables["unit_economics"],
        unit_inputs=UnitEconomicsInputs.of_folders(
            layout.landing.parent / "customers",  # read_marketing_inputs' folders
            layout.landing.parent / "acquisition_spend",
            gross_margin=config.models.gross_margin,
            cost_to_serve_per_order=config.segments.cost_to_serve_per_order,
            benchmark_ratio=config.segments.clv_cac_benchmark,
        ),
        currency=config.report_currency(),
        self_contained=self_contained,
        diagnostics=read_published(layout, "model_diagnostics", as_of),
        summary=summary,
        churn_basis=churn_basis(config, as_of) if tables["model_params"] is not None else None,
        group_summaries=group_summaries(config, as_of),
    )
    if self_contained:
        path = write_report(html, output or self_contained_path(layout.warehouse, as_of))
        latest: Path | None = None
    else:
        latest_day = max(complete_dates(layout) + [as_of])
        path, latest = publish_report(
            html, layout.warehouse, as_of, update_latest=as_of >= latest_day
        )
    row = kpis.filter(pl.col("as_of") == as_of)
    headline = (
        row.select("customers", "active_customers", "avg_predicted_clv", "churn_rate").row(
            0, named=True
        )
        if row.height
        else {}
    )
    return Report(path, latest, headline)


def commit_snapshot(config: ClvConfig, as_of: date) -> StepResult:
    """The commit point: make ``as_of`` visible in the manifest, the ``snapshot=D`` folders readers
    glob, and the DuckDB views, all tables together."""
    upgrade_warehouse(config.layout)
    dates = mark_complete(config.layout, as_of)
    problems = verify_snapshot(config.layout, as_of)
    return StepResult(
        [],
        {
            "complete_snapshots": len(dates),
            "catalog": str(config.layout.catalog),
            "catalog_problems": problems,
        },
    )


def validate_file(
    config: ClvConfig, path: Path, *, column_map: dict[str, str] | None = None
) -> ValidationResult:
    """Run the validation suite on one delivered file without running the pipeline.

    The file is read with the data home's read options; rows are assigned to the day of their
    ``occurred_at`` and checked against already validated history in the data home. Rows without
    a readable ``occurred_at`` belong to no day: they are returned in ``undated`` with the reason.
    """
    rules = config.validation_rules()
    options = config.read_options()
    if column_map is not None:
        options = replace(options, column_map=column_map)
    frame = read_delivered_file(path, options=options)
    stamps = parse_timestamps(frame.get_column("occurred_at"), naive_timezone=rules.naive_timezone)
    parsed = (
        stamps.alias("_ts").to_frame().select(event_date("_ts", timezone=rules.timezone).alias(DAY))
    )
    raw = frame.with_columns(parsed.get_column(DAY))
    undated = raw.filter(pl.col(DAY).is_null()).drop(DAY)
    undated = conform(
        undated.with_columns(undated_reason(pl.col("occurred_at"))), QUARANTINE_TRANSACTIONS
    )
    raw = raw.filter(pl.col(DAY).is_not_null())
    in_file = raw.get_column(DAY).unique().to_list()
    if not in_file:
        return ValidationResult({}, SuiteResult([]), undated)
    result = validate_transactions(raw, rules=rules, earlier=_ids_outside(config.layout, in_file))
    return replace(result, undated=undated)
