"""Cost of validation per million rows: our polars parse + GX suite vs GX alone on pandas.

Usage: python bench/validation.py [--rows 1000000] [--bad-share 0.01]

Prints one table: stage, seconds, seconds per million rows, peak RSS. The reference row ("GX only")
validates the same typed frame with the same suite, so the difference is our parsing, dedupe,
history join and quarantine assembly.
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import UTC, date, datetime

import numpy as np
import polars as pl

from clv_pipeline.schema import RAW_TRANSACTIONS
from clv_pipeline.validation.rules import ValidationRules
from clv_pipeline.validation.suite import run_suite
from clv_pipeline.validation.transactions import DAY, validate_transactions

DAY_VALUE = date(2024, 3, 10)


def make_raw(rows: int, bad_share: float, seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    seconds = rng.integers(0, 86_400, rows)
    stamps = pl.Series(
        (np.datetime64("2024-03-10T00:00:00", "s") + seconds.astype("timedelta64[s]")).astype(
            "datetime64[us]"
        )
    ).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    amounts = pl.Series(np.round(rng.gamma(2.0, 20.0, rows), 2)).cast(pl.String)
    bad = rng.random(rows) < bad_share
    amounts = pl.Series(np.where(bad, "n/a", amounts.to_numpy()))
    frame = pl.DataFrame(
        {
            "transaction_id": pl.int_range(rows, eager=True).cast(pl.String),
            "customer_id": pl.Series(rng.integers(0, rows // 6 + 1, rows)).cast(pl.String),
            "occurred_at": stamps,
            "amount": amounts,
            "currency": ["USD"] * rows,
            "quantity": ["1"] * rows,
            "status": ["completed"] * rows,
            "channel": ["web"] * rows,
            "product_category": ["home"] * rows,
            "_source_file": ["bench.csv"] * rows,
            "_source_row": pl.int_range(rows, eager=True),
        }
    )
    return frame.select(RAW_TRANSACTIONS.names).with_columns(pl.lit(DAY_VALUE).alias(DAY))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--bad-share", type=float, default=0.01)
    args = parser.parse_args()
    raw = make_raw(args.rows, args.bad_share)
    rules = ValidationRules(max_bad_row_share=1.0)
    now = datetime.now(UTC)
    run_suite(  # warm-up: GX import and context (seconds, once per process)
        pl.DataFrame(
            {
                c: [None]
                for c in (
                    "transaction_id",
                    "day_transaction_id",
                    "customer_id",
                    "currency",
                    "status",
                    "_delivered_on",
                )
            }
            | {
                "occurred_at": [now],
                "event_date": [DAY_VALUE],
                "partition_day": [DAY_VALUE],
                "amount": [1.0],
            },
        ),
        rules=rules,
        now=now,
    )
    t0 = time.perf_counter()
    result = validate_transactions(raw, rules=rules, now=now)
    ours = time.perf_counter() - t0
    day = result.day(DAY_VALUE)
    view = day.clean.select(
        "transaction_id",
        pl.col("transaction_id").alias("day_transaction_id"),
        "customer_id",
        "occurred_at",
        "event_date",
        pl.col("event_date").alias("partition_day"),
        "amount",
        "currency",
        "status",
        pl.lit(None, pl.String).alias("_delivered_on"),
    )
    t0 = time.perf_counter()
    run_suite(view, rules=rules, now=now)
    gx_only = time.perf_counter() - t0
    per_m = 1_000_000 / args.rows
    print(
        f"rows={args.rows:,} bad_share={args.bad_share} quarantined={day.stats['rows_quarantined']:,}"
    )
    print(f"{'stage':<34}{'seconds':>10}{'s / 1M rows':>14}")
    print(f"{'ours: parse + GX suite + quarantine':<34}{ours:>10.2f}{ours * per_m:>14.2f}")
    print(f"{'reference: GX suite only (pandas)':<34}{gx_only:>10.2f}{gx_only * per_m:>14.2f}")
    print(f"peak RSS {peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
