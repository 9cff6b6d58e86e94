"""Incremental customer state: folding day by day equals the full recompute, exactly."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from clv_pipeline.features.customers import (
    compute_features,
    features_from_state,
    merge_states,
    summarise_transactions,
)

START = date(2024, 1, 1)
ROW = st.tuples(
    st.integers(0, 5),  # customer
    st.integers(0, 12),  # day offset
    st.integers(0, 23),  # hour
    st.sampled_from(["purchase", "purchase", "purchase", "refund", "ignored"]),
    st.integers(1, 500_000),  # cents
)


def _frame(rows: list[tuple[int, int, int, str, int]]) -> pl.LazyFrame:
    stamps = [
        datetime.combine(START + timedelta(days=r[1]), datetime.min.time(), UTC)
        + timedelta(hours=r[2])
        for r in rows
    ]
    return pl.LazyFrame(
        {
            "customer_id": [f"c{r[0]}" for r in rows],
            "occurred_at": stamps,
            "event_date": [s.date() for s in stamps],
            "amount": [(-1 if r[3] == "refund" else 1) * r[4] / 100 for r in rows],
            "revenue_kind": [r[3] for r in rows],
        },
        schema={
            "customer_id": pl.String,
            "occurred_at": pl.Datetime("us", "UTC"),
            "event_date": pl.Date,
            "amount": pl.Float64,
            "revenue_kind": pl.String,
        },
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(ROW, min_size=1, max_size=60), st.integers(0, 12))
def test_incremental_state_equals_full_recompute(rows: list, as_of_offset: int) -> None:
    tx = _frame(rows)
    as_of = START + timedelta(days=as_of_offset)
    state = None
    for offset in range(as_of_offset + 1):
        day = START + timedelta(days=offset)
        today = summarise_transactions(tx.filter(pl.col("event_date") == day))
        state = today if state is None else merge_states(state, today).collect().lazy()
    assert state is not None
    incremental = features_from_state(state, as_of=as_of).collect()
    full = compute_features(tx, as_of=as_of).collect()
    assert_frame_equal(incremental, full)
    full_state = summarise_transactions(tx.filter(pl.col("event_date") <= as_of))
    assert_frame_equal(
        state.sort("customer_id").collect(), full_state.sort("customer_id").collect()
    )


def test_late_row_is_absorbed_by_rebuilding_from_its_day() -> None:
    rows = [(1, 0, 9, "purchase", 1000), (1, 3, 9, "purchase", 2000), (2, 5, 9, "refund", 300)]
    late = (1, 3, 18, "purchase", 500)  # same customer, same day as an existing purchase
    as_of = START + timedelta(days=6)
    days = [START + timedelta(days=i) for i in range(7)]

    def fold(tx: pl.LazyFrame, upto: list[date], base: pl.LazyFrame | None = None) -> pl.LazyFrame:
        state = base
        for day in upto:
            today = summarise_transactions(tx.filter(pl.col("event_date") == day))
            state = today if state is None else merge_states(state, today).collect().lazy()
        assert state is not None
        return state

    before_late = fold(_frame(rows), days[:3])  # state up to the day before the late row's day
    rebuilt = fold(_frame([*rows, late]), days[3:], base=before_late)
    expected = compute_features(_frame([*rows, late]), as_of=as_of).collect()
    assert_frame_equal(features_from_state(rebuilt, as_of=as_of).collect(), expected)
    c1 = expected.filter(pl.col("customer_id") == "c1").row(0, named=True)
    assert (c1["n_purchase_days"], c1["n_transactions"], c1["monetary_value"]) == (2, 3, 25.0)
