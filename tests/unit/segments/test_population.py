"""Customer shards for segments and churn (issue 23): a shard's rows computed against the merged
:class:`~clv_pipeline.segments.population.Population` are the unsharded table's rows, bit for bit,
however the customers are split (ties, nulls, NaN, one-time buyers, both churn bases)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from clv_pipeline.segments.churn import build_customer_churn, rank_churn, score_churn
from clv_pipeline.segments.lifecycle import ChurnBasis, merge_rhythm, rhythm_counts
from clv_pipeline.segments.population import merge_population, shard_counts
from clv_pipeline.segments.tiers import build_customer_segments

from .helpers import AS_OF, clv, features

customer = st.fixed_dictionaries(
    {
        "T": st.integers(0, 400),
        "ds": st.integers(0, 400),
        "n_days": st.integers(1, 7),
        "revenue": st.sampled_from([-5.0, 0.0, 10.0, 10.0, 25.5, 99.0, 1e6]),
        "p_alive": st.one_of(st.none(), st.sampled_from([0.0, 0.1, 0.5, 0.5, 0.93, 1.0])),
        "predicted_clv": st.one_of(
            st.none(), st.sampled_from([0.0, 1.5, 1.5, 40.0, float("nan"), 300.0])
        ),
        "historic_clv": st.sampled_from([0.0, 10.0, 10.0, -3.0, 250.0]),
        "gap": st.one_of(st.none(), st.integers(1, 200)),
        "shard": st.integers(0, 3),
    }
)
ONE_TIME = {
    "n_days": 1,
    "revenue": -5.0,
    "p_alive": None,
    "predicted_clv": None,
    "historic_clv": 0.0,
    "gap": None,
}
BASES = {
    "model": ChurnBasis("model", ""),
    "recency": ChurnBasis("recency", ""),
}


def _frames(rows: list[dict[str, object]]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    for i, row in enumerate(rows):
        row["customer_id"] = f"c{i:04d}"
        row["ds"] = min(int(row["ds"]), int(row["T"]))  # type: ignore[call-overload]
        if row["n_days"] == 1 or row["T"] == row["ds"]:
            row["n_days"] = 1  # one purchase-day: no gap
    f = features(rows).collect()
    c = clv(rows).collect()
    gap_rows = [
        {
            "customer_id": r["customer_id"],
            "as_of": AS_OF,
            "previous_purchase_day": AS_OF - timedelta(days=int(r["ds"]) + int(r["gap"])),  # type: ignore[call-overload]
            "last_gap_days": r["gap"],
            "prior_interval_days": None if r["n_days"] < 3 else 7.5,  # type: ignore[operator]
        }
        for r in rows
        if r["gap"] is not None and r["n_days"] > 1  # type: ignore[operator]
    ]
    gaps = pl.DataFrame(
        gap_rows,
        schema={
            "customer_id": pl.String,
            "as_of": pl.Date,
            "previous_purchase_day": pl.Date,
            "last_gap_days": pl.Int64,
            "prior_interval_days": pl.Float64,
        },
    )
    return f, c, gaps


@settings(max_examples=80, deadline=None)
# a shard whose customers all take the population rhythm (found by hypothesis): a literal rhythm
# made polars divide by it as a product with its reciprocal (3 / 5 off in the last bit)
@example(
    rows=[
        {**ONE_TIME, "T": 0, "ds": 0, "shard": 0},
        {**ONE_TIME, "T": 3, "ds": 3, "shard": 0},
        {**ONE_TIME, "T": 5, "ds": 0, "n_days": 2, "shard": 1},
    ],
    basis="model",
    retention=None,
)
@given(
    rows=st.lists(customer, min_size=1, max_size=60),
    basis=st.sampled_from(sorted(BASES)),
    retention=st.sampled_from([None, 0.0, 0.4, 1.0]),
)
def test_shards_give_the_unsharded_tables(
    rows: list[dict[str, object]], basis: str, retention: float | None
) -> None:
    f, c, gaps = _frames(rows)
    shard = pl.Series([r["shard"] for r in rows])
    options = {"basis": BASES[basis], "period_retention": retention, "window_days": 90}
    whole_segments = build_customer_segments(
        f.lazy(), c.lazy(), purchase_gaps=gaps.lazy(), **options
    ).collect()
    whole_churn = build_customer_churn(f.lazy(), c.lazy(), **options).collect()

    shards = [k for k in range(4) if (shard == k).any()]
    parts = {k: (f.filter(shard == k), c.filter(shard == k)) for k in shards}
    population, ranks = merge_population(
        [shard_counts(fk.lazy(), ck.lazy()) for fk, ck in parts.values()]
    )
    segments, churn = [], []
    for (fk, ck), rank in zip(parts.values(), ranks, strict=True):
        ranked = ck.with_columns(rank)
        gk = gaps.join(fk.select("customer_id"), on="customer_id", how="semi")
        segments.append(
            build_customer_segments(
                fk.lazy(), ranked.lazy(), purchase_gaps=gk.lazy(), population=population, **options
            ).collect()
        )
        churn.append(score_churn(fk.lazy(), ck.lazy(), rhythm=population.rhythm, **options))
    gathered = pl.concat(segments).sort("as_of", "customer_id")
    assert_frame_equal(gathered, whole_segments, check_exact=True)
    assert_frame_equal(rank_churn(pl.concat(churn)).collect(), whole_churn, check_exact=True)


@pytest.mark.parametrize(
    "intervals",
    [[], [None], [4.0], [4.0, 9.0], [1.0, 1.0, 2.0, 8.0], [3.0, None, 3.0, 5.5, 1e300, 1.7e308]],
)
def test_rhythm_median_from_counts(intervals: list[float | None]) -> None:
    frame = pl.DataFrame(
        {
            "as_of": [AS_OF] * len(intervals),
            "avg_days_between_purchases": intervals,
            "frequency": [1] * len(intervals),
        },
        schema={"as_of": pl.Date, "avg_days_between_purchases": pl.Float64, "frequency": pl.Int64},
    )
    halves = [frame.head(len(intervals) // 2), frame.tail(len(intervals) - len(intervals) // 2)]
    rhythm = merge_rhythm([rhythm_counts(h.lazy()).collect() for h in halves])
    expected = frame.get_column("avg_days_between_purchases").median()
    assert rhythm.median_interval == expected
    assert rhythm.has_own == any(v is not None for v in intervals)
