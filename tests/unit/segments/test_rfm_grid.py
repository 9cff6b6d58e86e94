"""RFM R x F grid (issue 20): every named segment by hand, one-time buyers, dense scores, order."""

from __future__ import annotations

import random
from datetime import date

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clv_pipeline.publish.audit import audit_table
from clv_pipeline.schema import CUSTOMER_SEGMENTS
from clv_pipeline.segments.rfm import (
    REPEAT_SEGMENTS,
    RFM_SEGMENTS,
    rfm_segment_map,
    score_quantile,
    score_rfm,
)

from .helpers import by_id, features

FAST = settings(max_examples=40, deadline=None)

# Exactly five distinct values per axis, so each score is the value's dense rank:
# R: days since last purchase 40, 30, 20, 10, 0 -> R 1..5; F: purchase-days 1..5 -> F 1..5;
# M: revenue 100..500 -> M 1..5.
DS = {1: 40, 2: 30, 3: 20, 4: 10, 5: 0}

# customer -> (R, F, M, expected segment)
GRID_CASES: dict[str, tuple[int, int, int, str]] = {
    "champ_555": (5, 5, 5, "champions"),
    "champ_543": (5, 4, 3, "champions"),
    "champ_low_m": (5, 5, 2, "loyal"),  # M tier: champions need M >= 3
    "loyal_444": (4, 4, 4, "loyal"),
    "loyal_351": (3, 5, 1, "loyal"),
    "potential_521": (5, 2, 1, "potential_loyalists"),
    "potential_435": (4, 3, 5, "potential_loyalists"),
    "new_515": (5, 1, 5, "new"),  # one-time, top spender: still new
    "promising_415": (4, 1, 5, "promising"),
    "attention_333": (3, 3, 3, "need_attention"),
    "sleep_312": (3, 1, 2, "about_to_sleep"),
    "sleep_324": (3, 2, 4, "about_to_sleep"),
    "at_risk_233": (2, 3, 3, "at_risk"),
    "at_risk_145": (1, 4, 5, "at_risk"),
    "cant_lose_155": (1, 5, 5, "cant_lose"),
    "cant_lose_253": (2, 5, 3, "cant_lose"),
    "cant_lose_low_m": (2, 5, 2, "at_risk"),  # M tier: cant_lose needs M >= 3
    "hibernating_215": (2, 1, 5, "hibernating"),
    "hibernating_221": (2, 2, 1, "hibernating"),
    "lost_115": (1, 1, 5, "lost"),  # one-time, top spender, most silent: lost
    "lost_121": (1, 2, 1, "lost"),
}


def _grid_rows() -> list[dict[str, object]]:
    return [
        {
            "customer_id": cid,
            "T": 400,
            "ds": DS[r],
            "n_days": f,
            "revenue": 100.0 * m,
        }
        for cid, (r, f, m, _) in GRID_CASES.items()
    ]


