"""Lifecycle stages, purchase gaps and the churn table: hand-computed cases and properties."""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clv_pipeline.features import compute_features
from clv_pipeline.segments.churn import build_customer_churn, choose_churn_basis
from clv_pipeline.segments.lifecycle import (
    STAGES,
    ChurnBasis,
    LifecycleRules,
    assign_lifecycle,
    find_purchase_gaps,
)

from .helpers import AS_OF, by_id, clv, features, transactions

FAST = settings(max_examples=40, deadline=None)

#: Risk bands (default bounds 0.25 / 0.5 / 0.75) each lifecycle stage may sit in.
STAGE_BANDS = {
    "active": {"low", "medium"},
    "cooling": {"high"},
    "at_risk": {"critical"},
    "lost": {"critical"},
}


def recency_churn(silence: float, rhythm: float, retention: float | None = None) -> float:
    """Reference closed form, written out independently of the library: 1 - e / (e + d / (d + l)
    x (1 - e)), e = exp(-(d + l) x silence), l = 1 / rhythm, d = -ln(r) / 90 or 0.23 l."""
    lam = 1.0 / rhythm
    delta = 0.23 * lam if retention is None else -math.log(retention) / 90
    e = math.exp(-(delta + lam) * silence)
    return 1.0 - e / (e + delta / (delta + lam) * (1.0 - e))


# Repeaters' observed rhythms: 45, 25, 25, 25 days -> population median 25 days. Without a
# period retention the dropout is 0.23 x the purchase rate, so the churn probability depends on
# the ratio x = silence / rhythm alone: 1 - e / (e + 0.23 / 1.23 x (1 - e)), e = exp(-1.23 x).
ROWS: list[dict[str, Any]] = [
    {"customer_id": "new", "T": 10, "ds": 10, "n_days": 1},
    # 180/4 = 45 d, x 0.444: e = exp(-0.5467) = 0.5789, 0.5789 / (0.5789 + 0.1870 x 0.4211)
    # = 0.880 alive -> churn 0.120
    {"customer_id": "active", "T": 200, "ds": 20, "n_days": 5},
    # 50/2 = 25 d, x 2.0: e = exp(-2.46) = 0.0854, 0.0854 / (0.0854 + 0.1870 x 0.9146) = 0.333
    # alive -> churn 0.667
    {"customer_id": "cooling", "T": 100, "ds": 50, "n_days": 3},
    # 25 d, x 3.2: e = exp(-3.936) = 0.0195, 0.0195 / (0.0195 + 0.1870 x 0.9805) = 0.096 -> 0.904
    {"customer_id": "at_risk", "T": 130, "ds": 80, "n_days": 3},
    # 25 d, x 6.0: e = exp(-7.38) = 0.00062, alive 0.0033 -> churn 0.997
    {"customer_id": "lost", "T": 200, "ds": 150, "n_days": 3},
    # population 25 d, x 2.4: e = exp(-2.952) = 0.0522, 0.0522 / (0.0522 + 0.1870 x 0.9478)
    # = 0.228 alive -> churn 0.772
    {"customer_id": "one_time", "T": 60, "ds": 60, "n_days": 1},
]


def test_lifecycle_by_rhythm_without_a_model() -> None:
    ids = [r["customer_id"] for r in ROWS]
    got = assign_lifecycle(features(ROWS), clv([{"customer_id": c} for c in ids])).collect()
    # churn 0.120 < 0.5 active; 0.667 < 0.75 cooling; 0.904 >= 0.75 but 80 < 90 days silent:
    # at_risk; 0.997 and 150 days silent: lost; one_time 0.772 >= 0.75, 60 days silent: at_risk
    assert by_id(got, "lifecycle_stage") == {
        "new": "new",
        "active": "active",
        "cooling": "cooling",
        "at_risk": "at_risk",
        "lost": "lost",
        "one_time": "at_risk",
    }
    assert by_id(got, "interval_basis")["one_time"] == "population"
    assert by_id(got, "interval_basis")["active"] == "observed"
    assert by_id(got, "interval_basis")["cooling"] == "shrunk"  # 2 gaps; 0.4 x 25 + 0.6 x 25
    assert by_id(got, "expected_interval_days")["one_time"] == 25.0
    assert by_id(got, "rhythm_ratio")["cooling"] == 2.0
    # the churn table rates the same customers with the same numbers
    churn = build_customer_churn(features(ROWS), clv([{"customer_id": c} for c in ids])).collect()
    prob = by_id(churn, "churn_probability")
    assert prob["active"] == pytest.approx(0.120, abs=5e-4)
    assert prob["cooling"] == pytest.approx(0.667, abs=5e-4)
    assert prob["at_risk"] == pytest.approx(0.904, abs=5e-4)
    assert prob["one_time"] == pytest.approx(0.772, abs=5e-4)
    assert prob["lost"] == pytest.approx(recency_churn(150, 25))
    stages = by_id(got, "lifecycle_stage")
    for c, band in by_id(churn, "risk_band").items():
        if stages[c] != "new":
            assert band in STAGE_BANDS[stages[c]], (c, stages[c], band)


