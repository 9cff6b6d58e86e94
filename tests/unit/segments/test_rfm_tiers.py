"""RFM scores and segments, value tiers: hand-computed cases and properties."""

from __future__ import annotations

import math

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clv_pipeline.segments.rfm import RFM_SEGMENTS, rfm_segment_map, score_rfm
from clv_pipeline.segments.tiers import DEFAULT_TIERS, assign_value_tiers

from .helpers import by_id, clv, features

FAST = settings(max_examples=40, deadline=None)


def test_rfm_scores_and_segments_hand_computed() -> None:
    rows = [
        {"customer_id": "a", "T": 400, "ds": 0, "n_days": 5, "revenue": 500.0},
        {"customer_id": "b", "T": 400, "ds": 10, "n_days": 4, "revenue": 400.0},
        {"customer_id": "c", "T": 400, "ds": 20, "n_days": 3, "revenue": 300.0},
        {"customer_id": "d", "T": 400, "ds": 30, "n_days": 2, "revenue": 200.0},
        {"customer_id": "e", "T": 400, "ds": 40, "n_days": 1, "revenue": 100.0},
    ]
    got = score_rfm(features(rows)).collect().sort("customer_id")
    assert got["rfm_score"].to_list() == ["555", "444", "333", "222", "111"]
    assert got["fm_score"].to_list() == [5, 4, 3, 2, 1]  # deprecated, still filled
    # R x F map: R 1 x F 1 is lost, R 2 x F 2 hibernating
    assert by_id(got, "rfm_segment") == {
        "a": "champions",
        "b": "loyal",
        "c": "need_attention",
        "d": "hibernating",
        "e": "lost",
    }


def test_rfm_ties_share_one_score() -> None:
    # days since last purchase 0, 0, 10, 20, 30: the two most recent tie; four distinct values
    # score 1..4 (the plain quantile score would also give them 1 + floor(5*3/5) = 4)
    rows = [
        {"customer_id": c, "T": 100, "ds": ds, "n_days": 1, "revenue": 10.0}
        for c, ds in zip("abcde", (0, 0, 10, 20, 30), strict=True)
    ]
    got = score_rfm(features(rows)).collect().sort("customer_id")
    assert got["r_score"].to_list() == [4, 4, 3, 2, 1]
    # everybody bought once and spent the same: F = M = 1 for all
    assert got["f_score"].to_list() == [1] * 5
    assert got["m_score"].to_list() == [1] * 5
    # R 4 x F 1 = promising; R 3 x F 1 = about_to_sleep; R 2 x F 1 = hibernating; R 1 = lost
    assert got["rfm_segment"].to_list() == [
        "promising",
        "promising",
        "about_to_sleep",
        "hibernating",
        "lost",
    ]


def test_rfm_seven_distinct_values() -> None:
    rows = [
        {"customer_id": f"c{i}", "T": 100, "ds": 0, "n_days": 1, "revenue": float(i)}
        for i in range(7)
    ]
    got = score_rfm(features(rows)).collect().sort("customer_id")
    # 1 + floor(5 * (rank - 1) / 7) for ranks 1..7
    assert got["m_score"].to_list() == [1, 1, 2, 3, 3, 4, 5]


def test_rfm_map_covers_the_grid() -> None:
    cells = rfm_segment_map().collect()
    assert cells.height == 25
    assert cells.select("r_score", "f_score").is_unique().all()
    assert set(cells["rfm_segment"]) == set(RFM_SEGMENTS)
    lookup = {(r, f): s for r, f, s in cells.iter_rows()}
    assert lookup[(5, 1)] == "new"
    assert lookup[(4, 1)] == "promising"
    assert lookup[(1, 5)] == "cant_lose"
    assert lookup[(1, 1)] == "lost"
    assert lookup[(2, 1)] == "hibernating"
    assert lookup[(2, 3)] == "at_risk"
    assert lookup[(3, 3)] == "need_attention"
    assert lookup[(4, 5)] == "loyal"
    assert lookup[(5, 5)] == "champions"


def test_rfm_one_customer_and_empty() -> None:
    one = score_rfm(features([{"customer_id": "a", "T": 5, "ds": 0}])).collect()
    assert one.select("r_score", "f_score", "m_score").row(0) == (1, 1, 1)
    assert score_rfm(features([])).collect().height == 0