def test_every_named_segment_from_hand_built_customers() -> None:
    got = score_rfm(features(_grid_rows())).collect()
    for column, pos in (("r_score", 0), ("f_score", 1), ("m_score", 2)):
        assert by_id(got, column) == {c: v[pos] for c, v in GRID_CASES.items()}, column
    assert by_id(got, "rfm_segment") == {c: v[3] for c, v in GRID_CASES.items()}
    assert set(got["rfm_segment"]) == set(RFM_SEGMENTS)
    # fm_score is deprecated but still filled: ceil((F + M) / 2)
    assert by_id(got, "fm_score") == {c: (v[1] + v[2] + 1) // 2 for c, v in GRID_CASES.items()}
    assert by_id(got, "rfm_score")["champ_543"] == "543"


def test_grid_cells() -> None:
    cells = rfm_segment_map().collect()
    assert cells.height == 25
    assert cells.select("r_score", "f_score").is_unique().all()
    assert set(cells["rfm_segment"]) == set(RFM_SEGMENTS)
    grid = {(r, f): s for r, f, s in cells.iter_rows()}
    expected = {
        5: ("new", "potential_loyalists", "potential_loyalists", "champions", "champions"),
        4: ("promising", "potential_loyalists", "potential_loyalists", "loyal", "loyal"),
        3: ("about_to_sleep", "about_to_sleep", "need_attention", "loyal", "loyal"),
        2: ("hibernating", "hibernating", "at_risk", "at_risk", "cant_lose"),
        1: ("lost", "lost", "at_risk", "at_risk", "cant_lose"),
    }
    assert grid == {(r, f + 1): row[f] for r, row in expected.items() for f in range(5)}
    # column F = 1 (one-time buyers) holds no repeat-buyer segment
    assert not {grid[(r, 1)] for r in range(1, 6)} & set(REPEAT_SEGMENTS)


def test_one_time_big_spenders_never_in_repeat_segments() -> None:
    # one-time buyers outspend everybody; before issue 20 FM = ceil((1 + 5) / 2) = 3 made them
    # potential_loyalists (R 4-5), need_attention (R 3) or at_risk (R 1-2)
    rows = [
        {"customer_id": f"one{r}", "T": 400, "ds": DS[r], "n_days": 1, "revenue": 10_000.0}
        for r in range(1, 6)
    ] + [
        {"customer_id": f"rep{r}{f}", "T": 400, "ds": DS[r], "n_days": f, "revenue": 10.0 * f}
        for r in range(1, 6)
        for f in range(2, 6)
    ]
    got = score_rfm(features(rows)).collect()
    one = got.filter(pl.col("n_purchase_days") == 1)
    assert set(one["m_score"]) == {5} and set(one["f_score"]) == {1}
    assert by_id(one, "rfm_segment") == {
        "one5": "new",
        "one4": "promising",
        "one3": "about_to_sleep",
        "one2": "hibernating",
        "one1": "lost",
    }


def test_f1_is_exactly_the_one_time_buyers_even_when_few() -> None:
    # 1 one-time buyer in 20 (5 %): the plain quantile score would put purchase-days 1-4 in F = 1
    days = [1] + [2, 3, 4] + [5] * 4 + [6] * 4 + [7] * 4 + [8] * 4
    rows = [
        {"customer_id": f"c{i:02d}", "T": 400, "ds": i, "n_days": n} for i, n in enumerate(days)
    ]
    got = score_rfm(features(rows)).collect()
    f_by_days = dict(got.select("n_purchase_days", "f_score").unique().iter_rows())
    # q = 1,1,1,1,2,3,4,5 for 1..8; U = 1,1,1,1,2,3,4,5; one-time cut lifts 2-4 to F = 2
    assert f_by_days == {1: 1, 2: 2, 3: 2, 4: 2, 5: 2, 6: 3, 7: 4, 8: 5}
    assert by_id(got, "rfm_segment")["c00"] in {"new", "promising"}
    # no one-time buyer at all: the lowest frequency scores 1 as usual
    repeat_only = score_rfm(features([r for r in rows if r["n_days"] != 1])).collect()
    assert repeat_only["f_score"].min() == 1


@pytest.mark.parametrize(
    ("values", "old", "new"),
    [
        # 60 % one-time buyers: the old rule gave 1, 4, 4, 5, 5 (F = 2 and 3 empty)
        ([1] * 6 + [2, 3, 4, 5], [1, 4, 4, 5, 5], [1, 2, 3, 4, 5]),
        # four distinct values: one score each from 1 up (q = 1, 4, 5, 5)
        ([1] * 6 + [2, 2, 3, 4], [1, 4, 5, 5], [1, 2, 3, 4]),
        # a huge tie at the top: q = 1 for the four small values, room is left for them
        ([1, 2, 3, 4] + [5] * 96, [1, 1, 1, 1, 1], [1, 2, 3, 4, 5]),
        # distinct values: the plain quantile score 1 + floor(5 (k - 1) / 7)
        (list(range(7)), [1, 1, 2, 3, 3, 4, 5], [1, 1, 2, 3, 3, 4, 5]),
        # everybody equal
        ([3, 3, 3], [1], [1]),
    ],
)
def test_scores_are_dense_over_the_values_present(
    values: list[int], old: list[int], new: list[int]
) -> None:
    frame = pl.DataFrame({"as_of": [1] * len(values), "v": values})
    got = frame.hstack(score_quantile(frame.lazy(), pl.col("v"), "s").collect())
    per_value = got.group_by("v").agg(pl.col("s").unique()).sort("v")
    assert per_value["s"].to_list() == [[s] for s in new]
    # the rule replaced (issue 20): 1 + floor(5 x (rank_min - 1) / n)
    rank_min = pl.col("v").rank("min").cast(pl.Int64)
    plain = frame.with_columns((1 + (rank_min - 1) * 5 // len(values)).alias("s"))
    assert plain.group_by("v").agg(pl.col("s").first()).sort("v")["s"].to_list() == old


def test_nulls_score_one_and_are_not_ranked() -> None:
    frame = pl.DataFrame({"as_of": [1, 1, 1], "v": [1.0, None, 2.0]})
    assert score_quantile(frame.lazy(), pl.col("v"), "s").collect()["s"].to_list() == [1, 1, 2]


@FAST
@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.integers(1, 8), st.integers(0, 50)),
        min_size=1,
        max_size=60,
    )
)
def test_dense_scores_and_one_time_rule_properties(values: list[tuple[int, int, int]]) -> None:
    rows = [
        {"customer_id": f"c{i}", "T": 40, "ds": ds, "n_days": n, "revenue": float(m)}
        for i, (ds, n, m) in enumerate(values)
    ]
    got = score_rfm(features(rows)).collect()
    for value, score in (
        ("days_since_last_purchase", "r_score"),
        ("n_purchase_days", "f_score"),
        ("total_revenue", "m_score"),
    ):
        distinct = got[value].n_unique()
        # no empty score: exactly 1..min(D, 5) are used
        assert set(got[score]) == set(range(1, min(distinct, 5) + 1)), score
    one = got.filter(pl.col("n_purchase_days") == 1)
    assert (one["f_score"] == 1).all()
    assert not set(one["rfm_segment"]) & set(REPEAT_SEGMENTS)
    if one.height:
        assert (got.filter(pl.col("n_purchase_days") > 1)["f_score"] >= 2).all()
    assert got["rfm_segment"].is_not_null().all()