def test_lifecycle_follows_the_churn_probability_band() -> None:
    """With a model only P(alive) counts: the stage is the band of 1 - p_alive, both ways."""
    ids = [r["customer_id"] for r in ROWS]
    p = {"active": 0.2, "cooling": 0.95, "lost": 0.99, "one_time": 0.05}
    frame = clv([{"customer_id": c, "p_alive": p.get(c, 0.9)} for c in ids])
    got = by_id(assign_lifecycle(features(ROWS), frame).collect(), "lifecycle_stage")
    # 20 days into a 45-day rhythm, but churn 0.8 >= 0.75 and 20 < 90 days silent: at_risk
    assert got["active"] == "at_risk"
    assert got["cooling"] == "active"  # churn 0.05: the model rescues a rhythm-cooling buyer
    assert got["lost"] == "active"  # churn 0.01, whatever the 150 days of silence
    assert got["at_risk"] == "active"  # churn 0.1
    assert got["one_time"] == "at_risk"  # churn 0.95, but 60 < 90 days silent: not lost
    assert got["new"] == "new"  # new says when, not how risky
    bands = by_id(build_customer_churn(features(ROWS), frame).collect(), "risk_band")
    assert bands == {
        "new": "low",
        "active": "critical",
        "cooling": "low",
        "at_risk": "low",
        "lost": "low",
        "one_time": "critical",
    }
    # the band edges: churn exactly 0.5 is cooling (band high), exactly 0.75 at_risk / lost
    # (band critical), 0.49 active (band medium)
    p = {"active": 0.5, "cooling": 0.25, "at_risk": 0.51, "lost": 0.25, "one_time": 0.5}
    frame = clv([{"customer_id": c, "p_alive": p.get(c, 0.9)} for c in ids])
    got = by_id(assign_lifecycle(features(ROWS), frame).collect(), "lifecycle_stage")
    bands = by_id(build_customer_churn(features(ROWS), frame).collect(), "risk_band")
    assert got == {
        "new": "new",
        "active": "cooling",
        "cooling": "at_risk",  # 50 < 90 days silent
        "at_risk": "active",
        "lost": "lost",  # 150 >= 90 days silent
        "one_time": "cooling",
    }
    assert bands == {
        "new": "low",
        "active": "high",
        "cooling": "critical",
        "at_risk": "medium",
        "lost": "critical",
        "one_time": "high",
    }


