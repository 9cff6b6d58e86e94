"""Issue 20, items 6 and 7: honest comparisons and partial cohort months.

* ``kpis`` and ``segment_migration`` compare with the latest complete snapshot before as_of, say
  which (``previous_as_of``) and over how many days (``days_since_previous``, last column);
* ``cohorts`` flags the calendar month containing as_of when as_of is not its last day
  (``is_partial_month``) and says how many of its days are observed (``days_observed``).
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from clv_pipeline.schema import COHORTS, KPIS, SEGMENT_MIGRATION
from clv_pipeline.segments.cohorts import build_cohorts, month_observed
from clv_pipeline.segments.kpis import build_kpis
from clv_pipeline.segments.migration import build_segment_migration

from .helpers import AS_OF, clv, features, transactions
from .test_cohorts_migration import _segments

FEATURES = features(
    [
        {"customer_id": c, "T": t, "ds": ds, "n_days": 2, "revenue": 100.0}
        for c, t, ds in (("a", 200, 10), ("b", 300, 100), ("c", 50, 5), ("d", 400, 200))
    ]
)
MODEL = clv([{"customer_id": c, "p_alive": 0.5, "predicted_clv": 10.0} for c in "abcd"])
SEGMENTS = pl.LazyFrame({"value_tier": ["low"] * 4, "total_revenue": [100.0] * 4})
WINDOW_TX = transactions([("a", "2024-06-20", 30.0), ("c", "2024-06-25", 10.0)])


def _kpis(previous: pl.LazyFrame | None) -> dict[str, object]:
    return (
        build_kpis(FEATURES, MODEL, SEGMENTS, WINDOW_TX, as_of=AS_OF, previous=previous)
        .collect()
        .row(0, named=True)
    )


def test_new_columns_are_last() -> None:
    # after every column published before it (columns added later may follow)
    change = [n for n in KPIS.names if n.endswith(("_change", "_change_pct"))]
    assert KPIS.names.index("days_since_previous") == KPIS.names.index(change[-1]) + 1
    assert SEGMENT_MIGRATION.names[-1] == "days_since_previous"
    assert COHORTS.names[-2:] == ["is_partial_month", "days_observed"]
    assert KPIS.schema["days_since_previous"] == pl.Int64
    assert COHORTS.schema["is_partial_month"] == pl.Boolean


def test_kpis_say_which_snapshot_and_how_many_days() -> None:
    current = build_kpis(FEATURES, MODEL, SEGMENTS, WINDOW_TX, as_of=AS_OF)
    week = AS_OF - timedelta(days=7)
    previous = pl.concat(
        [
            current.with_columns(pl.lit(AS_OF - timedelta(days=30)).alias("as_of")),
            current.with_columns(
                pl.lit(week).alias("as_of"), pl.lit(3, pl.Int64).alias("customers")
            ),
        ]
    )
    row = _kpis(previous)
    # the latest row before as_of, 7 days earlier: the change spans a week, not a day
    assert row["previous_as_of"] == week and row["days_since_previous"] == 7
    assert row["customers_change"] == 1.0
    assert row["customers_change_pct"] == pytest.approx(100 / 3)
    day_before = current.with_columns(pl.lit(AS_OF - timedelta(days=1)).alias("as_of"))
    row = _kpis(day_before)
    assert row["days_since_previous"] == 1 and row["customers_change"] == 0.0
    row = _kpis(None)
    assert row["previous_as_of"] is None and row["days_since_previous"] is None
    assert row["customers_change"] is None


def test_kpis_ignore_rows_on_or_after_as_of() -> None:
    current = build_kpis(FEATURES, MODEL, SEGMENTS, WINDOW_TX, as_of=AS_OF)
    row = _kpis(
        pl.concat([current, current.with_columns(pl.lit(AS_OF + timedelta(days=1)).alias("as_of"))])
    )
    assert row["previous_as_of"] is None and row["days_since_previous"] is None


def test_migration_says_how_many_days() -> None:
    cur = _segments([("x", "loyal", "gold", "active", 12.0)], AS_OF)
    prev = _segments([("x", "new", "low", "new", 2.0)], AS_OF - timedelta(days=365))
    got = build_segment_migration(prev, cur, as_of=AS_OF).collect()
    assert set(got["previous_as_of"]) == {AS_OF - timedelta(days=365)}
    assert set(got["days_since_previous"]) == {365}
    assert got.columns == SEGMENT_MIGRATION.names
    none = build_segment_migration(None, cur, as_of=AS_OF).collect()
    assert none["days_since_previous"].is_null().all()
    assert set(none["from_value"]) == {"none"}


# --- cohorts: the partial calendar month --------------------------------------------------------

UCI_LIKE = transactions(
    [
        ("a", "2011-10-05", 10.0),
        ("a", "2011-11-20", 10.0),
        ("a", "2011-12-02", 10.0),
        ("b", "2011-11-03", 30.0),
        ("b", "2011-12-09", 30.0),
        ("c", "2011-12-01", 5.0),
    ]
)
UCI_CLV = clv([{"customer_id": c} for c in "abc"], as_of=date(2011, 12, 9))


def _flags(as_of: date) -> list[tuple[date, int, bool, int]]:
    got = build_cohorts(UCI_LIKE, UCI_CLV, as_of=as_of).collect()
    return (
        got.filter(pl.col("channel") == "all")
        .select("cohort_month", "months_since_acquisition", "is_partial_month", "days_observed")
        .rows()
    )


def test_the_month_containing_as_of_is_partial() -> None:
    # as_of 2011-12-09: December observed 9 of 31 days (the UCI export's last month)
    assert _flags(date(2011, 12, 9)) == [
        (date(2011, 10, 1), 0, False, 31),
        (date(2011, 10, 1), 1, False, 30),
        (date(2011, 10, 1), 2, True, 9),
        (date(2011, 11, 1), 0, False, 30),
        (date(2011, 11, 1), 1, True, 9),
        (date(2011, 12, 1), 0, True, 9),
    ]


def test_a_month_ending_on_as_of_is_complete() -> None:
    rows = _flags(date(2011, 12, 31))
    assert [r[2] for r in rows] == [False] * 6
    assert [r[3] for r in rows] == [31, 30, 31, 30, 31, 31]


def test_a_month_before_as_of_is_complete_and_has_its_length() -> None:
    rows = _flags(date(2011, 11, 30))  # November ends on as_of: nothing partial
    assert rows == [
        (date(2011, 10, 1), 0, False, 31),
        (date(2011, 10, 1), 1, False, 30),
        (date(2011, 11, 1), 0, False, 30),
    ]


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        (date(2024, 2, 28), (True, 28, 29)),  # leap year: one day left
        (date(2024, 2, 29), (False, 29, 29)),
        (date(2023, 2, 28), (False, 28, 28)),
        (date(2011, 12, 9), (True, 9, 31)),
        (date(2024, 1, 1), (True, 1, 31)),
    ],
)
def test_month_observed(as_of: date, expected: tuple[bool, int, int]) -> None:
    assert month_observed(as_of) == expected


def test_partial_flags_per_channel_and_without_rows() -> None:
    history = transactions([("a", "2024-03-02", 10.0, "web"), ("b", "2024-03-03", 5.0)])
    got = build_cohorts(history, clv([]), as_of=date(2024, 3, 15)).collect()
    assert got["channel"].to_list() == ["all", "unknown", "web"]
    assert got["is_partial_month"].to_list() == [True] * 3
    assert got["days_observed"].to_list() == [15] * 3
    empty = build_cohorts(transactions([]), clv([]), as_of=date(2024, 3, 15)).collect()
    assert empty.height == 0 and empty.columns == COHORTS.names