@FAST
@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.integers(1, 6), st.integers(0, 50)),
        min_size=1,
        max_size=40,
    ),
    st.randoms(use_true_random=False),
)
def test_scores_do_not_depend_on_row_order(
    values: list[tuple[int, int, int]], rnd: random.Random
) -> None:
    rows = [
        {"customer_id": f"c{i:02d}", "T": 40, "ds": ds, "n_days": n, "revenue": float(m)}
        for i, (ds, n, m) in enumerate(values)
    ]
    # two snapshots in one frame: scores are per as_of
    both = features(rows).collect().vstack(features(rows[::2], as_of=date(2024, 7, 31)).collect())
    shuffled = both.sample(fraction=1.0, shuffle=True, seed=rnd.randrange(2**32))
    cols = ["as_of", "customer_id", "r_score", "f_score", "m_score", "fm_score", "rfm_segment"]
    first = score_rfm(both.lazy()).collect().select(cols).sort("as_of", "customer_id")
    scored = score_rfm(shuffled.lazy()).collect()
    # the input's rows in the input's order (the segments table is then already sorted and is
    # not sorted again), whatever that order
    assert scored.select("as_of", "customer_id").equals(shuffled.select("as_of", "customer_id"))
    second = scored.select(cols).sort("as_of", "customer_id")
    assert first.equals(second)
    alone = score_rfm(features(rows)).collect().select(cols).sort("customer_id")
    assert first.filter(pl.col("as_of") == alone["as_of"][0]).equals(alone)


