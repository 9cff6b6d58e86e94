"""The Great Expectations suite run on each day's typed transactions (pandas view).

GX 1.x has no polars support, so the typed frame is handed over with ``to_pandas()``. The context
is ephemeral and built once per process; the suite is kept in code and versioned by
``SUITE_VERSION`` (bump it when an expectation changes). GX is imported lazily: it costs seconds.
Every expectation carries the quarantine reason used for the rows it flags.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from clv_pipeline.validation.rules import ValidationRules

SUITE_NAME = "clv_transactions_day"
SUITE_VERSION = "1.0"
COLUMNS = (
    "transaction_id",
    "day_transaction_id",
    "customer_id",
    "occurred_at",
    "event_date",
    "partition_day",
    "amount",
    "currency",
    "status",
    "_delivered_on",
)


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str
    column: str
    reason: str
    success: bool
    unexpected_count: int
    examples: tuple[str, ...] = ()


@dataclass
class SuiteResult:
    outcomes: list[ExpectationOutcome]
    row_reasons: dict[int, list[str]] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    def summary(self) -> list[dict[str, Any]]:
        """One dict per expectation, for Dagster metadata and the CLI."""
        return [
            {
                "expectation": o.expectation,
                "column": o.column,
                "success": o.success,
                "unexpected": o.unexpected_count,
                "examples": ", ".join(o.examples),
            }
            for o in self.outcomes
        ]


DUPLICATE_ID_REASON = "duplicate transaction_id with different values on the same day"


def _gx() -> Any:
    """``great_expectations``, imported without its optional Spark support: with pyspark installed
    (the ``spark`` extra, for BI readers) GX would import it, ~1.5 s more per process, although
    the suite runs on pandas. A later ``import pyspark`` in the same process works as usual."""
    if "great_expectations" not in sys.modules and "pyspark" not in sys.modules:
        sys.modules["pyspark"] = None  # type: ignore[assignment]  # `import pyspark` fails fast
        try:
            import great_expectations  # noqa: F401
        finally:
            del sys.modules["pyspark"]
    import great_expectations as gx
    from great_expectations.execution_engine import pandas_execution_engine

    # GX fingerprints every pandas batch below 1 GB (an md5 over pandas' row hashes, ~1 s per
    # million rows, ~20% of the suite) only to tell batches apart in stored results; an
    # ephemeral context stores none, so the fingerprint is skipped as GX does for large frames
    pandas_execution_engine.HASH_THRESHOLD = 0
    return gx


def warm_up() -> None:
    """Import GX now (its first import costs seconds): a run catching up many days calls this
    on a spare thread while the days are read."""
    _gx()


def _expectations(rules: ValidationRules, now: datetime) -> list[Any]:
    """The suite; each expectation's ``meta["reason"]`` is the quarantine reason it gives."""
    _gx()
    import great_expectations.expectations as gxe

    def reason(text: str) -> dict[str, str]:
        return {"reason": text}

    currency = (
        gxe.ExpectColumnValuesToBeInSet(
            column="currency",
            value_set=list(rules.currencies),
            meta=reason(f"currency not one of {', '.join(rules.currencies)}"),
        )
        if rules.currencies
        else gxe.ExpectColumnValuesToMatchRegex(
            column="currency", regex=r"^[A-Z]{3}$", meta=reason("currency not a three-letter code")
        )
    )
    return [
        gxe.ExpectColumnValuesToNotBeNull(
            column="transaction_id", meta=reason("transaction_id missing")
        ),
        gxe.ExpectColumnValuesToBeUnique(
            column="day_transaction_id",
            meta=reason(DUPLICATE_ID_REASON),
        ),
        gxe.ExpectColumnValuesToBeNull(
            column="_delivered_on",
            meta=reason("transaction_id already delivered on an earlier day"),
        ),
        gxe.ExpectColumnValuesToNotBeNull(column="customer_id", meta=reason("customer_id missing")),
        gxe.ExpectColumnValuesToNotBeNull(
            column="occurred_at",
            meta=reason("occurred_at missing or not an ISO-8601 timestamp or date"),
        ),
        gxe.ExpectColumnPairValuesToBeEqual(
            column_A="event_date",
            column_B="partition_day",
            ignore_row_if="either_value_is_missing",
            meta=reason(f"occurred_at not on the partition day ({rules.timezone})"),
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="occurred_at", max_value=now, meta=reason("occurred_at in the future")
        ),
        gxe.ExpectColumnValuesToNotBeNull(
            column="amount", meta=reason("amount missing or not a number")
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="amount",
            min_value=rules.amount_min,
            max_value=rules.amount_max,
            meta=reason(
                f"amount not finite or outside [{rules.amount_min:g}, {rules.amount_max:g}]"
            ),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="status",
            value_set=list(rules.known_statuses),
            meta=reason("status not a known value"),
        ),
        currency,
    ]


