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
    Table,
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


# ISO-8601 shapes polars parses natively (no chrono): whole seconds with ``Z``, or naive. A row of
# such a shape that the native parser rejects (an invalid date, ...) goes through
# ``parse_timestamps`` like any other row, so the result is the same (tests/unit/
# test_validation_speed_paths.py compares both on random and edge-case strings).
_NATIVE_TIMESTAMPS = (
    (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$", "%Y-%m-%dT%H:%M:%SZ", True),
    (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$", "%Y-%m-%dT%H:%M:%S", False),
    (r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$", "%Y-%m-%d %H:%M:%S", False),
)
_UTC_US = pl.Datetime("us", "UTC")


def _timestamps(values: pl.Series, *, naive_timezone: str) -> pl.Series:
    """:func:`~clv_pipeline.parse.parse_timestamps` (same results), with the common whole-second
    ISO-8601 shapes parsed natively by polars, several times faster than the chrono formats."""
    text = values.str.strip_chars()
    out = pl.Series(values.name, dtype=_UTC_US).extend_constant(None, len(values))
    left = len(values)
    for shape, fmt, aware in _NATIVE_TIMESTAMPS:
        if not left:
            break
        mask = text.str.contains(shape)
        hits = int(mask.sum())
        if not hits:
            continue
        rows = text if hits == len(text) else text.filter(mask)
        parsed = rows.str.to_datetime(fmt, strict=False, time_unit="us")
        parsed = (
            parsed.dt.replace_time_zone("UTC")
            if aware
            else parsed.dt.replace_time_zone(
                naive_timezone, ambiguous="earliest", non_existent="null"
            ).dt.convert_time_zone("UTC")
        )
        out = (
            parsed.alias(values.name) if hits == len(text) else out.scatter(mask.arg_true(), parsed)
        )
        left -= hits
    missing = (out.is_null() & values.is_not_null()).arg_true()
    if len(missing):
        rest = parse_timestamps(values.gather(missing), naive_timezone=naive_timezone)
        out = out.scatter(missing, rest)
    return out


def _parse(raw: pl.DataFrame, rules: ValidationRules) -> pl.DataFrame:
    """Typed columns (``_tid``, ``_ts``, ...) next to the raw ones, plus ``_parse_reason``."""
    stamps = _timestamps(raw.get_column("occurred_at"), naive_timezone=rules.naive_timezone)
    typed = raw.lazy().with_columns(  # lazy: each column is stripped once (common subexpressions)
        clean_text("transaction_id").alias("_tid"),
        clean_text("customer_id").alias("_cid"),
        stamps.alias("_ts"),
        parse_number("amount").alias("_amount"),
        parse_integer("quantity").alias("_qty"),
        clean_text("currency").str.to_uppercase().alias("_currency"),
        clean_text("status").str.to_lowercase().alias("_status"),
        clean_text("refund_of").alias("_refund_of"),
    )
    frame = typed.with_columns(
        event_date("_ts", timezone=rules.timezone).alias("_event_date")
    ).collect()
    return frame.with_columns(_parse_reasons(frame))


def _parse_reasons(typed: pl.DataFrame) -> pl.Series:
    """``_parse_reason``: the parse reasons of each row ("; "-joined), null when it has none.

    Only rows with a null parsed value can have one, so the reasons are built for those rows."""
    pairs = (("occurred_at", "_ts"), ("amount", "_amount"), ("quantity", "_qty"))
    unparsed = typed.select(pl.any_horizontal(pl.col(p).is_null() for _, p in pairs)).to_series()
    out = pl.Series("_parse_reason", dtype=pl.String).extend_constant(None, typed.height)
    rows = unparsed.arg_true()
    if not len(rows):
        return out
    present = lambda c: pl.col(c).str.strip_chars().str.len_chars().gt(0)  # noqa: E731
    reason = pl.concat_str(
        [
            pl.when(present(column) & pl.col(parsed).is_null()).then(pl.lit(PARSE_REASONS[column]))
            for column, parsed in pairs
        ],
        separator="; ",
        ignore_nulls=True,
    )
    columns = [c for pair in pairs for c in pair]
    reasons = typed.select(columns)[rows].select(pl.when(reason != "").then(reason)).to_series()
    return out.scatter(rows, reasons)


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
    order = [DAY, "_source_file", "_source_row"]
    if not _is_sorted(typed, order):  # batches of landed days usually arrive in this order
        typed = typed.sort(order)
    # exact re-deliveries within a day: keep the first copy. Only a row whose id occurs more than
    # once can be a copy, so the content of those rows only is hashed and compared. ``repeated``
    # holds every such row (and, on a hash collision, a few more: harmless, they are compared too).
    id_hash = typed.get_column("_tid").hash(seed=0)
    repeated = (
        id_hash.is_duplicated()
        if id_hash.n_unique() < len(id_hash)  # (counting is cheaper than marking)
        else pl.repeat(False, len(id_hash), eager=True)
    )
    dropped = typed.clear()
    if repeated.any():
        rows = repeated.arg_true()
        content = pl.struct([*CONTRACT, "_row_digest"]).hash(seed=0)
        copy = (
            typed[rows]
            .select(
                ~pl.struct(
                    pl.col(DAY), pl.col("_tid"), content.alias("_content")
                ).is_first_distinct()
                & pl.col("_tid").is_not_null()
            )
            .to_series()
        )
        if copy.any():
            keep = pl.repeat(True, typed.height, eager=True).scatter(rows.filter(copy), False)
            dropped = typed.filter(~keep)
            typed = typed.filter(keep)
            repeated = repeated.filter(keep)
    # earliest day on which each id was delivered, for the ids it can be earlier than the row's
    # day for: ids of several rows in a batch of several days, and ids in the history
    seen = typed.filter(repeated) if len(days) > 1 else typed.clear()
    seen = seen.select(pl.col("_tid").alias("transaction_id"), pl.col(DAY).alias("event_date"))
    if earlier is not None:
        # streams the history's ids (memory stays flat however long the history is), keeping
        # those whose hash is a batch id's hash; then the exact match on the few kept
        maybe = earlier.filter(pl.col("transaction_id").hash(seed=0).is_in(id_hash.implode()))
        ids = typed.select(pl.col("_tid").alias("transaction_id"))
        past = maybe.collect(engine="streaming").join(ids, on="transaction_id", how="semi")
        seen = pl.concat([seen, past.select(seen.columns)], how="vertical_relaxed")
    # a refund of its own order id (order lines) may follow the purchase it refunds
    own_refund = (pl.col("_refund_of") == pl.col("_tid")).fill_null(False) & (
        pl.col("_amount") < 0
    ).fill_null(False)
    if seen.is_empty():  # no id can have an earlier day: nothing to join
        typed = typed.with_columns(
            pl.lit(None, pl.String).alias("_delivered_on"), own_refund.alias("_own_refund")
        )
    else:
        first_day = seen.group_by("transaction_id").agg(
            pl.col("event_date").min().alias("_first_day")
        )
        typed = typed.join(
            first_day, left_on="_tid", right_on="transaction_id", how="left", maintain_order="left"
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
    # reasons: the parse reasons merged with the suite's, for the rows that have any
    reason = typed.get_column("_parse_reason").alias("reason")
    flagged = sorted(set(suite.row_reasons) | set(reason.is_not_null().arg_true().to_list()))
    if flagged:
        merged = [
            _merge(parse_reason, suite.row_reasons.get(i, []))
            for i, parse_reason in zip(flagged, reason.gather(flagged).to_list(), strict=True)
        ]
        reason = reason.scatter(flagged, pl.Series(merged, dtype=pl.String))
    typed = typed.with_columns(reason)
    non_revenue = rules.non_revenue_statuses
    clean = (
        typed.lazy()  # lazy: only the columns kept are filtered
        .filter(pl.col("reason").is_null())
        .select(
            pl.col(DAY),
            pl.col("_tid").alias("transaction_id"),
            pl.col("_cid").alias("customer_id"),
            pl.col("_ts").alias("occurred_at"),
            pl.col("_event_date").alias("event_date"),
            pl.col("_amount").alias("amount"),
            revenue_kind(
                pl.col("_status"), pl.col("_amount"), non_revenue, rules.zero_amount
            ).alias("revenue_kind"),
            pl.col("_currency").alias("currency"),
            pl.col("_qty").alias("quantity"),
            pl.col("_status").alias("status"),
            clean_text("channel").alias("channel"),
            clean_text("product_category").alias("product_category"),
            pl.col("_refund_of").alias("refund_of"),
            pl.col("_source_file"),
        )
        .collect()
    )
    bad = typed.filter(pl.col("reason").is_not_null())
    rows_in = dict(raw.get_column(DAY).value_counts().iter_rows())
    duplicates = dict(dropped.get_column(DAY).value_counts().iter_rows())
    results = {}
    # each day's rows, in their order: one pass over the batch (a filter per day cost
    # O(rows x days), ~1 s for a catch-up's 2M-row batch of 250 days)
    bad_days = _by_day(bad, QUARANTINE_TRANSACTIONS)
    clean_days = _by_day(clean, VALIDATED_TRANSACTIONS)
    for day in days:
        quarantine = bad_days.get(day, bad_days[None])
        kept = clean_days.get(day, clean_days[None])
        results[day] = DayResult(
            day,
            kept,
            quarantine,
            {
                "rows_in": int(rows_in[day]),
                "rows_valid": kept.height,
                "rows_quarantined": quarantine.height,
                "duplicates_dropped": int(duplicates.get(day, 0)),
            },
        )
    return ValidationResult(results, suite)


def _by_day(frame: pl.DataFrame, table: Table) -> dict[date | None, pl.DataFrame]:
    """The rows of ``frame`` conformed to ``table``, per partition day (column ``DAY``) in their
    order; under None an empty frame, for the days without rows."""
    rows = conform(frame, table)
    parts: dict[date | None, pl.DataFrame] = {None: rows.clear()}
    if rows.height:
        keyed = rows.with_columns(frame.get_column(DAY))
        for (day,), part in keyed.partition_by(DAY, as_dict=True, include_key=False).items():
            parts[day] = part
    return parts


def _is_sorted(frame: pl.DataFrame, keys: list[str]) -> bool:
    """Whether ``frame`` is already in ascending order of ``keys`` (no nulls in them)."""
    if frame.height < 2 or any(frame.get_column(k).null_count() for k in keys):
        return frame.height < 2
    ordered = pl.col(keys[-1]) >= pl.col(keys[-1]).shift(1)
    for key in reversed(keys[:-1]):
        ordered = (pl.col(key) > pl.col(key).shift(1)) | (
            (pl.col(key) == pl.col(key).shift(1)) & ordered
        )
    return bool(frame.select(ordered.fill_null(True).all()).item())


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