def test_audit_rejects_a_one_time_buyer_in_a_repeat_segment() -> None:
    from .test_tables import CASES, _all_tables

    good = _all_tables(*CASES["two customers, model"])["customer_segments"]
    as_of = good["as_of"][0]
    check = "one_time_buyers_not_in_repeat_segments"
    assert audit_table(good, CUSTOMER_SEGMENTS, day=as_of)[check] == []
    bad = good.with_columns(
        pl.lit(1, pl.Int64).alias("n_purchase_days"), pl.lit("loyal").alias("rfm_segment")
    )
    assert audit_table(bad, CUSTOMER_SEGMENTS, day=as_of)[check]


def _ranked_score(value: pl.Expr, *, n_bins: int = 5, over: str = "as_of") -> pl.Expr:
    """The score as first written: ranks over every customer (the oracle of score_levels)."""
    n = value.is_not_null().sum().over(over).cast(pl.Int64)
    below = (value.rank("min").over(over).cast(pl.Int64) - 1).fill_null(0)
    quantile = 1 + (below * n_bins) // n.clip(1)
    k = value.rank("dense").over(over).cast(pl.Int64)
    upward = k + (quantile - k).cum_min().over(over, order_by=value)
    room = k - (k.max().over(over) - n_bins).clip(0)
    score = pl.max_horizontal(upward, room).clip(1, n_bins)
    return pl.when(value.is_null()).then(1).otherwise(score).cast(pl.Int64)


SPECIAL = st.sampled_from([0.0, -0.0, float("nan"), None, 1e300, -1e300])


@FAST
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),
            st.one_of(st.integers(-5, 40).map(float), SPECIAL),
        ),
        min_size=0,
        max_size=80,
    ),
    st.integers(1, 6),
)
def test_scores_on_distinct_values_equal_ranks_over_every_row(
    rows: list[tuple[int, float | None]], n_bins: int
) -> None:
    frame = pl.DataFrame(
        {"as_of": [r[0] for r in rows], "v": [r[1] for r in rows]},
        schema={"as_of": pl.Int64, "v": pl.Float64},
    )
    got = frame.hstack(score_quantile(frame.lazy(), pl.col("v"), "s", n_bins=n_bins).collect())
    want = frame.with_columns(_ranked_score(pl.col("v"), n_bins=n_bins).alias("s"))
    assert got.equals(want)


@pytest.mark.parametrize("n_bins", [3, 5, 7])
def test_segment_cells_equal_the_map_joined(n_bins: int) -> None:
    """Each (R, F) pair gets its map cell, null outside the 5 x 5 map (any n_bins)."""
    pairs = pl.DataFrame(
        [(r, f) for r in range(0, 9) for f in range(0, 9)],
        schema={"r_score": pl.Int64, "f_score": pl.Int64},
        orient="row",
    )
    from clv_pipeline.segments.rfm import _map_cell

    got = pairs.with_columns(_map_cell().alias("rfm_segment"))
    joined = pairs.join(
        rfm_segment_map().collect(), on=["r_score", "f_score"], how="left", maintain_order="left"
    )
    assert got.equals(joined)
    assert got["rfm_segment"].null_count() == 81 - 25


def test_scores_keep_the_order_of_many_rows() -> None:
    """score_rfm keeps the input's row order (test_scores_do_not_depend_on_row_order) on
    enough rows for polars to join in parallel (where a join reorders)."""
    n = 300_000
    rng = np.random.default_rng(7)
    frame = pl.DataFrame(
        {
            "customer_id": [f"c{i:06d}" for i in rng.permutation(n)],
            "as_of": [date(2024, 6, 30)] * n,
            "days_since_last_purchase": rng.integers(0, 400, n),
            "n_purchase_days": rng.integers(1, 30, n),
            "total_revenue": rng.random(n) * 1000,
        }
    )
    scored = score_rfm(frame.lazy()).collect()
    assert scored["customer_id"].equals(frame["customer_id"])