def test_lifecycle_default_interval_when_nobody_repeated() -> None:
    rows = [{"customer_id": "a", "T": 100, "ds": 100}, {"customer_id": "b", "T": 50, "ds": 50}]
    got = assign_lifecycle(features(rows), clv(rows)).collect()
    # default rhythm 30 days, dropout 0.23 x the purchase rate:
    # a: x = 3.33, e = exp(-4.1) = 0.0166, alive 0.0166 / (0.0166 + 0.1870 x 0.9834) = 0.083,
    #    churn 0.917 >= 0.75 and 100 >= 90 days silent -> lost
    # b: x = 1.67, e = exp(-2.05) = 0.1287, alive 0.1287 / (0.1287 + 0.1870 x 0.8713) = 0.441,
    #    churn 0.559 in [0.5, 0.75) -> cooling
    assert by_id(got, "interval_basis") == {"a": "default", "b": "default"}
    assert by_id(got, "lifecycle_stage") == {"a": "lost", "b": "cooling"}
    prob = by_id(build_customer_churn(features(rows), clv(rows)).collect(), "churn_probability")
    assert prob["a"] == pytest.approx(0.917, abs=5e-4)
    assert prob["b"] == pytest.approx(0.559, abs=5e-4)


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
        LifecycleRules(active_below=0.8, cooling_below=0.6)
    with pytest.raises(ValueError):
        LifecycleRules(active_below=-0.1)
    with pytest.raises(ValueError):
        LifecycleRules(cooling_below=1.5)
    with pytest.raises(ValueError):
        LifecycleRules(active_multiple=0.0)
    LifecycleRules(active_below=0.6, cooling_below=0.6)  # no cooling band: allowed
    LifecycleRules(active_below=0.0, cooling_below=1.0)
    with pytest.raises(TypeError):  # the rhythm-ratio and silence-cap settings are gone
        LifecycleRules(at_risk_min_days=30)  # type: ignore[call-arg]


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
    ),
    st.sampled_from([ChurnBasis("model", ""), ChurnBasis("recency", "")]),
    st.one_of(st.none(), st.floats(0.0, 1.0)),
)
def test_lifecycle_stage_always_assigned(
    values: list[tuple[int, int, int, float | None]],
    basis: ChurnBasis,
    retention: float | None,
) -> None:
    rows = []
    for i, (a, b, n, p) in enumerate(values):
        t, ds = max(a, b), min(a, b)
        n = n if t - ds >= n - 1 else 1  # n purchase-days need recency >= n - 1
        rows.append({"customer_id": f"c{i}", "T": t, "ds": ds, "n_days": n, "p_alive": p})
    got = assign_lifecycle(
        features(rows), clv(rows), basis=basis, period_retention=retention, window_days=90
    ).collect()
    assert got.height == len(rows)
    assert set(got["lifecycle_stage"]) <= set(STAGES)
    assert (got["expected_interval_days"] >= 1.0).all()
    assert set(got["interval_basis"]) <= {"observed", "shrunk", "population", "default"}
    # the stage never contradicts the churn table built the same way (new says when, not how
    # risky; no purchase_gaps, so nobody is reactivated)
    churn = build_customer_churn(
        features(rows), clv(rows), basis=basis, period_retention=retention, window_days=90
    ).collect()
    both = got.select("customer_id", "lifecycle_stage", "days_since_last_purchase").join(
        churn.select("customer_id", "churn_probability", "risk_band"), on="customer_id"
    )
    assert both.height == len(rows)
    for row in both.iter_rows(named=True):
        stage, prob, band = row["lifecycle_stage"], row["churn_probability"], row["risk_band"]
        if stage == "new":
            continue
        assert prob is not None and not math.isnan(prob), row
        assert (stage in ("lost", "at_risk")) == (prob >= 0.75), row
        assert (stage == "cooling") == (0.5 <= prob < 0.75), row
        assert (stage == "active") == (prob < 0.5), row
        assert band in STAGE_BANDS[stage], row
        assert (stage == "lost") == (prob >= 0.75 and row["days_since_last_purchase"] >= 90), row
    silence = got.group_by("lifecycle_stage").agg(pl.col("days_since_last_purchase").min())
    assert dict(silence.iter_rows()).get("lost", 90) >= 90


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
    # d has no model: churn from the rhythm, silent 0 days: e = exp(0) = 1, alive 1, churn 0
    assert by_id(got, "churn_probability") == pytest.approx(
        {"a": 0.2, "b": 0.5, "c": 0.9, "d": 0.0}
    )
    assert by_id(got, "risk_band") == {"a": "low", "b": "high", "c": "critical", "d": "low"}
    vals = by_id(got, "value_at_risk")
    # value if retained = 100 / p_alive; at risk = that x (1 - p_alive); the rest is predicted_clv
    assert by_id(got, "value_if_retained")["c"] == pytest.approx(1000.0)
    assert vals["a"] == pytest.approx(25.0) and vals["c"] == pytest.approx(900.0)
    assert vals["b"] == pytest.approx(100.0)
    assert vals["d"] is None  # no p_alive, so no value if retained
    assert by_id(got, "value_if_retained")["d"] is None
    pct = by_id(got, "churn_percentile")
    # four probabilities 0.0 (d) < 0.2 (a) < 0.5 (b) < 0.9 (c): ranks 1..4 of 4
    assert pct == pytest.approx({"d": 25.0, "a": 50.0, "b": 75.0, "c": 100.0})
    due = by_id(got, "next_purchase_due_at")
    # a: 2 gaps of 25 d shrunk toward the population's 45 d: 0.4 x 25 + 0.6 x 45 = 37 d
    assert due["a"] == AS_OF - timedelta(days=50) + timedelta(days=37)
    # d: 1 gap of 100 d: 0.25 x 100 + 0.75 x 45 = 58.75 d -> due in ceil(58.75) = 59 days
    assert due["d"] == AS_OF + timedelta(days=59)
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
    ids = [r["customer_id"] for r in ROWS]
    model = clv([{"customer_id": c, "p_alive": 1.0, "predicted_clv": 100.0} for c in ids])
    basis = choose_churn_basis(degenerate=True, purchases_auc=None)
    assert basis.kind == "recency" and "collapsed" in basis.reason
    got = build_customer_churn(features(ROWS), model, basis=basis).collect()
    prob = by_id(got, "churn_probability")
    # 50 d silent, 25 d rhythm, no period retention (dropout 0.23 x 1/25 per day): x = 2,
    # e = exp(-2.46) = 0.0854, alive 0.0854 / (0.0854 + 0.1870 x 0.9146) = 0.333 -> 0.667
    assert prob["cooling"] == pytest.approx(0.667, abs=5e-4)
    assert prob["cooling"] == pytest.approx(recency_churn(50, 25))
    assert prob["lost"] > prob["at_risk"] > prob["cooling"] > prob["active"]
    assert by_id(got, "risk_band")["lost"] == "critical"
    assert by_id(got, "risk_band")["active"] == "low"  # 20 d of a 45 d rhythm: 0.120
    assert by_id(got, "risk_band")["cooling"] == "high"
    assert set(got["churn_basis"]) == {"recency"}
    # p_alive 1: value if retained = predicted_clv, all of it at risk times the probability
    assert by_id(got, "value_at_risk")["lost"] == pytest.approx(100.0 * prob["lost"])
    assert by_id(got, "p_alive")["lost"] == 1.0  # the model's own P(alive) is kept as it is
    # the lifecycle stage is banded on the same numbers
    stages = by_id(
        assign_lifecycle(features(ROWS), model, basis=basis).collect(), "lifecycle_stage"
    )
    assert stages == {
        "new": "new",
        "active": "active",
        "cooling": "cooling",
        "at_risk": "at_risk",
        "lost": "lost",
        "one_time": "at_risk",
    }
    # with a period retention r = 0.57 over 90 days the dropout is -ln(0.57) / 90 = 0.006246 per
    # day; cooling: l = 0.04, e = exp(-0.046246 x 50) = 0.0990, d / (d + l) = 0.1351,
    # alive 0.0990 / (0.0990 + 0.1351 x 0.9010) = 0.449 -> churn 0.551
    kept = build_customer_churn(
        features(ROWS), model, basis=basis, period_retention=0.57, window_days=90
    ).collect()
    assert by_id(kept, "churn_probability")["cooling"] == pytest.approx(0.551, abs=5e-4)
    assert by_id(kept, "risk_band")["cooling"] == "high"


