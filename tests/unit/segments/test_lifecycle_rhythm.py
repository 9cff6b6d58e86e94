"""Lifecycle rhythm from enough gaps and silence caps (issue 20): hand-built customers."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from clv_pipeline.features import compute_features
from clv_pipeline.segments.churn import build_customer_churn
from clv_pipeline.segments.lifecycle import (
    LifecycleRules,
    assign_lifecycle,
    estimate_purchase_interval,
    find_purchase_gaps,
)

from .helpers import AS_OF, by_id, clv, features, transactions

# Own mean gaps 60 (1 gap), 10 (2 gaps), 20 (3 gaps), 30 (5 gaps): population median 25 days.
SHRINK_ROWS: list[dict[str, Any]] = [
    {"customer_id": "k1", "T": 100, "ds": 40, "n_days": 2},  # 60 / 1 = 60 d
    {"customer_id": "k2", "T": 50, "ds": 30, "n_days": 3},  # 20 / 2 = 10 d
    {"customer_id": "k3", "T": 70, "ds": 10, "n_days": 4},  # 60 / 3 = 20 d
    {"customer_id": "k5", "T": 200, "ds": 50, "n_days": 6},  # 150 / 5 = 30 d
    {"customer_id": "k0", "T": 80, "ds": 80, "n_days": 1},
]


def test_rhythm_shrunk_toward_the_population_below_three_gaps() -> None:
    got = estimate_purchase_interval(features(SHRINK_ROWS)).collect()
    assert by_id(got, "expected_interval_days") == pytest.approx(
        {
            "k1": 0.25 * 60 + 0.75 * 25,  # w = 1 / (1 + 3): 33.75
            "k2": 0.4 * 10 + 0.6 * 25,  # w = 2 / (2 + 3): 19.0
            "k3": 20.0,  # 3 gaps: own rhythm alone
            "k5": 30.0,
            "k0": 25.0,  # no gap: population
        }
    )
    assert by_id(got, "interval_basis") == {
        "k1": "shrunk",
        "k2": "shrunk",
        "k3": "observed",
        "k5": "observed",
        "k0": "population",
    }


def test_shrinkage_constants_are_rules() -> None:
    rules = LifecycleRules(full_credibility_gaps=2, prior_gaps=1.0)
    got = estimate_purchase_interval(features(SHRINK_ROWS), rules=rules).collect()
    interval = by_id(got, "expected_interval_days")
    assert interval["k1"] == pytest.approx(0.5 * 60 + 0.5 * 25)  # w = 1 / (1 + 1)
    assert interval["k2"] == pytest.approx(10.0)  # 2 gaps are enough now
    assert by_id(got, "interval_basis")["k2"] == "observed"
    with pytest.raises(ValueError):
        LifecycleRules(full_credibility_gaps=0)
    with pytest.raises(ValueError):
        LifecycleRules(prior_gaps=0.0)
    with pytest.raises(ValueError):
        LifecycleRules(lost_min_days=-1)


def test_churn_uses_the_same_rhythm_as_lifecycle() -> None:
    ids = [r["customer_id"] for r in SHRINK_ROWS]
    model = clv([{"customer_id": c, "p_alive": 0.5, "predicted_clv": 10.0} for c in ids])
    segments = assign_lifecycle(features(SHRINK_ROWS), model).collect()
    churn = build_customer_churn(features(SHRINK_ROWS), model).collect()
    assert by_id(churn, "expected_interval_days") == by_id(segments, "expected_interval_days")


# Three regular customers every 30 days (4 gaps each): population median 30 days.
REGULARS: list[dict[str, Any]] = [
    {"customer_id": f"reg{i}", "T": 130, "ds": 10, "n_days": 5} for i in range(3)
]


def test_two_purchase_days_silent_411_days_is_not_active() -> None:
    """One gap of 300 days is not a rhythm: 0.25 x 300 + 0.75 x 30 = 97.5 days."""
    rows = [*REGULARS, {"customer_id": "x", "T": 711, "ds": 411, "n_days": 2}]
    model = clv([{"customer_id": r["customer_id"], "p_alive": 0.65} for r in rows])
    got = assign_lifecycle(features(rows), model).collect()
    assert by_id(got, "expected_interval_days")["x"] == pytest.approx(97.5)
    assert by_id(got, "interval_basis")["x"] == "shrunk"
    assert by_id(got, "rhythm_ratio")["x"] == pytest.approx(411 / 97.5)  # 4.2 > 4
    assert by_id(got, "lifecycle_stage")["x"] == "lost"  # before issue 20: 411 / 300 = active


def _weekly(ds: int, p_alive: float | None = None) -> str:
    """A weekly buyer (19 gaps of 7 days) silent ``ds`` days."""
    rows = [*REGULARS, {"customer_id": "w", "T": 133 + ds, "ds": ds, "n_days": 20}]
    model = clv([{"customer_id": r["customer_id"], "p_alive": p_alive} for r in rows])
    got = assign_lifecycle(features(rows), model).collect()
    assert by_id(got, "expected_interval_days")["w"] == 7.0
    return str(by_id(got, "lifecycle_stage")["w"])


def test_weekly_buyer_is_not_lost_after_a_few_weeks() -> None:
    assert _weekly(10) == "active"  # ratio 1.43
    assert _weekly(11) == "cooling"  # ratio 1.57
    assert _weekly(24) == "cooling"  # ratio 3.4 (at_risk by rhythm), but < 30 days silent
    assert _weekly(24, p_alive=0.05) == "cooling"  # the model cannot overrule the cap either
    assert _weekly(29) == "cooling"
    assert _weekly(30) == "at_risk"  # ratio 4.3 (lost by rhythm), but < 90 days silent
    assert _weekly(89) == "at_risk"
    assert _weekly(90) == "lost"  # no purchase-day in the 90-day window


def test_a_purchase_in_the_last_n_days_is_never_lost() -> None:
    # p_alive 0: lost by the model's level whatever the rhythm, capped by the silence
    rows = [
        {"customer_id": f"d{ds}", "T": ds + 40, "ds": ds, "n_days": 4}
        for ds in (0, 29, 30, 59, 60, 89, 90)
    ]
    model = clv([{"customer_id": r["customer_id"], "p_alive": 0.0} for r in rows])
    got = by_id(assign_lifecycle(features(rows), model).collect(), "lifecycle_stage")
    assert got == {
        "d0": "cooling",
        "d29": "cooling",
        "d30": "at_risk",
        "d59": "at_risk",
        "d60": "at_risk",
        "d89": "at_risk",
        "d90": "lost",
    }
    # N follows the churn period (pipeline: lost_min_days = segments.active_window_days)
    short = by_id(
        assign_lifecycle(features(rows), model, rules=LifecycleRules(lost_min_days=60)).collect(),
        "lifecycle_stage",
    )
    assert short["d59"] == "at_risk" and short["d60"] == "lost"
    # the at_risk cap never exceeds the lost cap
    tiny = by_id(
        assign_lifecycle(features(rows), model, rules=LifecycleRules(lost_min_days=20)).collect(),
        "lifecycle_stage",
    )
    assert tiny["d0"] == "cooling" and tiny["d29"] == "lost"


def test_reactivation_needs_a_credible_prior_rhythm() -> None:
    """q: purchase-days 2 days apart, then 40 days, bought yesterday: one 2-day gap is no rhythm."""
    history = transactions(
        [
            ("q", "2024-05-18", 10.0),
            ("q", "2024-05-20", 10.0),
            ("q", "2024-06-29", 10.0),
            *[(p, d, 10.0) for p in ("p1", "p2") for d in ("2024-03-01", "2024-03-31")],
            *[(p, d, 10.0) for p in ("p1", "p2") for d in ("2024-04-30", "2024-05-30")],
        ]
    )
    feats = compute_features(history, as_of=AS_OF)
    model = clv([{"customer_id": c} for c in ("q", "p1", "p2")])
    got = assign_lifecycle(
        feats, model, purchase_gaps=find_purchase_gaps(history, as_of=AS_OF)
    ).collect()
    # population median(42 / 2, 30, 30) = 30; prior rhythm of q = 0.25 x 2 + 0.75 x 30 = 23 days:
    # the 40-day gap is < 3 x 23, so q is not reactivated (before issue 20: 40 > 3 x 2)
    assert by_id(got, "last_gap_days")["q"] == 40
    assert by_id(got, "lifecycle_stage")["q"] == "active"
    assert by_id(got, "expected_interval_days")["q"] == pytest.approx(0.4 * 21 + 0.6 * 30)


def test_interval_basis_values_are_the_documented_ones() -> None:
    rows = [*SHRINK_ROWS, {"customer_id": "one", "T": 5, "ds": 5}]
    got = assign_lifecycle(features(rows), clv(rows)).collect()
    assert set(got["interval_basis"]) == {"observed", "shrunk", "population"}
    alone = assign_lifecycle(features(rows[-1:]), clv(rows[-1:])).collect()
    assert alone["interval_basis"].to_list() == ["default"]
    assert alone.filter(pl.col("expected_interval_days") != 30.0).height == 0
