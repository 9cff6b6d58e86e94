"""Cohorts and segment migration: hand-computed cells and properties."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clv_pipeline.schema import CUSTOMER_SEGMENTS
from clv_pipeline.segments.cohorts import build_cohorts
from clv_pipeline.segments.migration import build_segment_migration

from .helpers import clv, transactions

FAST = settings(max_examples=30, deadline=None)
AS_OF = date(2024, 3, 15)

HISTORY = transactions(
    [
        ("a", "2024-01-05", 10.0, "web"),
        ("a", "2024-02-10", 20.0, "store"),  # channel of later orders does not matter
        ("a", "2024-03-01", -5.0, "web"),  # refund only in month 2
        ("b", "2024-01-20", 30.0, "store"),
        ("c", "2024-02-03", 40.0),  # no channel -> unknown
        ("c", "2024-02-04", 10.0),
        ("d", "2024-02-05", -7.0, "web"),  # refund only: never acquired
        ("a", "2024-03-20", 99.0, "web"),  # after as_of
    ]
)
MODEL = clv(
    [
        {"customer_id": "a", "p_alive": 0.9, "predicted_clv": 100.0},
        {"customer_id": "b", "p_alive": 0.9, "predicted_clv": 50.0},
        {"customer_id": "c", "p_alive": 0.9, "predicted_clv": 10.0},
    ],
    as_of=AS_OF,
)


def _cells(frame: pl.DataFrame, month: date, channel: str) -> list[tuple[object, ...]]:
    return (
        frame.filter(pl.col("cohort_month") == month, pl.col("channel") == channel)
        .select(
            "months_since_acquisition",
            "cohort_customers",
            "active_customers",
            "retention_rate",
            "revenue",
            "cumulative_revenue_per_customer",
            "avg_predicted_clv",
        )
        .rows()
    )


def test_cohorts_hand_computed() -> None:
    got = build_cohorts(HISTORY, MODEL, as_of=AS_OF).collect()
    jan, feb = date(2024, 1, 1), date(2024, 2, 1)
    assert _cells(got, jan, "all") == [
        (0, 2, 2, 1.0, 40.0, 20.0, 75.0),
        (1, 2, 1, 0.5, 20.0, 30.0, 75.0),
        (2, 2, 0, 0.0, -5.0, 27.5, 75.0),
    ]
    assert _cells(got, feb, "unknown") == [
        (0, 1, 1, 1.0, 50.0, 50.0, 10.0),
        (1, 1, 0, 0.0, 0.0, 50.0, 10.0),
    ]
    assert _cells(got, jan, "web")[1] == (1, 1, 1, 1.0, 20.0, 30.0, 100.0)
    assert sorted(set(got["channel"])) == ["all", "store", "unknown", "web"]
    assert got.height == 3 + 3 + 3 + 2 + 2  # web, store, all (Jan); unknown, all (Feb)


def test_cohorts_without_channels_and_without_model() -> None:
    tx = HISTORY.with_columns(pl.lit(None, pl.String).alias("channel"))
    model = clv([{"customer_id": c} for c in "abc"], as_of=AS_OF)
    got = build_cohorts(tx, model, as_of=AS_OF).collect()
    assert set(got["channel"]) == {"all"}
    assert got["avg_predicted_clv"].is_null().all()
    empty = build_cohorts(transactions([]), clv([]), as_of=AS_OF).collect()
    assert empty.height == 0


@FAST
@given(
    st.lists(
        st.tuples(
            st.sampled_from("abcdefgh"),
            st.dates(date(2023, 1, 1), date(2024, 4, 30)),
            st.floats(-50, 100).filter(lambda v: abs(v) > 0.01),
            st.sampled_from(["web", "store", None]),
        ),
        max_size=40,
    )
)
def test_cohort_properties(rows: list[tuple[str, date, float, str | None]]) -> None:
    tx = transactions([(c, d.isoformat(), a, ch) for c, d, a, ch in rows])
    got = build_cohorts(tx, clv([]), as_of=AS_OF).collect()
    assert got["retention_rate"].is_between(0.0, 1.0).all()
    assert (got.filter(pl.col("months_since_acquisition") == 0)["retention_rate"] == 1.0).all()
    buyers = {c for c, d, a, _ in rows if a > 0 and d <= AS_OF}
    month0 = got.filter(pl.col("months_since_acquisition") == 0)
    assert month0.filter(pl.col("channel") == "all")["cohort_customers"].sum() == len(buyers)


def _segments(rows: list[tuple[str, str, str, str, float]], as_of: date) -> pl.LazyFrame:
    """(customer, rfm_segment, value_tier, lifecycle_stage, segment_value) -> segment rows."""
    frame = pl.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "as_of": [as_of] * len(rows),
            "rfm_segment": [r[1] for r in rows],
            "value_tier": [r[2] for r in rows],
            "lifecycle_stage": [r[3] for r in rows],
            "segment_value": [r[4] for r in rows],
        },
        schema_overrides={"as_of": pl.Date, "segment_value": pl.Float64},
    )
    full = pl.DataFrame(schema=CUSTOMER_SEGMENTS.schema)
    return pl.concat([full, frame], how="diagonal_relaxed").lazy()


def test_migration_hand_computed() -> None:
    prev = _segments(
        [
            ("x", "champions", "gold", "active", 10.0),
            ("y", "new", "low", "new", 3.0),
            ("w", "loyal", "gold", "active", 7.0),
        ],
        date(2024, 6, 29),
    )
    cur = _segments(
        [
            ("x", "loyal", "gold", "cooling", 12.0),
            ("z", "new", "low", "new", 1.0),
            ("w", "loyal", "gold", "active", 8.0),
        ],
        date(2024, 6, 30),
    )
    got = build_segment_migration(prev, cur, as_of=date(2024, 6, 30)).collect()
    assert set(got["previous_as_of"]) == {date(2024, 6, 29)}
    rfm = got.filter(pl.col("dimension") == "rfm_segment").select(
        "from_value", "to_value", "customers", "value"
    )
    assert rfm.rows() == [
        ("champions", "loyal", 1, 12.0),
        ("loyal", "loyal", 1, 8.0),
        ("new", "none", 1, 3.0),
        ("none", "new", 1, 1.0),
    ]
    tier = got.filter(pl.col("dimension") == "value_tier").select(
        "from_value", "to_value", "customers"
    )
    assert tier.rows() == [("gold", "gold", 2), ("low", "none", 1), ("none", "low", 1)]
    for dim in ("rfm_segment", "value_tier", "lifecycle_stage"):
        part = got.filter(pl.col("dimension") == dim)
        assert part["customers"].sum() == 4
        assert part["value"].sum() == pytest.approx(24.0)


def test_migration_without_previous() -> None:
    cur = _segments([("x", "loyal", "gold", "cooling", 12.0)], date(2024, 6, 30))
    for prev in (None, _segments([], date(2024, 6, 29))):
        got = build_segment_migration(prev, cur, as_of=date(2024, 6, 30)).collect()
        assert got.height == 3
        assert set(got["from_value"]) == {"none"}
        assert got["previous_as_of"].is_null().all()
    empty = build_segment_migration(None, _segments([], date(2024, 6, 30)), as_of=date(2024, 6, 30))
    assert empty.collect().height == 0


SEGS = st.sampled_from(["champions", "loyal", "new"])


@FAST
@given(
    st.dictionaries(st.sampled_from("abcdefghij"), st.tuples(SEGS, st.floats(0, 100))),
    st.dictionaries(st.sampled_from("abcdefghij"), st.tuples(SEGS, st.floats(0, 100))),
)
def test_migration_counts_sum_to_customers(
    prev: dict[str, tuple[str, float]], cur: dict[str, tuple[str, float]]
) -> None:
    def frame(d: dict[str, tuple[str, float]], day: date) -> pl.LazyFrame:
        return _segments([(k, s, s, s, v) for k, (s, v) in d.items()], day)

    got = build_segment_migration(
        frame(prev, date(2024, 1, 1)), frame(cur, date(2024, 1, 2)), as_of=date(2024, 1, 2)
    ).collect()
    union = set(prev) | set(cur)
    for dim in ("rfm_segment", "value_tier", "lifecycle_stage"):
        part = got.filter(pl.col("dimension") == dim)
        assert part["customers"].sum() == len(union)
        to_counts = part.group_by("to_value").agg(pl.col("customers").sum())
        expected = {
            s: sum(1 for v in cur.values() if v[0] == s)
            for (s,) in to_counts.select("to_value").rows()
        }
        expected["none"] = len(union - set(cur))
        assert {k: v for k, v in to_counts.rows()} == {k: v for k, v in expected.items() if v}
