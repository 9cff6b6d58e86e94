"""Turn raw rows of one or more partition days into typed transactions plus quarantined rows.

Two layers:

1. **parsing** (polars): strings to types; text that is present but unparseable is a reason of its
   own ("amount not a number", "quantity not an integer", ...);
2. **expectations** (Great Expectations, :mod:`clv_pipeline.validation.suite`) on the typed pandas
   view: ids present, ``transaction_id`` unique within its day and not delivered on an earlier
   day, ``occurred_at`` on the partition's day and not in the future, ``amount`` finite and within
   bounds, ``currency`` and ``status`` accepted.

A row is quarantined with every reason that applies. Exact re-deliveries (same day, same value in
*every delivered column*, compared through ``_row_digest``) are dropped and counted, never double
counted. A refund tied to its own order id (``refund_of == transaction_id``, order-line exports)
may share that id with the purchase it refunds. Several days are validated
in one GX call because GX costs about a second per call whatever the size.

``revenue_kind``: ``ignored`` when the status is a non-revenue status (cancelled, failed, ...), else
``purchase`` (amount > 0, or zero with ``zero_amount="purchase"``, the default) or ``refund``
(amount < 0); a zero amount with ``zero_amount="ignore"`` is ``ignored``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import polars as pl

from clv_pipeline.parse import (
    BAD_TIMESTAMP_REASON,
    clean_text,
    event_date,
    parse_integer,
    parse_number,
    parse_timestamps,
)
from clv_pipeline.schema import (
    INPUT_COLUMNS,
    QUARANTINE_TRANSACTIONS,
    RAW_TRANSACTIONS,
    VALIDATED_TRANSACTIONS,
    conform,
    with_added_columns,
)
from clv_pipeline.validation.rules import ValidationRules
from clv_pipeline.validation.suite import DUPLICATE_ID_REASON, SuiteResult, run_suite

__all__ = [
    "DUPLICATE_ID_REASON",
    "PARSE_REASONS",
    "DayResult",
    "ValidationResult",
    "count_reasons",
    "empty_day_result",
    "revenue_kind",
    "validate_day",
    "validate_transactions",
]

CONTRACT = [c.name for c in INPUT_COLUMNS]
DAY = "_partition_day"

# the quarantine reason of a value that is present but cannot be parsed, per column
PARSE_REASONS = {
    "occurred_at": BAD_TIMESTAMP_REASON,
    "amount": "amount not a number",
    "quantity": "quantity not an integer",
}


@dataclass(frozen=True)
class DayResult:
    day: date
    clean: pl.DataFrame
    quarantine: pl.DataFrame
    stats: dict[str, int] = field(default_factory=dict)

    def reasons(self) -> dict[str, int]:
        """Quarantined rows per reason, most frequent first."""
        return count_reasons(self.quarantine)

    def examples(self, limit: int = 3) -> dict[str, list[str]]:
        """For each reason, the first offending rows as ``file:row column=value`` strings."""
        out: dict[str, list[str]] = {}
        for row in self.quarantine.iter_rows(named=True):
            for reason in row["reason"].split("; "):
                column = reason.split(" ", 1)[0]
                value = row.get(column, "")
                where = f"{row['_source_file']}:{row['_source_row']}"
                shown = out.setdefault(reason, [])
                if len(shown) < limit:
                    shown.append(f"{where} {column}={value!r}" if column in row else where)
        return out


@dataclass(frozen=True)
class ValidationResult:
    days: dict[date, DayResult]
    suite: SuiteResult
    undated: pl.DataFrame | None = None  # rows without a readable occurred_at (no day)

    def day(self, day: date) -> DayResult:
        return self.days[day]


def count_reasons(quarantine: pl.DataFrame) -> dict[str, int]:
    if quarantine.is_empty():
        return {}
    counts = (
        quarantine.select(pl.col("reason").str.split("; ").explode())
        .group_by("reason")
        .len()
        .sort(["len", "reason"], descending=[True, False])
    )
    return dict(zip(counts["reason"].to_list(), counts["len"].to_list(), strict=True))


def _parse(raw: pl.DataFrame, rules: ValidationRules) -> pl.DataFrame:
    present = lambda c: pl.col(c).str.strip_chars().str.len_chars().gt(0)  # noqa: E731
    stamps = parse_timestamps(raw.get_column("occurred_at"), naive_timezone=rules.naive_timezone)
    typed = raw.with_columns(
        clean_text("transaction_id").alias("_tid"),
        clean_text("customer_id").alias("_cid"),
        stamps.alias("_ts"),
        parse_number("amount").alias("_amount"),
        parse_integer("quantity").alias("_qty"),
        clean_text("currency").str.to_uppercase().alias("_currency"),
        clean_text("status").str.to_lowercase().alias("_status"),
        clean_text("refund_of").alias("_refund_of"),
    ).with_columns(event_date("_ts", timezone=rules.timezone).alias("_event_date"))
    parse_problems = [
        (present(column) & pl.col(parsed).is_null(), PARSE_REASONS[column])
        for column, parsed in (("occurred_at", "_ts"), ("amount", "_amount"), ("quantity", "_qty"))
    ]
    reason = pl.concat_str(
        [pl.when(cond).then(pl.lit(msg)) for cond, msg in parse_problems],
        separator="; ",
        ignore_nulls=True,
    )
    return typed.with_columns(pl.when(reason != "").then(reason).alias("_parse_reason"))


def _merge(parse_reason: str | None, suite_reasons: list[str]) -> str | None:
    """Parse reasons first; a suite "missing" reason for a column that failed to parse is dropped."""
    reasons = parse_reason.split("; ") if parse_reason else []
    unparsed = {r.split(" ", 1)[0] for r in reasons}
    reasons += [
        r for r in suite_reasons if r.split(" ", 1)[0] not in unparsed or " missing" not in r
    ]
    return "; ".join(dict.fromkeys(reasons)) or None


def revenue_kind(
    status: pl.Expr,
    amount: pl.Expr,
    non_revenue: Sequence[str],
    zero_amount: str = "purchase",
) -> pl.Expr:
    """``ignored`` (non-revenue status, or a zero amount with ``zero_amount="ignore"``), else
    ``purchase`` (amount >= 0) or ``refund`` (amount < 0)."""
    zero_ignored = (amount == 0) if zero_amount == "ignore" else pl.lit(False)
    return (
        pl.when(status.is_in(list(non_revenue)) | zero_ignored)
        .then(pl.lit("ignored"))
        .when(amount >= 0)
        .then(pl.lit("purchase"))
        .otherwise(pl.lit("refund"))
    )


def validate_transactions(
    raw: pl.DataFrame,
    *,
    rules: ValidationRules,
    now: datetime | None = None,
    earlier: pl.LazyFrame | None = None,
) -> ValidationResult:
    """Validate raw rows of one or more days.

    Parameters
    ----------
    raw
        ``raw_transactions`` rows plus a ``_partition_day`` (Date) column naming each row's day.
    rules
        Bounds, accepted values, timezones.
    now
        Rows after this instant are "in the future" (default: the current time).
    earlier
        ``transaction_id, event_date`` of transactions already validated on days outside ``raw``;
        an id seen on an earlier day than the row's is quarantined.
    """
    days = raw.get_column(DAY).unique().sort().to_list()
    if not days:
        return ValidationResult({}, SuiteResult([]))
    raw = with_added_columns(raw, RAW_TRANSACTIONS)
    typed = _parse(
        conform(raw.drop(DAY), RAW_TRANSACTIONS).with_columns(raw.get_column(DAY)), rules
    )
    typed = typed.sort([DAY, "_source_file", "_source_row"]).with_columns(
        pl.struct([*CONTRACT, "_row_digest"]).hash(seed=0).alias("_content")
    )
    # exact re-deliveries within a day: keep the first copy
    first_copy = pl.struct(DAY, "_tid", "_content").is_first_distinct()
    dropped = typed.filter(~first_copy & pl.col("_tid").is_not_null())
    typed = typed.filter(first_copy | pl.col("_tid").is_null())
    # earliest day on which each id was delivered (history outside this batch + this batch)
    seen = typed.select(pl.col("_tid").alias("transaction_id"), pl.col(DAY).alias("event_date"))
    if earlier is not None:
        ids = typed.get_column("_tid").drop_nulls().unique().to_frame("transaction_id")
        # streams the history's ids: memory stays flat however long the history is
        past = earlier.join(ids.lazy(), on="transaction_id", how="semi").collect(engine="streaming")
        seen = pl.concat([seen, past.select(seen.columns)], how="vertical_relaxed")
    first_day = seen.group_by("transaction_id").agg(pl.col("event_date").min().alias("_first_day"))
    # a refund of its own order id (order lines) may follow the purchase it refunds
    own_refund = (pl.col("_refund_of") == pl.col("_tid")).fill_null(False) & (
        pl.col("_amount") < 0
    ).fill_null(False)
    typed = typed.join(
        first_day, left_on="_tid", right_on="transaction_id", how="left"
    ).with_columns(
        pl.when((pl.col("_first_day") < pl.col(DAY)) & ~own_refund)
        .then(pl.col("_first_day").cast(pl.String))
        .alias("_delivered_on"),
        own_refund.alias("_own_refund"),
    )
    view = typed.select(
        pl.col("_tid").alias("transaction_id"),
        pl.concat_str(
            [
                pl.col(DAY).cast(pl.String),
                pl.col("_tid"),
                pl.when(pl.col("_own_refund")).then(pl.lit("refund")),
            ],
            separator="/",
            ignore_nulls=True,
        ).alias("day_transaction_id"),
        pl.col("_cid").alias("customer_id"),
        pl.col("_ts").alias("occurred_at"),
        pl.col("_event_date").alias("event_date"),
        pl.col(DAY).alias("partition_day"),
        pl.col("_amount").alias("amount"),
        pl.col("_currency").alias("currency"),
        pl.col("_status").alias("status"),
        pl.col("_delivered_on"),
    )
    suite = run_suite(view, rules=rules, now=now or datetime.now(UTC))
    parsed = typed.get_column("_parse_reason")
    reasons = parsed.to_list()
    for i in set(suite.row_reasons) | set(parsed.is_not_null().arg_true().to_list()):
        reasons[i] = _merge(reasons[i], suite.row_reasons.get(i, []))
    typed = typed.with_columns(pl.Series("reason", reasons, dtype=pl.String))
    non_revenue = rules.non_revenue_statuses
    clean = typed.filter(pl.col("reason").is_null()).select(
        pl.col(DAY),
        pl.col("_tid").alias("transaction_id"),
        pl.col("_cid").alias("customer_id"),
        pl.col("_ts").alias("occurred_at"),
        pl.col("_event_date").alias("event_date"),
        pl.col("_amount").alias("amount"),
        revenue_kind(pl.col("_status"), pl.col("_amount"), non_revenue, rules.zero_amount).alias(
            "revenue_kind"
        ),
        pl.col("_currency").alias("currency"),
        pl.col("_qty").alias("quantity"),
        pl.col("_status").alias("status"),
        clean_text("channel").alias("channel"),
        clean_text("product_category").alias("product_category"),
        pl.col("_refund_of").alias("refund_of"),
        pl.col("_source_file"),
    )
    bad = typed.filter(pl.col("reason").is_not_null())
    results = {}
    for day in days:
        in_day = pl.col(DAY) == day
        quarantine = conform(bad.filter(in_day), QUARANTINE_TRANSACTIONS)
        kept = conform(clean.filter(in_day), VALIDATED_TRANSACTIONS)
        rows_in = int(raw.select((pl.col(DAY) == day).sum()).item())
        results[day] = DayResult(
            day,
            kept,
            quarantine,
            {
                "rows_in": rows_in,
                "rows_valid": kept.height,
                "rows_quarantined": quarantine.height,
                "duplicates_dropped": int(dropped.select(in_day.sum()).item()),
            },
        )
    return ValidationResult(results, suite)


def validate_day(
    raw: pl.DataFrame,
    *,
    day: date,
    rules: ValidationRules | None = None,
    now: datetime | None = None,
    earlier: pl.LazyFrame | None = None,
) -> DayResult:
    """Validate the raw rows of a single partition day (see :func:`validate_transactions`)."""
    if raw.is_empty():
        return empty_day_result(day)
    with_day = raw.with_columns(pl.lit(day).alias(DAY))
    result = validate_transactions(
        with_day, rules=rules or ValidationRules(), now=now, earlier=earlier
    )
    return result.day(day)


def empty_day_result(day: date) -> DayResult:
    """The result for a day without any delivered row."""
    return DayResult(
        day,
        pl.DataFrame(schema=VALIDATED_TRANSACTIONS.schema),
        pl.DataFrame(schema=QUARANTINE_TRANSACTIONS.schema),
        {"rows_in": 0, "rows_valid": 0, "rows_quarantined": 0, "duplicates_dropped": 0},
    )
