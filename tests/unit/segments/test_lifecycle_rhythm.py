"""Lifecycle rhythm from enough gaps and silence caps (issue 20): hand-built customers."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from clv_pipeline.features import compute_features
from clv_pipeline.segments.churn import build_customer_churn
from clv_pipeline.segments.lifecycle import (
    FALLBACK_DROPOUT_SHARE,
    ChurnBasis,
    LifecycleRules,
    assign_lifecycle,
    dropout_per_day,
    estimate_purchase_interval,
    find_purchase_gaps,
    recency_alive,
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
    no_model = clv([{"customer_id": r["customer_id"]} for r in rows])
    got = assign_lifecycle(features(rows), no_model).collect()
    assert by_id(got, "expected_interval_days")["x"] == pytest.approx(97.5)
    assert by_id(got, "interval_basis")["x"] == "shrunk"
    assert by_id(got, "rhythm_ratio")["x"] == pytest.approx(411 / 97.5)  # 4.22
    # no model, no period retention: dropout 0.23 x the purchase rate, x = 4.215,
    # e = exp(-1.23 x 4.215) = exp(-5.185) = 0.00560, alive 0.00560 / (0.00560 + 0.1870 x
    # 0.9944) = 0.0292 -> churn 0.971 >= 0.75, 411 >= 90 days silent: lost. With the unshrunk
    # 300-day rhythm (x = 1.37: e = 0.1854, alive 0.1854 / (0.1854 + 0.1870 x 0.8146) = 0.549,
    # churn 0.451) it would be active, as before issue 20 (411 / 300 < 1.5).
    assert by_id(got, "lifecycle_stage")["x"] == "lost"
    churn = build_customer_churn(features(rows), no_model).collect()
    assert by_id(churn, "churn_probability")["x"] == pytest.approx(0.971, abs=5e-4)
    assert by_id(churn, "risk_band")["x"] == "critical"
    # with a model only P(alive) counts: p_alive 0.65 is churn 0.35, active (band medium)
    model = clv([{"customer_id": r["customer_id"], "p_alive": 0.65} for r in rows])
    assert by_id(assign_lifecycle(features(rows), model).collect(), "lifecycle_stage")["x"] == (
        "active"
    )
    assert by_id(build_customer_churn(features(rows), model).collect(), "risk_band")["x"] == (
        "medium"
    )


def _weekly(ds: int, p_alive: float | None = None) -> str:
    """A weekly buyer (19 gaps of 7 days) silent ``ds`` days."""
    rows = [*REGULARS, {"customer_id": "w", "T": 133 + ds, "ds": ds, "n_days": 20}]
    model = clv([{"customer_id": r["customer_id"], "p_alive": p_alive} for r in rows])
    got = assign_lifecycle(features(rows), model).collect()
    assert by_id(got, "expected_interval_days")["w"] == 7.0
    return str(by_id(got, "lifecycle_stage")["w"])


def test_weekly_buyer_is_not_lost_after_a_few_weeks() -> None:
    # no model: churn = 1 - e / (e + 0.23 / 1.23 x (1 - e)), e = exp(-1.23 x silence / 7)
    assert _weekly(10) == "active"  # x 1.43: e = 0.1725, alive 0.5272, churn 0.473
    assert _weekly(11) == "cooling"  # x 1.57: e = 0.1447, alive 0.4751, churn 0.525
    assert _weekly(16) == "cooling"  # x 2.29: e = 0.0601, alive 0.2549, churn 0.745
    assert _weekly(17) == "at_risk"  # x 2.43: e = 0.0503, alive 0.2212, churn 0.779
    assert _weekly(89) == "at_risk"  # churn ~1, but < 90 days silent
    assert _weekly(90) == "lost"  # no purchase-day in the 90-day window
    # with a model only P(alive) counts, still never lost inside the window
    assert _weekly(24, p_alive=0.05) == "at_risk"  # churn 0.95, 24 < 90 days silent
    assert _weekly(24, p_alive=0.9) == "active"  # churn 0.1, whatever the 3.4 rhythms
    assert _weekly(120, p_alive=0.6) == "active"  # churn 0.4
    assert _weekly(120, p_alive=0.3) == "cooling"  # churn 0.7
    assert _weekly(120, p_alive=0.05) == "lost"


def test_a_purchase_in_the_last_n_days_is_never_lost() -> None:
    # p_alive 0: churn 1, the top band whatever the rhythm; lost only after 90 days of silence
    rows = [
        {"customer_id": f"d{ds}", "T": ds + 40, "ds": ds, "n_days": 4}
        for ds in (0, 29, 30, 59, 60, 89, 90)
    ]
    model = clv([{"customer_id": r["customer_id"], "p_alive": 0.0} for r in rows])
    got = by_id(assign_lifecycle(features(rows), model).collect(), "lifecycle_stage")
    assert got == {
        "d0": "at_risk",
        "d29": "at_risk",
        "d30": "at_risk",
        "d59": "at_risk",
        "d60": "at_risk",
        "d89": "at_risk",
        "d90": "lost",
    }
    # no model: rhythm 40 / 3 = 13.3 days; bought today (e = 1, churn 0) is active, and
    # 89 days (x 6.7: e = exp(-8.21) = 0.00027, churn 0.9985) is still at_risk
    no_model = clv([{"customer_id": r["customer_id"]} for r in rows])
    rhythm = by_id(assign_lifecycle(features(rows), no_model).collect(), "lifecycle_stage")
    assert rhythm["d0"] == "active" and rhythm["d89"] == "at_risk" and rhythm["d90"] == "lost"
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
    assert tiny["d0"] == "at_risk" and tiny["d29"] == "lost"


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


def test_recency_alive_by_hand() -> None:
    """The Pareto/NBD P(alive) with known rates against the closed form, worked by hand."""
    # r = 0.57 kept over W = 90 days: d = -ln(0.57) / 90 = 0.562119 / 90 = 0.0062458 per day;
    # rhythm 30 days: l = 0.0333333; d + l = 0.0395791; d / (d + l) = 0.157805
    dropout = dropout_per_day(0.57, 90)
    assert dropout == pytest.approx(0.0062458, rel=1e-4)
    frame = pl.DataFrame({"silence": [0.0, 30.0, 60.0, 90.0], "interval": [30.0] * 4})
    alive = frame.select(recency_alive(pl.col("silence"), pl.col("interval"), dropout).alias("p"))[
        "p"
    ]
    # s = 0: e = 1, alive 1
    # s = 30: e = exp(-1.18737) = 0.30503; 0.30503 / (0.30503 + 0.157805 x 0.69497) = 0.73554
    # s = 60: e = exp(-2.37475) = 0.093043; 0.093043 / (0.093043 + 0.157805 x 0.906957) = 0.39397
    # s = 90: e = exp(-3.56212) = 0.028381; 0.028381 / (0.028381 + 0.157805 x 0.971619) = 0.15619
    assert (1.0 - alive).to_list() == pytest.approx([0.0, 0.2645, 0.6060, 0.8438], abs=2e-4)
    # unknown retention: d = 0.23 l, so the churn probability depends on silence / rhythm alone:
    # 1 rhythm e = exp(-1.23) = 0.2923, alive 0.2923 / (0.2923 + 0.1870 x 0.7077) = 0.688 -> 0.312;
    # 1.5: 0.499; 2: 0.667; 3: e = exp(-3.69) = 0.0250, alive 0.120 -> 0.880; 4: 0.962
    assert FALLBACK_DROPOUT_SHARE == 0.23
    assert dropout_per_day(None, 90) is None and dropout_per_day(0.0, 90) is None
    rhythms = pl.DataFrame({"silence": [10.0, 15.0, 20.0, 30.0, 40.0], "interval": [10.0] * 5})
    fallback = rhythms.select(recency_alive(pl.col("silence"), pl.col("interval"), None))
    assert (1.0 - fallback.to_series()).to_list() == pytest.approx(
        [0.312, 0.499, 0.667, 0.880, 0.962], abs=1e-3
    )
    # r = 1: nobody drops out, alive whatever the silence, even where exp(-silence / rhythm)
    # underflows to 0 (800 days at a 1-day rhythm; 0 / 0 before the fix)
    assert dropout_per_day(1.0, 90) == 0.0
    never = pl.DataFrame({"silence": [5.0, 800.0], "interval": [1.0, 1.0]}).select(
        recency_alive(pl.col("silence"), pl.col("interval"), 0.0)
    )
    assert never.to_series().to_list() == [1.0, 1.0]


# Rhythm 30 days (3 gaps over 90 days) each, silent 10 .. 200 days, and one new customer.
BAND_ROWS: list[dict[str, Any]] = [
    *[{"customer_id": f"s{ds}", "T": ds + 90, "ds": ds, "n_days": 4} for ds in (10, 45, 60, 80)],
    *[{"customer_id": f"s{ds}", "T": ds + 90, "ds": ds, "n_days": 4} for ds in (100, 200)],
    {"customer_id": "fresh", "T": 20, "ds": 5, "n_days": 2},
]
STAGE_BANDS = {
    "active": {"low", "medium"},
    "cooling": {"high"},
    "at_risk": {"critical"},
    "lost": {"critical"},
}


@pytest.mark.parametrize(
    ("kind", "p_alive", "expected"),
    [
        # recency, r = 0.57 over 90 days (see test_recency_alive_by_hand): churn at 10 d 0.071,
        # 45 d 0.438, 60 d 0.606, 80 d 0.782, 100 d 0.890, 200 d 0.998
        (
            "recency",
            {},
            {
                "s10": "active",
                "s45": "active",
                "s60": "cooling",
                "s80": "at_risk",  # >= 0.75 but 80 < 90 days silent
                "s100": "lost",
                "s200": "lost",
            },
        ),
        # model: 1 - p_alive; s80 has no p_alive, so its rhythm (0.782) rates it
        (
            "model",
            {"s10": 0.3, "s45": 0.9, "s60": 0.2, "s100": 0.6, "s200": 0.01, "fresh": 0.99},
            {
                "s10": "cooling",  # 0.7
                "s45": "active",  # 0.1
                "s60": "at_risk",  # 0.8, 60 < 90 days silent
                "s80": "at_risk",  # 0.782, 80 < 90 days silent
                "s100": "active",  # 0.4
                "s200": "lost",  # 0.99
            },
        ),
    ],
)
def test_stage_and_risk_band_never_disagree(
    kind: str, p_alive: dict[str, float], expected: dict[str, str]
) -> None:
    basis = ChurnBasis("model" if kind == "model" else "recency", "")
    model = clv(
        [
            {"customer_id": r["customer_id"], "p_alive": p_alive.get(r["customer_id"])}
            for r in BAND_ROWS
        ]
    )
    # the same basis and period retention for both tables, as the pipeline does
    stages = by_id(
        assign_lifecycle(
            features(BAND_ROWS), model, basis=basis, period_retention=0.57, window_days=90
        ).collect(),
        "lifecycle_stage",
    )
    churn = build_customer_churn(
        features(BAND_ROWS), model, basis=basis, period_retention=0.57, window_days=90
    ).collect()
    assert stages == {**expected, "fresh": "new"}
    assert set(stages.values()) == {"new", "active", "cooling", "at_risk", "lost"}
    bands = by_id(churn, "risk_band")
    prob = by_id(churn, "churn_probability")
    for c, stage in stages.items():
        if stage != "new":
            assert bands[c] in STAGE_BANDS[stage], (c, stage, bands[c], prob[c])
    assert prob["s80"] == pytest.approx(0.782, abs=5e-4)
