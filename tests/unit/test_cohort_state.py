"""cohorts from the incremental per-customer monthly state: the same table as a scan of the whole
history (the former algorithm, kept here as the reference), built day by day or in full."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from clv_pipeline import pipeline
from clv_pipeline.config import ClvConfig, load_config
from clv_pipeline.features.customers import apply_refund_ties
from clv_pipeline.features.months import (
    KEEP,
    CohortState,
    merge_state,
    state_days,
    state_folder,
    summarise_state,
)
from clv_pipeline.numeric import FIXED, exact_mean
from clv_pipeline.paths import Layout
from clv_pipeline.publish.warehouse import publish_table, scan_published
from clv_pipeline.schema import COHORTS, VALIDATED_TRANSACTIONS, conform
from clv_pipeline.segments.cohorts import (
    _observed,
    build_cohorts,
    cohorts_from_state,
    first_purchases,
    month_index,
)

START = date(2024, 1, 20)


def reference_cohorts(
    transactions: pl.LazyFrame, clv: pl.LazyFrame, *, as_of: date
) -> pl.DataFrame:
    """The cohorts algorithm before the monthly state: one pass over the history."""
    history = transactions.filter(pl.col("event_date") <= as_of).with_columns(
        pl.col("channel").cast(pl.String)
    )
    purchases = history.filter(pl.col("revenue_kind") == "purchase")
    first = (
        first_purchases(purchases)
        .join(clv.select("customer_id", "predicted_clv"), on="customer_id", how="left")
        .collect()
        .lazy()
    )
    any_channel = purchases.select(pl.col("channel").is_not_null().any().alias("_any"))
    per_channel = (
        first.join(any_channel, how="cross")
        .filter(pl.col("_any"))
        .select("customer_id", "cohort_month", "channel", "predicted_clv")
    )
    every = first.select(
        "customer_id", "cohort_month", pl.lit("all").alias("channel"), "predicted_clv"
    )
    members = pl.concat([per_channel, every])
    sizes = members.group_by("cohort_month", "channel").agg(
        pl.len().cast(pl.Int64).alias("cohort_customers"),
        exact_mean(pl.col("predicted_clv").fill_nan(None)).alias("avg_predicted_clv"),
    )
    grid = sizes.with_columns(
        pl.int_ranges(
            0, month_index(pl.lit(as_of)) - month_index(pl.col("cohort_month")) + 1, dtype=pl.Int64
        ).alias("months_since_acquisition")
    ).explode("months_since_acquisition")
    per_month = (
        history.filter(pl.col("revenue_kind").is_in(["purchase", "refund"]))
        .group_by("customer_id", month_index(pl.col("event_date")).alias("_month"))
        .agg(
            (pl.col("revenue_kind") == "purchase").any().alias("_bought"),
            pl.col("amount").cast(FIXED).sum().alias("_revenue"),
        )
    )
    activity = (
        per_month.join(members.select("customer_id", "cohort_month", "channel"), on="customer_id")
        .with_columns(
            (pl.col("_month") - month_index(pl.col("cohort_month"))).alias(
                "months_since_acquisition"
            )
        )
        .group_by("cohort_month", "channel", "months_since_acquisition")
        .agg(
            pl.col("_bought").sum().cast(pl.Int64).alias("active_customers"),
            pl.col("_revenue").sum().cast(pl.Float64).alias("revenue"),
        )
    )
    out = (
        grid.join(activity, on=["cohort_month", "channel", "months_since_acquisition"], how="left")
        .with_columns(
            pl.lit(as_of).alias("as_of"),
            pl.col("active_customers").fill_null(0),
            pl.col("revenue").fill_null(0.0),
        )
        .sort("cohort_month", "channel", "months_since_acquisition")
        .with_columns(
            (pl.col("active_customers") / pl.col("cohort_customers")).alias("retention_rate"),
            (
                pl.col("revenue").cum_sum().over("cohort_month", "channel")
                / pl.col("cohort_customers")
            ).alias("cumulative_revenue_per_customer"),
            *_observed(as_of),
        )
    )
    return (
        conform(out, COHORTS).sort("cohort_month", "channel", "months_since_acquisition").collect()
    )


ROW = st.tuples(
    st.integers(0, 6),  # customer
    st.integers(0, 70),  # day offset (three calendar months)
    st.integers(0, 3),  # hour: ties of occurred_at are common
    st.sampled_from(["purchase", "purchase", "purchase", "refund", "ignored"]),
    st.integers(0, 500_000),  # cents
    st.sampled_from([None, "web", "store"]),
)


def _frame(rows: list[tuple]) -> pl.LazyFrame:
    stamps = [
        datetime.combine(START + timedelta(days=r[1]), datetime.min.time(), UTC)
        + timedelta(hours=r[2])
        for r in rows
    ]
    return pl.LazyFrame(
        {
            "transaction_id": [f"t{i:03d}" for i in reversed(range(len(rows)))],
            "customer_id": [f"c{r[0]}" for r in rows],
            "occurred_at": stamps,
            "event_date": [s.date() for s in stamps],
            "amount": [(-1 if r[3] == "refund" else 1) * r[4] / 100 for r in rows],
            "revenue_kind": [r[3] for r in rows],
            "channel": [r[5] for r in rows],
        },
        schema={
            "transaction_id": pl.String,
            "customer_id": pl.String,
            "occurred_at": pl.Datetime("us", "UTC"),
            "event_date": pl.Date,
            "amount": pl.Float64,
            "revenue_kind": pl.String,
            "channel": pl.String,
        },
    )


def _clv(customers: int = 7) -> pl.LazyFrame:
    values = [
        None if c == 3 else float("nan") if c == 5 else 10.0 * c + 0.1 for c in range(customers)
    ]
    return pl.LazyFrame(
        {"customer_id": [f"c{c}" for c in range(customers)], "predicted_clv": values}
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(ROW, min_size=1, max_size=60), st.integers(0, 75), st.integers(1, 40))
def test_day_by_day_state_gives_the_reference_cohorts(
    rows: list, as_of_offset: int, step: int
) -> None:
    tx = _frame(rows)
    as_of = START + timedelta(days=as_of_offset)
    state: CohortState | None = None
    day = START
    while day <= as_of:  # folded a few days at a time, as runs that catch up do
        upto = min(as_of, day + timedelta(days=step - 1))
        chunk = tx.filter(pl.col("event_date").is_between(day, upto))
        if state is None:
            state = summarise_state(chunk, as_of=upto)
        else:
            merged = merge_state(state, chunk, as_of=upto)
            state = CohortState(
                *(f.collect().lazy() for f in (merged.open, merged.closed, merged.firsts))
            )
        day = upto + timedelta(days=1)
    assert state is not None
    expected = reference_cohorts(tx, _clv(), as_of=as_of)
    assert_frame_equal(cohorts_from_state(state, _clv(), as_of=as_of).collect(), expected)
    assert_frame_equal(build_cohorts(tx, _clv(), as_of=as_of).collect(), expected)
    full = summarise_state(tx.filter(pl.col("event_date") <= as_of), as_of=as_of)
    for got, want, key in (
        (state.open, full.open, ["customer_id", "month"]),
        (state.closed, full.closed, ["cohort_month", "channel", "months_since_acquisition"]),
        (state.firsts, full.firsts, ["customer_id"]),
    ):
        assert_frame_equal(got.sort(key).collect(), want.sort(key).collect())


# ----------------------------------------------------------------------------- in the warehouse
DAYS = [date(2024, 3, 27) + timedelta(days=i) for i in range(9)]  # across a month end


def _day(day: date, seed: int, rows: int = 40) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    kind = rng.choice(["purchase", "purchase", "purchase", "refund", "ignored"], rows)
    cents = rng.integers(1, 50_000, rows)
    amount = np.where(kind == "refund", -cents, np.where(kind == "ignored", 0, cents)) / 100
    midnight = datetime.combine(day, datetime.min.time(), UTC)
    return _typed(
        pl.DataFrame(
            {
                "transaction_id": [f"{day}-{seed}-{i}" for i in range(rows)],
                "customer_id": [f"c{c}" for c in rng.integers(0, 15, rows)],
                "occurred_at": [
                    midnight + timedelta(hours=int(h)) for h in rng.integers(0, 4, rows)
                ],
                "event_date": [day] * rows,
                "amount": amount,
                "revenue_kind": kind,
                "channel": rng.choice(["web", "store", "app"], rows),
            }
        )
    )


def _typed(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.lit("x.csv").alias("_source_file")).with_columns(
        pl.lit(None, dtype).alias(name)
        for name, dtype in VALIDATED_TRANSACTIONS.schema.items()
        if name not in frame.columns and name != "_source_file"
    )


@pytest.fixture
def config(layout: Layout) -> ClvConfig:
    return load_config(layout.home, environ={}, overrides={"scale.state_full_every_days": 0})


def _check(config: ClvConfig, day: date) -> str:
    """Build the cohort state of ``day``; it gives the reference cohorts; returns the mode."""
    state, plan = pipeline.build_cohort_state(config, day)
    history = apply_refund_ties(scan_published(config.layout, "validated_transactions", upto=day))
    clv = _clv(15)
    expected = reference_cohorts(history, clv, as_of=day)
    assert_frame_equal(cohorts_from_state(state, clv, as_of=day).collect(), expected)
    return plan.mode if plan.base is None else f"+{len(plan.days)}"


def test_the_state_is_incremental_and_a_rewritten_day_restarts_the_chain(config: ClvConfig) -> None:
    layout = config.layout
    modes = []
    for i, day in enumerate(DAYS[:6]):
        publish_table(layout, "validated_transactions", _day(day, i), day=day)
        modes.append(_check(config, day))
    assert modes == ["full", "+1", "+1", "+1", "+1", "+1"]
    assert state_days(layout) == DAYS[6 - KEEP : 6]  # older states are dropped
    # day 4 rewritten: the states of days 4 and 5 no longer match, day 3's does
    publish_table(layout, "validated_transactions", _day(DAYS[4], 99), day=DAYS[4])
    assert _check(config, DAYS[5]) == "+2"
    assert _check(config.with_overrides({"scale.state_rebuild": "full"}), DAYS[5]) == "full"
    (state_folder(layout, DAYS[5]) / "closed.parquet").unlink()  # incomplete: not a base
    publish_table(layout, "validated_transactions", _day(DAYS[6], 6), day=DAYS[6])
    assert _check(config, DAYS[6]) == "+3"


def test_a_refund_cancelling_an_earlier_first_purchase_rebuilds_from_its_day(
    config: ClvConfig,
) -> None:
    layout = config.layout

    def rows(day: date, data: list[tuple[str, str, float, str | None, str]]) -> pl.DataFrame:
        at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=10)
        return _typed(
            pl.DataFrame(
                {
                    "transaction_id": [r[0] for r in data],
                    "customer_id": [r[1] for r in data],
                    "occurred_at": [at] * len(data),
                    "event_date": [day] * len(data),
                    "amount": [r[2] for r in data],
                    "revenue_kind": ["purchase" if r[2] >= 0 else "refund" for r in data],
                    "refund_of": [r[3] for r in data],
                    "channel": [r[4] for r in data],
                }
            )
        )

    days = {
        DAYS[0]: [("o1", "a", 50.0, None, "web"), ("o2", "b", 40.0, None, "store")],
        DAYS[1]: [("o3", "b", 30.0, None, "web")],
        DAYS[5]: [("o4", "a", 20.0, None, "app")],  # April
        DAYS[6]: [("r1", "a", -50.0, "o1", "web"), ("r2", "b", -10.0, "o2", "store")],
    }
    modes = []
    for day, data in days.items():
        publish_table(layout, "validated_transactions", rows(day, data), day=day)
        modes.append(_check(config, day))
    # day 6 cancels o1 of day 0: the chain restarts from scratch (no state before day 0)
    assert modes == ["full", "+1", "+1", "full"]
    state, _ = pipeline.build_cohort_state(config, DAYS[6])
    a = state.firsts.collect().filter(pl.col("customer_id") == "a").row(0, named=True)
    assert (a["cohort_month"], a["channel"], a["first_id"]) == (date(2024, 4, 1), "app", "o4")