def test_churn_basis_choice() -> None:
    assert choose_churn_basis(degenerate=False, purchases_auc=0.77).kind == "model"
    assert choose_churn_basis(degenerate=False, purchases_auc=None).kind == "model"
    weak = choose_churn_basis(degenerate=False, purchases_auc=0.52)
    assert weak.kind == "recency" and "0.52" in weak.reason
    model = clv([{"customer_id": r["customer_id"], "p_alive": 0.5} for r in ROWS])
    got = build_customer_churn(features(ROWS), model).collect()
    assert set(got["churn_basis"]) == {"model"}
    assert set(got["churn_probability"]) == {0.5}


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([date(2024, 6, 29), date(2024, 6, 30)]),
            st.sampled_from(["a", "b", "c", "d", "e", "f", "g"]),
            st.one_of(st.none(), st.sampled_from([0.0, 1.5, 2.0, 10.0])),
        ),
        max_size=30,
        unique_by=lambda row: (row[0], row[1]),
    ),
    st.booleans(),
)
def test_churn_order_equals_the_three_key_sort(
    rows: list[tuple[date, str, float | None]], presorted: bool
) -> None:
    """The churn table's order (as_of, value at risk descending with nulls last, customer_id)
    comes out the same through the stable sorts used on rows sorted by customer (ties, nulls,
    one or two snapshots) and on rows in any order."""
    from clv_pipeline.segments.churn import _by_value_at_risk

    frame = pl.DataFrame(
        rows,
        schema={"as_of": pl.Date, "customer_id": pl.String, "value_at_risk": pl.Float64},
        orient="row",
    )
    if presorted:
        frame = frame.sort("as_of", "customer_id")
    expected = frame.sort(
        ["as_of", "value_at_risk", "customer_id"], descending=[False, True, False], nulls_last=True
    )
    assert _by_value_at_risk(frame).equals(expected)
