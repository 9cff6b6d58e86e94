"""Turn one day's raw rows into typed, deduplicated transactions plus quarantined rows.

Rules (documented in docs/data_contract.md):

* a row is quarantined, with every reason that applies, when an id is missing, ``occurred_at`` does
  not parse or falls on another day than the partition (in the pipeline timezone), ``amount`` is
  missing, not a number or not finite, or ``quantity`` is present but not an integer;
* rows repeating a ``transaction_id`` with identical values are re-deliveries: one is kept (the first
  by source file name and row), the others dropped and counted; a repeat with *different* values is
  quarantined ("conflicting duplicate") and the first one kept;
* ``revenue_kind``: ``ignored`` when ``status`` is a non-revenue status (cancelled, failed, ...) or
  the amount is zero, else ``purchase`` for amount > 0 and ``refund`` for amount < 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import polars as pl

from clv_pipeline.schema import (
    INPUT_COLUMNS,
    QUARANTINE_TRANSACTIONS,
    RAW_TRANSACTIONS,
    VALIDATED_TRANSACTIONS,
    conform,
)
from clv_pipeline.validation.parse import (
    clean_text,
    event_date,
    parse_integer,
    parse_number,
    parse_timestamp,
)

CONTRACT = [c.name for c in INPUT_COLUMNS]


@dataclass(frozen=True)
class ValidationResult:
    clean: pl.DataFrame
    quarantine: pl.DataFrame
    stats: dict[str, int] = field(default_factory=dict)

    def reasons(self) -> dict[str, int]:
        """Count of quarantined rows per reason."""
        if self.quarantine.is_empty():
            return {}
        counts = (
            self.quarantine.select(pl.col("reason").str.split("; ").explode())
            .group_by("reason")
            .len()
            .sort(["len", "reason"], descending=[True, False])
        )
        return dict(zip(counts["reason"].to_list(), counts["len"].to_list(), strict=True))


def validate_transactions(
    raw: pl.DataFrame,
    *,
    day: date,
    timezone: str = "UTC",
    naive_timezone: str = "UTC",
    non_revenue_statuses: Sequence[str] = ("cancelled", "canceled", "failed", "void", "declined"),
) -> ValidationResult:
    """Validate one partition day of raw (all-string) rows.

    Parameters
    ----------
    raw
        Rows in the ``raw_transactions`` schema (strings plus ``_source_file``/``_source_row``).
    day
        The partition's event date; rows whose ``occurred_at`` falls elsewhere are quarantined.
    timezone, naive_timezone
        Pipeline timezone (day boundaries) and the zone assumed for offset-less timestamps.
    """
    raw = conform(raw, RAW_TRANSACTIONS)
    typed = raw.with_columns(
        clean_text("transaction_id").alias("_tid"),
        clean_text("customer_id").alias("_cid"),
        parse_timestamp("occurred_at", naive_timezone=naive_timezone).alias("_ts"),
        parse_number("amount").alias("_amount"),
        parse_integer("quantity").alias("_qty"),
    ).with_columns(event_date("_ts", timezone=timezone).alias("_day"))
    problems = [
        (pl.col("_tid").is_null(), pl.lit("transaction_id missing")),
        (pl.col("_cid").is_null(), pl.lit("customer_id missing")),
        (
            pl.col("occurred_at").is_null() | (pl.col("occurred_at").str.strip_chars() == ""),
            pl.lit("occurred_at missing"),
        ),
        (
            pl.col("occurred_at").str.strip_chars().str.len_chars().gt(0) & pl.col("_ts").is_null(),
            pl.lit("occurred_at not an ISO-8601 timestamp or date"),
        ),
        (
            pl.col("_day").is_not_null() & (pl.col("_day") != day),
            pl.format(
                "occurred_at falls on {} ({}), not the partition day {}",
                pl.col("_day").cast(pl.String),
                pl.lit(timezone),
                pl.lit(day.isoformat()),
            ),
        ),
        (
            pl.col("amount").is_null() | (pl.col("amount").str.strip_chars() == ""),
            pl.lit("amount missing"),
        ),
        (
            pl.col("amount").str.strip_chars().str.len_chars().gt(0) & pl.col("_amount").is_null(),
            pl.lit("amount not a number"),
        ),
        (
            pl.col("_amount").is_not_null() & ~pl.col("_amount").is_finite(),
            pl.lit("amount not finite"),
        ),
        (
            pl.col("quantity").str.strip_chars().str.len_chars().gt(0) & pl.col("_qty").is_null(),
            pl.lit("quantity not an integer"),
        ),
    ]
    typed = typed.with_columns(
        pl.concat_str(
            [pl.when(cond).then(msg) for cond, msg in problems], separator="; ", ignore_nulls=True
        ).alias("reason")
    ).with_columns(pl.when(pl.col("reason") != "").then(pl.col("reason")).alias("reason"))

    bad = typed.filter(pl.col("reason").is_not_null())
    good = typed.filter(pl.col("reason").is_null()).sort(["_source_file", "_source_row"])

    # Re-deliveries and conflicting duplicates of transaction_id.
    good = good.with_columns(
        pl.int_range(pl.len()).over("_tid").alias("_dup_rank"),
        pl.struct(CONTRACT).hash(seed=0).alias("_content"),
    ).with_columns(
        (pl.col("_content") != pl.col("_content").first().over("_tid")).alias("_conflict")
    )
    conflicts = good.filter(pl.col("_conflict")).with_columns(
        pl.lit("conflicting duplicate transaction_id (other values already delivered)").alias(
            "reason"
        )
    )
    exact_dupes = good.filter((pl.col("_dup_rank") > 0) & ~pl.col("_conflict")).height
    kept = good.filter(pl.col("_dup_rank") == 0)

    statuses = [s.lower() for s in non_revenue_statuses]
    status = clean_text("status").str.to_lowercase()
    clean = kept.select(
        pl.col("_tid").alias("transaction_id"),
        pl.col("_cid").alias("customer_id"),
        pl.col("_ts").alias("occurred_at"),
        pl.col("_day").alias("event_date"),
        pl.col("_amount").alias("amount"),
        pl.when(status.is_in(statuses) | (pl.col("_amount") == 0))
        .then(pl.lit("ignored"))
        .when(pl.col("_amount") > 0)
        .then(pl.lit("purchase"))
        .otherwise(pl.lit("refund"))
        .alias("revenue_kind"),
        clean_text("currency").str.to_uppercase().alias("currency"),
        pl.col("_qty").alias("quantity"),
        status.alias("status"),
        clean_text("channel").alias("channel"),
        clean_text("product_category").alias("product_category"),
        pl.col("_source_file"),
    )
    quarantine = pl.concat([bad, conflicts], how="diagonal_relaxed").sort(
        ["_source_file", "_source_row"]
    )
    quarantine = conform(quarantine, QUARANTINE_TRANSACTIONS)
    stats = {
        "rows_in": raw.height,
        "rows_valid": clean.height,
        "rows_quarantined": quarantine.height,
        "duplicates_dropped": exact_dupes,
    }
    return ValidationResult(conform(clean, VALIDATED_TRANSACTIONS), quarantine, stats)
