"""The churn-period totals computed once by customer_clv and read back by the later steps."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from clv_pipeline import pipeline
from clv_pipeline.config import ClvConfig, load_config
from clv_pipeline.features.periods import (
    period_rates,
    rates_from_totals,
    window_activity,
    window_totals,
)
from clv_pipeline.features.state import fingerprints
from clv_pipeline.features.window_totals import read_totals, totals_file
from clv_pipeline.paths import Layout
from clv_pipeline.publish.warehouse import publish_table
from clv_pipeline.schema import VALIDATED_TRANSACTIONS

AS_OF = date(2024, 6, 30)
DAYS = [AS_OF - timedelta(days=i) for i in (0, 3, 40, 95, 120, 200)]


def _day(day: date, seed: int, rows: int = 30) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    kind = rng.choice(["purchase", "purchase", "refund", "ignored"], rows)
    cents = rng.integers(1, 50_000, rows)
    amount = np.where(kind == "refund", -cents, np.where(kind == "ignored", 0, cents)) / 100
    at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=9)
    frame = pl.DataFrame(
        {
            "transaction_id": [f"{day}-{seed}-{i}" for i in range(rows)],
            "customer_id": [f"c{c}" for c in rng.integers(0, 12, rows)],
            "occurred_at": [at] * rows,
            "event_date": [day] * rows,
            "amount": amount,
            "revenue_kind": kind,
            "_source_file": ["x.csv"] * rows,
        }
    )
    return frame.with_columns(
        pl.lit(None, dtype).alias(name)
        for name, dtype in VALIDATED_TRANSACTIONS.schema.items()
        if name not in frame.columns
    )


@pytest.fixture
def config(layout: Layout) -> ClvConfig:
    for i, day in enumerate(DAYS):
        publish_table(layout, "validated_transactions", _day(day, i), day=day)
    return load_config(layout.home, environ={})


def test_totals_give_the_period_rates_of_the_activity(config: ClvConfig) -> None:
    for window in (30, 90, 150):
        activity = pipeline._history(config, AS_OF).pipe(
            window_activity, as_of=AS_OF, window_days=window
        )
        totals = window_totals(activity).collect()
        rates = period_rates(activity.collect(), window_days=window)
        assert rates_from_totals(totals, window_days=window) == rates
        assert rates.previous_active > 0 and rates.active > 0  # the windows are not empty


def test_stored_totals_are_read_back_until_the_history_or_window_changes(
    config: ClvConfig,
) -> None:
    layout = config.layout
    expected = pipeline.period_totals(config, AS_OF)  # computed and stored
    path = totals_file(layout, AS_OF)
    assert path.exists()
    stamp = path.stat().st_mtime_ns
    assert_frame_equal(pipeline.period_totals(config, AS_OF), expected)
    assert path.stat().st_mtime_ns == stamp  # read back, not rewritten
    # another window: not reused
    wider = config.with_overrides({"segments.active_window_days": 150})
    assert read_totals(layout, AS_OF, window_days=150, inputs={}) is None
    assert pipeline.period_retention(wider, AS_OF) == (
        period_rates(
            window_activity(
                pipeline._history(config, AS_OF), as_of=AS_OF, window_days=150
            ).collect(),
            window_days=150,
        ).retention
    )
    assert_frame_equal(pipeline.period_totals(config, AS_OF), expected)  # stored again
    assert (
        read_totals(layout, AS_OF, window_days=90, inputs=fingerprints(layout, upto=AS_OF))
        is not None
    )
    # a validated day rewritten with other rows: the stored totals are stale
    publish_table(layout, "validated_transactions", _day(DAYS[1], 77), day=DAYS[1])
    fresh = window_totals(
        window_activity(pipeline._history(config, AS_OF), as_of=AS_OF, window_days=90)
    ).collect()
    assert not fresh.equals(expected)
    assert (
        read_totals(layout, AS_OF, window_days=90, inputs=fingerprints(layout, upto=AS_OF)) is None
    )
    assert_frame_equal(pipeline.period_totals(config, AS_OF), fresh)