@FAST
@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.integers(1, 6), st.integers(0, 50)),
        min_size=1,
        max_size=60,
    )
)
def test_rfm_score_properties(values: list[tuple[int, int, int]]) -> None:
    rows = [
        {"customer_id": f"c{i}", "T": 40, "ds": ds, "n_days": n, "revenue": float(m)}
        for i, (ds, n, m) in enumerate(values)
    ]
    got = score_rfm(features(rows)).collect()
    for col in ("r_score", "f_score", "m_score", "fm_score"):
        assert got[col].is_between(1, 5).all()
    assert got["rfm_segment"].is_not_null().all()
    # equal values never split, and a larger value never scores lower
    for value, score in (("total_revenue", "m_score"), ("n_purchase_days", "f_score")):
        per_value = got.group_by(value).agg(
            pl.col(score).n_unique().alias("k"), pl.col(score).first()
        )
        assert (per_value["k"] == 1).all()
        ordered = per_value.sort(value)[score]
        assert (ordered.diff().drop_nulls() >= 0).all()


def test_tiers_exact_counts_with_distinct_values() -> None:
    rows = [
        {"customer_id": f"c{i:03d}", "p_alive": 0.5, "predicted_clv": float(i)} for i in range(200)
    ]
    got = assign_value_tiers(clv(rows)).collect()
    counts = dict(got.group_by("value_tier").len().iter_rows())
    assert counts == {
        "platinum": 2,
        "gold": 8,
        "silver": 10,
        "bronze": 30,
        "medium": 50,
        "low": 100,
    }
    assert by_id(got, "value_tier")["c199"] == "platinum"
    assert by_id(got, "value_rank")["c199"] == 1
    assert set(got["value_basis"]) == {"predicted_clv"}


def test_tiers_fall_back_to_historic_and_keep_ties_together() -> None:
    # no model: ranked by historic_clv; 10 customers, values 9, 9, 7, 6, ... ties at the top
    values = [9.0, 9.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0]
    rows = [{"customer_id": f"c{i}", "historic_clv": v} for i, v in enumerate(values)]
    got = assign_value_tiers(clv(rows)).collect().sort("customer_id")
    assert set(got["value_basis"]) == {"historic_clv"}
    assert got["segment_value"].to_list() == values
    assert got["value_rank"].to_list() == [1, 1, 3, 4, 5, 6, 7, 8, 9, 10]
    # share above: 0, 0, .2, .3, .4, .5, ... -> platinum x2, bronze, medium, medium, low...
    assert got["value_tier"].to_list() == [
        "platinum",
        "platinum",
        "bronze",
        "medium",
        "medium",
        "low",
        "low",
        "low",
        "low",
        "low",
    ]


def test_tiers_configurable_and_validated() -> None:
    rows = [{"customer_id": f"c{i}", "historic_clv": float(i)} for i in range(4)]
    got = assign_value_tiers(clv(rows), tiers=(("top", 0.5), ("rest", 1.0))).collect()
    assert by_id(got, "value_tier") == {"c0": "rest", "c1": "rest", "c2": "top", "c3": "top"}
    with pytest.raises(ValueError, match="increasing"):
        assign_value_tiers(clv(rows), tiers=(("a", 0.5), ("b", 0.4), ("c", 1.0)))
    with pytest.raises(ValueError, match="1.0"):
        assign_value_tiers(clv(rows), tiers=(("a", 0.5),))


@FAST
@given(st.lists(st.integers(0, 20), min_size=1, max_size=150))
def test_tier_partition_properties(values: list[int]) -> None:
    rows = [
        {"customer_id": f"c{i}", "p_alive": 0.5, "predicted_clv": float(v)}
        for i, v in enumerate(values)
    ]
    got = assign_value_tiers(clv(rows)).collect()
    n = len(values)
    labels = [label for label, _ in DEFAULT_TIERS]
    assert got.height == n and set(got["value_tier"]) <= set(labels)
    order = {label: k for k, label in enumerate(labels)}
    got = got.with_columns(pl.col("value_tier").replace_strict(order).alias("level"))
    for k, (_, bound) in enumerate(DEFAULT_TIERS):
        inside = got.filter(pl.col("level") <= k)["segment_value"]
        outside = got.filter(pl.col("level") > k)["segment_value"]
        # at least the bound's share of customers, ties never split across the boundary
        assert inside.len() >= min(n, math.ceil(bound * n - 1e-9))
        if inside.len() and outside.len():
            assert inside.min() > outside.max()  # type: ignore[operator]
        # only customers tied with the boundary value push the count above the share
        if inside.len():
            strictly_better = (inside > inside.min()).sum()
            assert strictly_better < bound * n + 1e-9
