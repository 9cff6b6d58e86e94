"""customer_state in the warehouse: incremental from yesterday, full recompute when it must be."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from clv_pipeline import pipeline
from clv_pipeline.config import ClvConfig, load_config
from clv_pipeline.features.state import META_KEY, plan_state, read_provenance
from clv_pipeline.parquet import write_parquet
from clv_pipeline.paths import Layout
from clv_pipeline.publish.warehouse import publish_table, read_published
from clv_pipeline.schema import VALIDATED_TRANSACTIONS

START = date(2024, 3, 1)
DAYS = [START + timedelta(days=i) for i in range(8)]


def _validated_day(day: date, seed: int, rows: int = 40) -> pl.DataFrame:
    """Random validated rows of one event date: purchases, refunds and ignored rows."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(["purchase", "purchase", "purchase", "refund", "ignored"], rows)
    cents = rng.integers(1, 50_000, rows)
    amount = np.where(kind == "refund", -cents, np.where(kind == "ignored", 0, cents)) / 100
    midnight = datetime.combine(day, datetime.min.time(), UTC)
    return pl.DataFrame(
        {
            "transaction_id": [f"{day}-{seed}-{i}" for i in range(rows)],
            "customer_id": [f"c{c}" for c in rng.integers(0, 15, rows)],
            "occurred_at": [
                midnight + timedelta(minutes=int(m)) for m in rng.integers(0, 1440, rows)
            ],
            "event_date": [day] * rows,
            "amount": amount,
            "revenue_kind": kind,
            "_source_file": ["bench.parquet"] * rows,
        }
    ).with_columns(
        pl.lit(None, dtype).alias(name)
        for name, dtype in VALIDATED_TRANSACTIONS.schema.items()
        if name in {"currency", "quantity", "status", "channel", "product_category", "refund_of"}
    )


def _publish_day(layout: Layout, day: date, seed: int) -> None:
    publish_table(layout, "validated_transactions", _validated_day(day, seed), day=day)


def _state(config: ClvConfig, day: date) -> tuple[pl.DataFrame, dict[str, object]]:
    step = pipeline.build_customer_state(config, day)
    frame = read_published(config.layout, "customer_state", day)
    assert frame is not None
    return frame, step.stats


def _full(config: ClvConfig, day: date) -> pl.DataFrame:
    frame, stats = _state(config.with_overrides({"scale.state_rebuild": "full"}), day)
    assert stats["mode"] == "full"
    return frame


@pytest.fixture
def config(layout: Layout) -> ClvConfig:
    return load_config(layout.home, environ={}, overrides={"scale.state_full_every_days": 0})


def test_state_is_incremental_day_after_day_and_equals_the_full_recompute(
    config: ClvConfig,
) -> None:
    layout = config.layout
    for i, day in enumerate(DAYS):
        _publish_day(layout, day, seed=i)
        incremental, stats = _state(config, day)
        assert stats["mode"] == ("full" if i == 0 else "incremental")
        assert stats["days_read"] == 1
        path = layout.partition_file("customer_state", "as_of", day)
        written = path.read_bytes()
        assert_frame_equal(incremental, _full(config, day))
        assert path.read_bytes() == written  # the same file, footer included
        _state(config, day)  # the full recompute replaced it; rebuild the chain's state
    # the features and gaps read from the state equal those computed from the history
    features = pipeline.build_customer_features(config, DAYS[-1])
    assert features.published[0].rows == incremental.filter(pl.col("n_purchase_days") > 0).height


def test_a_rewritten_earlier_day_restarts_the_chain_before_it(config: ClvConfig) -> None:
    layout = config.layout
    for i, day in enumerate(DAYS[:6]):
        _publish_day(layout, day, seed=i)
        _state(config, day)
    # a late row arrives for day 3 (look-back re-pull): the states of days 3..5 are stale
    late = pl.concat([_validated_day(DAYS[3], seed=3), _validated_day(DAYS[3], seed=99, rows=5)])
    publish_table(layout, "validated_transactions", late, day=DAYS[3])
    _publish_day(layout, DAYS[6], seed=6)
    plan = plan_state(layout, DAYS[6])
    assert plan.base == DAYS[2]
    assert plan.days == tuple(DAYS[3:7])
    assert "3 later state(s) skipped" in plan.reason
    state, stats = _state(config, DAYS[6])
    assert stats["mode"] == "incremental"
    assert_frame_equal(state, _full(config, DAYS[6]))


