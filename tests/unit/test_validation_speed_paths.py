"""The fast paths of validation give the results of the plain computations they replace:
natively parsed ISO-8601 shapes, skipped sort, content hashes of repeated ids only, history
lookup by id hash."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal, assert_series_equal

from clv_pipeline.parse import parse_timestamp
from clv_pipeline.validation.rules import ValidationRules
from clv_pipeline.validation.transactions import DAY, _timestamps, validate_transactions
from tests.conftest import raw_frame, tx

NOW = datetime(2024, 3, 20, tzinfo=UTC)
D1, D2 = date(2024, 3, 10), date(2024, 3, 11)


def _shaped(n: int, seed: int) -> list[str]:
    """Strings of the natively parsed shapes with random (often invalid) field values."""
    rng = np.random.default_rng(seed)
    parts = [rng.integers(lo, hi, n) for lo, hi in ((0, 10_000), (0, 14), (0, 33), (0, 26))]
    minutes, seconds = rng.integers(0, 62, n), rng.integers(0, 62, n)
    shapes = ["{}-{:02}-{:02}T{:02}:{:02}:{:02}Z", "{}-{:02}-{:02}T{:02}:{:02}:{:02}"]
    shapes.append("{}-{:02}-{:02} {:02}:{:02}:{:02}")
    return [
        shapes[i % 3].format(str(y).zfill(4), m, d, h, mi, s)
        for i, (y, m, d, h, mi, s) in enumerate(zip(*parts, minutes, seconds, strict=True))
    ]


EDGE = [
    "2024-03-10T10:00:00Z",
    " 2024-03-10T10:00:00Z ",
    "2024-03-10T10:00:00z",
    "2024-02-29T10:00:00Z",
    "2023-02-29T10:00:00Z",
    "2024-03-10T24:00:00Z",
    "2024-03-10T23:59:60Z",
    "2024-03-31T02:30:00",  # non-existent in Europe/Berlin
    "2024-10-27 02:30:00",  # ambiguous in Europe/Berlin
    "2024-03-10T10:00:00.5Z",
    "2024-03-10T10:00:00+02:00",
    "2024-03-10T10:00",
    "2024-03-10",
    "٢٠٢٤-03-10T10:00:00Z",  # non-ASCII digits
    "0000-01-01T00:00:00Z",
    "",
    "nope",
    None,
]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York"])
def test_native_timestamp_shapes_parse_like_the_format_list(zone: str) -> None:
    values = pl.Series("occurred_at", _shaped(30_000, 1) + EDGE, dtype=pl.String)
    expected = values.to_frame().select(parse_timestamp("occurred_at", naive_timezone=zone))
    got = _timestamps(values, naive_timezone=zone)
    assert got.is_not_null().sum() > 10_000  # the random shapes include many valid ones
    assert_series_equal(got, expected.to_series())
    one_shape = pl.Series("occurred_at", [v for v in EDGE if v and v.endswith("Z")])
    assert_series_equal(
        _timestamps(one_shape, naive_timezone=zone),
        one_shape.to_frame().select(parse_timestamp("occurred_at")).to_series(),
    )


def _batch() -> pl.DataFrame:
    rows = [
        tx("2024-03-10", "c1", 10, "t1", hour=10),
        tx("2024-03-10", "c1", 10, "t1", hour=11),  # same id, other content: conflict
        tx("2024-03-10", "c2", 5, "t2"),
        tx("2024-03-10", "c2", 5, "t2"),  # exact copy: dropped
        tx("2024-03-10", "c3", 7, "t3", hour=13),
        tx("2024-03-10", "c4", "n/a", "t4", occurred_at="2024-03-10 14:00:00"),
        tx("2024-03-10", "c5", 8, "old", hour=15),
    ]
    day1 = raw_frame(rows).with_columns(pl.lit(D1).alias(DAY))
    day2 = raw_frame(
        [
            tx("2024-03-11", "c3", 7, "t3", hour=9),  # t3 again, a day later
            tx("2024-03-11", "c6", 9, "t6", hour=10),
        ]
    ).with_columns(pl.lit(D2).alias(DAY))
    return pl.concat([day1, day2])


def test_input_order_does_not_change_the_result() -> None:
    rules = ValidationRules(max_bad_row_share=1.0)
    history = pl.LazyFrame({"transaction_id": ["old", "zzz"], "event_date": [D1, D1]}).with_columns(
        pl.col("event_date") - pl.duration(days=3)
    )
    ordered = validate_transactions(_batch(), rules=rules, now=NOW, earlier=history)
    shuffled = validate_transactions(
        _batch().sample(fraction=1.0, shuffle=True, seed=4), rules=rules, now=NOW, earlier=history
    )
    for day in (D1, D2):
        a, b = ordered.day(day), shuffled.day(day)
        assert_frame_equal(a.clean, b.clean)
        assert_frame_equal(a.quarantine, b.quarantine)
        assert a.stats == b.stats
    first, second = ordered.day(D1), ordered.day(D2)
    assert first.stats == {
        "rows_in": 7,
        "rows_valid": 2,
        "rows_quarantined": 4,
        "duplicates_dropped": 1,
    }
    assert first.clean.get_column("transaction_id").to_list() == ["t2", "t3"]
    reasons = dict(first.quarantine.select("transaction_id", "reason").iter_rows())
    assert reasons["old"] == "transaction_id already delivered on an earlier day"
    assert reasons["t4"] == "amount not a number"
    assert second.quarantine.get_column("transaction_id").to_list() == ["t3"]
    assert second.quarantine.item(0, "reason") == (
        "transaction_id already delivered on an earlier day"
    )
    assert second.clean.get_column("transaction_id").to_list() == ["t6"]
