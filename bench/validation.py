"""Cost of validation per million rows: our polars parse + GX suite vs GX alone on pandas.

Usage: python bench/validation.py [--rows 1000000] [--bad-share 0.01] [--history 0] [--repeat 3]

Prints one table: stage, seconds, seconds per million rows, then the ratio (ours / GX only) and
the peak RSS. The reference row ("GX only") validates the same rows, typed with plain polars
casts and looked up in the history (untimed), with the same suite (``run_suite``: the pandas
hand-over included), so the difference is our parsing, dedupe, re-delivery check and quarantine
assembly. Both are run ``--repeat`` times, alternately, and the best time of each is shown (the
machine may be shared).
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
            "refund_of": pl.Series([None] * rows, dtype=pl.String),
            "_source_file": ["bench.csv"] * rows,
            "_source_row": pl.int_range(rows, eager=True),
        }
    )
    # as sources.shape does: a hash of every delivered column of the row
    frame = frame.with_columns(
        pl.struct(pl.exclude("_source_file", "_source_row")).hash(seed=0).alias("_row_digest")
    )
    return frame.select(RAW_TRANSACTIONS.names).with_columns(pl.lit(DAY_VALUE).alias(DAY))


def make_history(rows: int, seed: int = 2) -> pl.LazyFrame:
    """``transaction_id, event_date`` of ``rows`` transactions validated on the 30 days before
    ``DAY_VALUE`` (what ``pipeline.validate_days`` passes as ``earlier``); ids disjoint from
    ``make_raw``'s except for 0.1% re-deliveries."""
    rng = np.random.default_rng(seed)
    ids = pl.int_range(rows, eager=True) + 10 * rows
    again = rng.random(rows) < 0.001
    ids = pl.Series(np.where(again, rng.integers(0, rows, rows), ids.to_numpy()))
    frame = pl.LazyFrame({"transaction_id": ids.cast(pl.String), "_ago": rng.integers(1, 31, rows)})
    return frame.select(
        "transaction_id",
        (pl.lit(DAY_VALUE) - pl.duration(days=pl.col("_ago"))).cast(pl.Date).alias("event_date"),
    )


def typed_view(raw: pl.DataFrame, earlier: pl.LazyFrame | None) -> pl.DataFrame:
    """The reference's input: the same rows, typed with plain polars casts, in the columns the
    suite reads, ``_delivered_on`` looked up in ``earlier`` (so GX flags the same rows)."""
    text = pl.col("occurred_at")
    stamps = text.str.to_datetime("%Y-%m-%dT%H:%M:%SZ", strict=False, time_unit="us")
    if earlier is None:
        earlier = pl.LazyFrame(schema={"transaction_id": pl.String, "event_date": pl.Date})
    first = earlier.group_by("transaction_id").agg(pl.col("event_date").min().alias("_first"))
    with_first = raw.join(first.collect(), on="transaction_id", how="left", maintain_order="left")
    return with_first.select(
        "transaction_id",
        pl.concat_str(pl.col(DAY).cast(pl.String), "transaction_id", separator="/").alias(
            "day_transaction_id"
        ),
        "customer_id",
        stamps.dt.replace_time_zone("UTC").alias("occurred_at"),
        stamps.dt.date().alias("event_date"),
        pl.col(DAY).alias("partition_day"),
        pl.col("amount").cast(pl.Float64, strict=False),
        "currency",
        "status",
        pl.when(pl.col("_first") < pl.col(DAY))
        .then(pl.col("_first").cast(pl.String))
        .alias("_delivered_on"),
    )


def gx_as_shipped(view: pl.DataFrame, rules: ValidationRules, now: datetime) -> int:
    """The same suite the way GX's docs run a dataframe: ``batch_definition.get_batch(...)
    .validate(suite)`` with GX's defaults (the batch loaded twice, each time fingerprinted).
    Returns the rows flagged (checked equal to ``run_suite``'s)."""
    import great_expectations as gx
    from great_expectations.execution_engine import pandas_execution_engine

    from clv_pipeline.validation.suite import COLUMNS, _batch_definition, _expectations

    suite = gx.ExpectationSuite(name="bench-as-shipped")
    for expectation in _expectations(rules, now):  # (imports GX the tuned way)
        suite.add_expectation(expectation)
    tuned = pandas_execution_engine.HASH_THRESHOLD
    pandas_execution_engine.HASH_THRESHOLD = 1e9  # GX's default
    try:
        batch = _batch_definition().get_batch(
            batch_parameters={"dataframe": view.select(COLUMNS).to_pandas()}
        )
        result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
    finally:
        pandas_execution_engine.HASH_THRESHOLD = tuned
    return sum(int((r.result or {}).get("unexpected_count") or 0) for r in result.results)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--bad-share", type=float, default=0.01)
    parser.add_argument(
        "--history", type=int, default=0, help="ids validated on earlier days (re-delivery check)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="alternate runs of both; best time of each"
    )
    args = parser.parse_args()
    raw = make_raw(args.rows, args.bad_share)
    earlier = make_history(args.history) if args.history else None
    rules = ValidationRules(max_bad_row_share=1.0)
    now = datetime.now(UTC)
    view = typed_view(raw, earlier)
    run_suite(view.head(10), rules=rules, now=now)  # warm-up: GX import and context, once
    ours, gx_only, shipped = float("inf"), float("inf"), float("inf")
    result, reference = None, None
    for _ in range(max(1, args.repeat)):  # alternated, so all see the same machine load
        result, reference = None, None  # the previous run's frames are not freed in a timing
        t0 = time.perf_counter()
        result = validate_transactions(raw, rules=rules, now=now, earlier=earlier)
        ours = min(ours, time.perf_counter() - t0)
        t0 = time.perf_counter()
        reference = run_suite(view, rules=rules, now=now)
        gx_only = min(gx_only, time.perf_counter() - t0)
        t0 = time.perf_counter()
        shipped_flags = gx_as_shipped(view, rules, now)
        shipped = min(shipped, time.perf_counter() - t0)
    assert result is not None and reference is not None
    assert shipped_flags == sum(o.unexpected_count for o in reference.outcomes)
    day = result.day(DAY_VALUE)
    flagged = {o.reason: o.unexpected_count for o in reference.outcomes if o.unexpected_count}
    per_m = 1_000_000 / args.rows
    print(
        f"rows={args.rows:,} bad_share={args.bad_share} history={args.history:,} "
        f"repeat={args.repeat} quarantined={day.stats['rows_quarantined']:,} "
        f"(reference flags {flagged})"
    )
    print(f"{'stage':<38}{'seconds':>10}{'s / 1M rows':>14}")
    print(f"{'ours: parse + GX suite + quarantine':<38}{ours:>10.2f}{ours * per_m:>14.2f}")
    print(f"{'reference: GX suite only (pandas)':<38}{gx_only:>10.2f}{gx_only * per_m:>14.2f}")
    print(f"{'reference: GX as shipped (get_batch':<38}{shipped:>10.2f}{shipped * per_m:>14.2f}")
    print("  .validate, GX defaults: batch loaded twice, fingerprinted)")
    print(f"{'ratio ours / GX only (same path)':<38}{ours / gx_only:>10.2f}")
    print(f"{'ratio ours / GX as shipped':<38}{ours / shipped:>10.2f}")
    print(f"peak RSS {peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