def test_periodic_and_requested_full_recomputes(config: ClvConfig) -> None:
    layout = config.layout
    periodic = config.with_overrides({"scale.state_full_every_days": 3})
    modes = []
    for i, day in enumerate(DAYS):
        _publish_day(layout, day, seed=i)
        modes.append(_state(periodic, day)[1]["mode"])
    # anchors (ordinal a multiple of 3): DAYS[2] and DAYS[5]; no merge into a state before one
    assert [d.toordinal() % 3 == 0 for d in DAYS] == [False, False, True] * 2 + [False, False]
    assert modes == ["full", "incremental"] + ["full", "incremental", "incremental"] * 2
    plan = plan_state(layout, DAYS[-1], rebuild="full")
    assert plan.base is None and "requested" in plan.reason


def test_a_state_without_provenance_or_of_another_version_is_not_reused(config: ClvConfig) -> None:
    layout = config.layout
    for i, day in enumerate(DAYS[:2]):
        _publish_day(layout, day, seed=i)
        _state(config, day)
    path = layout.partition_file("customer_state", "as_of", DAYS[1])
    record = read_provenance(path)
    assert record is not None and set(record) == {"version", "inputs"}
    frame = pl.read_parquet(path)
    write_parquet(frame, path, {META_KEY.decode(): '{"version": "0"}'})
    os.utime(path)
    assert read_provenance(path) is None
    _publish_day(layout, DAYS[2], seed=2)
    assert plan_state(layout, DAYS[2]).base == DAYS[0]
    path.unlink()
    layout.partition_file("customer_state", "as_of", DAYS[0]).unlink()
    plan = plan_state(layout, DAYS[2])
    assert plan.base is None and plan.reason == "no earlier state"


def _tied(day: date, rows: list[tuple[str, str, float, str | None]]) -> pl.DataFrame:
    """Validated rows ``(transaction_id, customer_id, amount, refund_of)`` of one day."""
    at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=10)
    frame = pl.DataFrame(
        {
            "transaction_id": [r[0] for r in rows],
            "customer_id": [r[1] for r in rows],
            "occurred_at": [at] * len(rows),
            "event_date": [day] * len(rows),
            "amount": [r[2] for r in rows],
            "revenue_kind": ["purchase" if r[2] >= 0 else "refund" for r in rows],
            "refund_of": [r[3] for r in rows],
            "_source_file": ["orders.csv"] * len(rows),
        }
    )
    return frame.with_columns(
        pl.lit(None, dtype).alias(name)
        for name, dtype in VALIDATED_TRANSACTIONS.schema.items()
        if name not in frame.columns
    )


def test_a_refund_tied_to_an_older_purchase_cancels_its_purchase_day(config: ClvConfig) -> None:
    """A full refund of an order on a later day removes the order's purchase-day, also when the
    state is built incrementally (the chain restarts before the order's day); a partial refund
    only reduces revenue."""
    layout = config.layout
    days = {
        DAYS[0]: [("o1", "a", 50.0, None), ("o2", "b", 40.0, None)],
        DAYS[1]: [("o3", "a", 30.0, None), ("o4", "b", 10.0, None)],
        DAYS[2]: [("o5", "a", 20.0, None)],
        DAYS[3]: [("o3", "a", -30.0, "o3"), ("o5", "a", -5.0, "o5")],  # full, partial
        DAYS[4]: [("o6", "b", 5.0, None)],
    }
    modes = {}
    for day, rows in days.items():
        publish_table(layout, "validated_transactions", _tied(day, rows), day=day)
        state, stats = _state(config, day)
        modes[day] = (stats["mode"], stats["days_read"])
        assert_frame_equal(state, _full(config, day))
        _state(config, day)
    # day 3 refunds o3 of day 1: its state restarts from day 0's and folds days 1..3 in again
    assert modes[DAYS[3]] == ("incremental", 3) and modes[DAYS[4]] == ("incremental", 1)
    a = state.filter(pl.col("customer_id") == "a").row(0, named=True)
    # o3 is cancelled: purchase-days 0 and 2 remain; revenue 50 + 20 gross, 5 refunded
    assert (a["first_day"], a["last_day"], a["previous_day"]) == (DAYS[0], DAYS[2], DAYS[0])
    assert (a["n_purchase_days"], a["n_transactions"]) == (2, 2)
    assert (float(a["gross_revenue"]), float(a["refund_amount"]), a["n_refunds"]) == (70, 5, 1)