def suite_reasons(rules: ValidationRules) -> list[str]:
    """The quarantine reason of every expectation of the suite, in suite order."""
    return [str(e.meta["reason"]) for e in _expectations(rules, datetime.now().astimezone())]


@functools.cache
def _batch_definition() -> Any:
    """Ephemeral GX context with one pandas dataframe asset, built once per process."""
    gx = _gx()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # analytics off and progress bars off in the context's own config (no process-wide env var)
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    source = context.data_sources.add_pandas("clv")
    asset = source.add_dataframe_asset("transactions_day")
    return asset.add_batch_definition_whole_dataframe("whole_day")


def _to_pandas(frame: pl.DataFrame) -> Any:
    """``frame`` for GX: string columns as pyarrow-backed arrays (no copy; GX's uniqueness check
    hashes them about 2x faster than pandas' own ``str`` dtype, 0.8 s less on 2M rows), the other
    columns as polars converts them (GX's comparisons of dates, timestamps and amounts give the
    same results on those; the tests compare every outcome and row)."""
    import pandas as pd

    strings = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    converted = frame.select(pl.exclude(strings)).to_pandas()
    arrow = frame.select(strings).to_arrow()
    for name in strings:
        converted[name] = pd.arrays.ArrowExtensionArray(arrow.column(name))
    return converted[list(frame.columns)]


def run_suite(frame: pl.DataFrame, *, rules: ValidationRules, now: datetime) -> SuiteResult:
    """Validate ``frame`` (typed columns in :data:`COLUMNS`) and collect per-row reasons.

    The returned ``row_reasons`` are keyed by row position in ``frame``.
    """
    gx = _gx()

    batch_definition = _batch_definition()  # creates the context the suite needs
    suite = gx.ExpectationSuite(name=f"{SUITE_NAME}-{SUITE_VERSION}")
    for expectation in _expectations(rules, now):
        suite.add_expectation(expectation)
    # the one-batch path of GX's own ValidationDefinition.run: the frame is loaded (and hashed
    # for its batch id, ~1 s per million rows) once; ``get_batch(...).validate`` loads it twice
    from great_expectations.validator.v1_validator import Validator

    validator = Validator(
        batch_definition=batch_definition,
        batch_parameters={"dataframe": _to_pandas(frame.select(COLUMNS))},
        result_format={"result_format": "COMPLETE"},
    )
    validation = validator.validate_expectation_suite(suite)
    outcomes: list[ExpectationOutcome] = []
    row_reasons: dict[int, list[str]] = {}
    for result in validation.results:
        config = result.expectation_config
        if config is None:  # GX sets it on every result of a suite run
            raise RuntimeError("GX returned a result without its expectation")
        if result.exception_info and result.exception_info.get("raised_exception"):
            message = str(result.exception_info.get("exception_message", "error"))
            raise RuntimeError(f"GX expectation {config.type} could not run: {message}")
        reason = str((config.meta or {}).get("reason", config.type))
        details = result.result or {}
        column = config.kwargs.get("column") or config.kwargs.get("column_A", "")
        outcomes.append(
            ExpectationOutcome(
                expectation=config.type,
                column=str(column),
                reason=reason,
                success=bool(result.success),
                unexpected_count=int(details.get("unexpected_count") or 0),
                examples=tuple(repr(v) for v in (details.get("partial_unexpected_list") or [])[:3]),
            )
        )
        for row in details.get("unexpected_index_list") or []:
            row_reasons.setdefault(int(row), []).append(reason)
    return SuiteResult(outcomes, row_reasons)
