"""Lifecycle stages, purchase gaps and the churn table: hand-computed cases and properties."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clv_pipeline.features import compute_features
from clv_pipeline.segments.churn import build_customer_churn
from clv_pipeline.segments.lifecycle import (
    STAGES,
    LifecycleRules,
    assign_lifecycle,
    find_purchase_gaps,
)

from .helpers import AS_OF, by_id, clv, features, transactions

FAST = settings(max_examples=40, deadline=None)

# Repeaters' observed rhythms: 45, 25, 25, 25 days -> population median 25 days.
ROWS: list[dict[str, Any]] = [
    {"customer_id": "new", "T": 10, "ds": 10, "n_days": 1},
    {"customer_id": "active", "T": 200, "ds": 20, "n_days": 5},  # 180/4 = 45 d, ratio 0.44
    {"customer_id": "cooling", "T": 100, "ds": 50, "n_days": 3},  # 50/2 = 25 d, ratio 2.0
    {"customer_id": "at_risk", "T": 130, "ds": 80, "n_days": 3},  # 25 d, ratio 3.2
    {"customer_id": "lost", "T": 200, "ds": 150, "n_days": 3},  # 25 d, ratio 6.0
    {"customer_id": "one_time", "T": 60, "ds": 60, "n_days": 1},  # population 25 d, ratio 2.4
]


def test_lifecycle_by_rhythm_without_a_model() -> None:
    ids = [r["customer_id"] for r in ROWS]
    got = assign_lifecycle(features(ROWS), clv([{"customer_id": c} for c in ids])).collect()
    assert by_id(got, "lifecycle_stage") == {
        "new": "new",
        "active": "active",
        "cooling": "cooling",
        "at_risk": "at_risk",
        "lost": "lost",
        "one_time": "cooling",
    }
    assert by_id(got, "interval_basis")["one_time"] == "population"
    assert by_id(got, "interval_basis")["active"] == "observed"
    assert by_id(got, "interval_basis")["cooling"] == "shrunk"  # 2 gaps; 0.4 x 25 + 0.6 x 25
    assert by_id(got, "expected_interval_days")["one_time"] == 25.0
    assert by_id(got, "rhythm_ratio")["cooling"] == 2.0


def test_lifecycle_p_alive_makes_it_worse_never_better() -> None:
    ids = [r["customer_id"] for r in ROWS]
    p = {"active": 0.2, "cooling": 0.95, "lost": 0.99, "one_time": 0.05}
    frame = clv([{"customer_id": c, "p_alive": p.get(c, 0.9)} for c in ids])
    got = by_id(assign_lifecycle(features(ROWS), frame).collect(), "lifecycle_stage")
    # rhythm active, p_alive 0.2 < 0.3 is at_risk, but bought 20 days ago (< 30): at most cooling
    assert got["active"] == "cooling"
    assert got["cooling"] == "cooling"  # high p_alive does not rescue
    assert got["lost"] == "lost"
    # p_alive 0.05 < 0.1 is lost, but bought 60 days ago (< 90): at most at_risk
    assert got["one_time"] == "at_risk"
    frame = clv([{"customer_id": c, "p_alive": 0.2 if c == "at_risk" else 0.05} for c in ids])
    got = by_id(assign_lifecycle(features(ROWS), frame).collect(), "lifecycle_stage")
    assert got["at_risk"] == "at_risk"  # 80 days silent: p_alive 0.05 cannot make it lost
    assert got["lost"] == "lost"  # 150 days silent


def test_lifecycle_default_interval_when_nobody_repeated() -> None:
    rows = [{"customer_id": "a", "T": 100, "ds": 100}, {"customer_id": "b", "T": 50, "ds": 50}]
    got = assign_lifecycle(features(rows), clv(rows)).collect()
    # default rhythm 30 days: ratios 3.33 (at_risk) and 1.67 (cooling)
    assert by_id(got, "interval_basis") == {"a": "default", "b": "default"}
    assert by_id(got, "lifecycle_stage") == {"a": "at_risk", "b": "cooling"}


HISTORY = transactions(
    [
        # r: every 10 days, then a 180-day gap, purchased 5 days ago -> reactivated
        ("r", "2023-12-08", 10.0),
        ("r", "2023-12-18", 10.0),
        ("r", "2023-12-28", 10.0),
        ("r", "2023-12-28", 5.0),  # same day: one purchase-day
        ("r", "2024-06-25", 10.0),
        # s: regular every 30 days -> active
        ("s", "2024-04-01", 10.0),
        ("s", "2024-05-01", 10.0),
        ("s", "2024-05-31", 10.0),
        ("s", "2024-06-30", -3.0),  # refunds are not purchase-days
        ("s", "2024-07-05", 10.0),  # after as_of
    ]
)


def test_find_purchase_gaps_hand_computed() -> None:
    got = find_purchase_gaps(HISTORY, as_of=AS_OF).collect()
    assert by_id(got, "previous_purchase_day") == {"r": date(2023, 12, 28), "s": date(2024, 5, 1)}
    assert by_id(got, "last_purchase_day") == {"r": date(2024, 6, 25), "s": date(2024, 5, 31)}
    assert by_id(got, "last_gap_days") == {"r": 180, "s": 30}
    assert by_id(got, "prior_interval_days") == {"r": 10.0, "s": 30.0}
    one = find_purchase_gaps(transactions([("x", "2024-01-01", 5.0)]), as_of=AS_OF).collect()
    assert one.row(0, named=True)["previous_purchase_day"] is None
    assert one.row(0, named=True)["prior_interval_days"] is None


def test_reactivated_needs_the_gap_helper() -> None:
    feats = compute_features(HISTORY, as_of=AS_OF)
    frame = clv([{"customer_id": "r"}, {"customer_id": "s"}])
    gaps = find_purchase_gaps(HISTORY, as_of=AS_OF)
    got = assign_lifecycle(feats, frame, purchase_gaps=gaps).collect()
    # r: gap 180 > 3 x 10 and bought 5 days ago <= 1.5 x 10 -> reactivated
    assert by_id(got, "lifecycle_stage") == {"r": "reactivated", "s": "active"}
    without = by_id(assign_lifecycle(feats, frame).collect(), "lifecycle_stage")
    assert without == {"r": "active", "s": "active"}  # 5 / (200/3) days: active by rhythm


def test_lifecycle_rules_validated() -> None:
    with pytest.raises(ValueError):
        LifecycleRules(active_multiple=3.0, cooling_multiple=2.0)
    with pytest.raises(ValueError):
        LifecycleRules(lost_p_alive=0.5, at_risk_p_alive=0.3)


@FAST
@given(
    st.lists(
        st.tuples(
            st.integers(0, 400),
            st.integers(0, 400),
            st.integers(1, 8),
            st.one_of(st.none(), st.floats(0.0, 1.0)),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_lifecycle_stage_always_assigned(values: list[tuple[int, int, int, float | None]]) -> None:
    rows = []
    for i, (a, b, n, p) in enumerate(values):
        t, ds = max(a, b), min(a, b)
        n = n if t - ds >= n - 1 else 1  # n purchase-days need recency >= n - 1
        rows.append({"customer_id": f"c{i}", "T": t, "ds": ds, "n_days": n, "p_alive": p})
    got = assign_lifecycle(features(rows), clv(rows)).collect()
    assert got.height == len(rows)
    assert set(got["lifecycle_stage"]) <= set(STAGES)
    assert (got["expected_interval_days"] >= 1.0).all()
    assert set(got["interval_basis"]) <= {"observed", "shrunk", "population", "default"}
    silence = got.group_by("lifecycle_stage").agg(pl.col("days_since_last_purchase").min())
    floor = dict(silence.iter_rows())
    assert floor.get("lost", 90) >= 90 and floor.get("at_risk", 30) >= 30


def test_churn_table_hand_computed() -> None:
    rows = [
        {"customer_id": "a", "T": 100, "ds": 50, "n_days": 3},  # rhythm 25 d
        {"customer_id": "b", "T": 100, "ds": 10, "n_days": 3},  # rhythm 45 d
        {
            "customer_id": "c",
            "T": 100,
            "ds": 100,
            "n_days": 1,
        },  # population median(25, 45, 100) = 45 d
        {"customer_id": "d", "T": 100, "ds": 0, "n_days": 2},  # rhythm 100 d
    ]
    model = clv(
        [
            {"customer_id": "a", "p_alive": 0.8, "predicted_clv": 100.0},
            {"customer_id": "b", "p_alive": 0.5, "predicted_clv": 100.0},
            {"customer_id": "c", "p_alive": 0.1, "predicted_clv": 100.0},
            {"customer_id": "d"},
        ]
    )
    got = build_customer_churn(features(rows), model).collect()
    assert got["customer_id"].to_list() == ["c", "b", "a", "d"]  # value at risk, largest first
    assert by_id(got, "risk_band") == {"a": "low", "b": "high", "c": "critical", "d": "unknown"}
    vals = by_id(got, "value_at_risk")
    # value if retained = 100 / p_alive; at risk = that x (1 - p_alive); the rest is predicted_clv
    assert by_id(got, "value_if_retained")["c"] == pytest.approx(1000.0)
    assert vals["a"] == pytest.approx(25.0) and vals["c"] == pytest.approx(900.0)
    assert vals["b"] == pytest.approx(100.0)
    assert vals["d"] is None
    pct = by_id(got, "churn_percentile")
    assert pct["a"] == pytest.approx(100 / 3) and pct["c"] == 100.0 and pct["d"] is None
    due = by_id(got, "next_purchase_due_at")
    # a: 2 gaps of 25 d shrunk toward the population's 45 d: 0.4 x 25 + 0.6 x 45 = 37 d
    assert due["a"] == AS_OF - timedelta(days=50) + timedelta(days=37)
    assert by_id(got, "days_overdue") == {"a": 13, "b": 0, "c": 55, "d": 0}


def test_churn_bands_configurable() -> None:
    rows = [{"customer_id": "a", "T": 10, "ds": 5}]
    model = clv([{"customer_id": "a", "p_alive": 0.5, "predicted_clv": 1.0}])
    got = build_customer_churn(features(rows), model, risk_bands=(("ok", 0.6), ("bad", 1.0)))
    assert got.collect()["risk_band"].to_list() == ["ok"]


@FAST
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(0.0, 1.0)), st.floats(0.0, 1e6), st.integers(0, 300)
        ),
        min_size=1,
        max_size=40,
    )
)
def test_churn_properties(values: list[tuple[float | None, float, int]]) -> None:
    rows = [{"customer_id": f"c{i}", "T": 300, "ds": ds} for i, (_, _, ds) in enumerate(values)]
    model = clv(
        [
            {"customer_id": f"c{i}", "p_alive": p, "predicted_clv": None if p is None else v}
            for i, (p, v, _) in enumerate(values)
        ]
    )
    got = build_customer_churn(features(rows), model).collect()
    known = got.filter(pl.col("value_at_risk").is_not_null())
    assert (known["value_at_risk"] <= known["value_if_retained"] * (1 + 1e-12) + 1e-9).all()
    kept = known["value_if_retained"] - known["value_at_risk"]  # = predicted_clv (model basis)
    assert ((kept - known["predicted_clv"]).abs() <= 1e-9 * (1 + known["value_if_retained"])).all()
    assert got.filter(pl.col("churn_probability").is_null())["risk_band"].eq("unknown").all()
    assert got["churn_percentile"].drop_nulls().is_between(0.0, 100.0, closed="right").all()
    assert (got["days_overdue"] >= 0).all()
    assert got["value_at_risk"].drop_nulls().diff().drop_nulls().le(0).all()


def test_degenerate_model_scores_churn_from_recency_and_rhythm() -> None:
    """P(alive) = 1 for everyone (collapsed dropout): churn comes from silence vs rhythm."""
    from clv_pipeline.segments.churn import choose_churn_basis

    ids = [r["customer_id"] for r in ROWS]
    model = clv([{"customer_id": c, "p_alive": 1.0, "predicted_clv": 100.0} for c in ids])
    basis = choose_churn_basis(degenerate=True, purchases_auc=None)
    assert basis.kind == "recency" and "collapsed" in basis.reason
    got = build_customer_churn(features(ROWS), model, basis=basis).collect()
    prob = by_id(got, "churn_probability")
    assert prob["cooling"] == pytest.approx(1 - 2.718281828459045**-2.0)  # 50 d silent, 25 d rhythm
    assert prob["lost"] > prob["at_risk"] > prob["cooling"] > prob["active"]
    assert by_id(got, "risk_band")["lost"] == "critical"
    assert by_id(got, "risk_band")["active"] == "medium"  # 20 d of a 45 d rhythm: 0.36
    assert set(got["churn_basis"]) == {"recency"}
    assert by_id(got, "value_at_risk")["lost"] == pytest.approx(100.0 * prob["lost"])
    assert by_id(got, "p_alive")["lost"] == 1.0  # the model's own P(alive) is kept as it is


def test_churn_basis_choice() -> None:
    from clv_pipeline.segments.churn import choose_churn_basis

    assert choose_churn_basis(degenerate=False, purchases_auc=0.77).kind == "model"
    assert choose_churn_basis(degenerate=False, purchases_auc=None).kind == "model"
    weak = choose_churn_basis(degenerate=False, purchases_auc=0.52)
    assert weak.kind == "recency" and "0.52" in weak.reason
    model = clv([{"customer_id": r["customer_id"], "p_alive": 0.5} for r in ROWS])
    got = build_customer_churn(features(ROWS), model).collect()
    assert set(got["churn_basis"]) == {"model"}
    assert set(got["churn_probability"]) == {0.5}
