"""KPIs and unit economics: hand-computed rows."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest

from clv_pipeline.segments.kpis import build_kpis
from clv_pipeline.segments.unit_economics import build_unit_economics

from .helpers import AS_OF, clv, features, transactions

FEATURES = features(
    [
        {"customer_id": "a", "T": 200, "ds": 10, "n_days": 2, "revenue": 100.0},
        {"customer_id": "b", "T": 300, "ds": 100, "n_days": 2, "revenue": 100.0},
        {"customer_id": "c", "T": 50, "ds": 5, "n_days": 2, "revenue": 100.0},
        {"customer_id": "d", "T": 400, "ds": 200, "n_days": 1, "revenue": 100.0},
    ]
)
MODEL = clv(
    [
        {
            "customer_id": c,
            "p_alive": p,
            "predicted_clv": v,
            "historic_clv": 50.0,
            "formula_clv": 8.0,
        }
        for c, p, v in (("a", 0.9, 10.0), ("b", 0.4, 20.0), ("c", 0.6, 30.0), ("d", 0.1, 40.0))
    ]
)
SEGMENTS = pl.LazyFrame(
    {"value_tier": ["platinum", "low", "low", "low"], "total_revenue": [100.0, 100.0, 100.0, 100.0]}
)
WINDOW_TX = transactions(
    [
        ("a", "2024-06-20", 30.0),
        ("c", "2024-06-25", 10.0),
        ("c", "2024-06-25", 20.0),
        ("c", "2024-06-26", -6.0),
        ("c", "2024-04-01", 10.0),  # 90 days before as_of: the previous window's last day
        ("b", "2024-03-22", 100.0),  # 100 days before: previous window
        ("d", "2023-12-01", 100.0),  # 212 days before: before both windows
    ]
)


def test_kpis_hand_computed() -> None:
    row = (
        build_kpis(FEATURES, MODEL, SEGMENTS, WINDOW_TX, as_of=AS_OF, gross_margin=0.5)
        .collect()
        .row(0, named=True)
    )
    # window = (2024-04-01, 2024-06-30] (exactly 90 days), previous = (2024-01-02, 2024-04-01]
    assert row["customers"] == 4
    assert row["active_customers"] == 2  # a, c
    assert row["alive_customers"] == 2  # p_alive 0.9, 0.6
    assert row["previous_active_customers"] == 2  # b (03-22), c (04-01)
    assert row["retained_customers"] == 1  # c bought again; b did not; a, d were not there
    assert row["retention_rate"] == pytest.approx(1 / 2)
    assert row["churn_rate"] == pytest.approx(1 / 2)
    assert row["net_revenue_window"] == pytest.approx(30 + 10 + 20 - 6)
    assert row["arpu"] == pytest.approx(54 / 2)
    assert row["aov"] == pytest.approx(60 / 3)
    assert row["purchase_frequency"] == pytest.approx(3 / 2)
    assert row["lifespan_days"] == pytest.approx(90 / 0.5)
    assert row["formula_clv_aov"] == pytest.approx(20 * 1.5 * 2)
    assert row["formula_clv_arpu"] == pytest.approx(27 * 0.5 * 2)
    assert row["avg_predicted_clv"] == 25.0 and row["median_predicted_clv"] == 25.0
    assert row["avg_historic_clv"] == 50.0 and row["avg_formula_clv"] == 8.0
    assert row["top_tier_revenue_share"] == 0.25
    assert row["previous_as_of"] is None and row["customers_change"] is None


def test_kpis_change_versus_previous() -> None:
    current = build_kpis(FEATURES, MODEL, SEGMENTS, WINDOW_TX, as_of=AS_OF)
    previous = current.with_columns(
        pl.lit(date(2024, 6, 29)).alias("as_of"), pl.lit(2, pl.Int64).alias("customers")
    )
    row = (
        build_kpis(FEATURES, MODEL, SEGMENTS, WINDOW_TX, as_of=AS_OF, previous=previous)
        .collect()
        .row(0, named=True)
    )
    assert row["previous_as_of"] == date(2024, 6, 29)
    assert row["customers_change"] == 2.0 and row["customers_change_pct"] == 100.0
    assert row["arpu_change"] == 0.0 and row["arpu_change_pct"] == 0.0


def test_kpis_empty_and_no_model() -> None:
    row = build_kpis(
        features([]), clv([]), SEGMENTS.clear(), transactions([]), as_of=AS_OF
    ).collect()
    assert row.height == 1
    assert row.row(0, named=True)["customers"] == 0
    assert row.row(0, named=True)["retention_rate"] is None
    no_model = clv([{"customer_id": c} for c in "abcd"])
    row2 = build_kpis(FEATURES, no_model, SEGMENTS, WINDOW_TX, as_of=AS_OF).collect()
    assert row2["alive_customers"].to_list() == [None]
    assert row2["avg_predicted_clv"].to_list() == [None]
    assert row2["active_customers"].to_list() == [2]


CUSTOMERS = pl.LazyFrame(
    {
        "customer_id": ["a", "b", "c", "d"],
        "acquisition_channel": ["web", "web", "store", "web"],
        "acquired_at": [
            datetime(2024, 1, 10),
            datetime(2024, 1, 20),
            datetime(2024, 1, 5),
            datetime(2024, 7, 10),  # after as_of
        ],
    }
)
SPEND = pl.LazyFrame(
    {
        "month": [date(2024, 1, 1), date(2024, 1, 1), date(2024, 2, 1)],
        "channel": ["web", "store", "web"],
        "spend": [100.0, 60.0, 30.0],
    }
)


def test_unit_economics_hand_computed() -> None:
    feats = features(
        [
            {"customer_id": "a", "T": 100, "ds": 1, "n_days": 3},
            {"customer_id": "b", "T": 9, "ds": 9},
        ]
    )
    model = clv(
        [
            {
                "customer_id": "a",
                "p_alive": 0.9,
                "predicted_clv": 200.0,
                "historic_clv": 100.0,
                "expected_purchases": 2.0,
            },
            {"customer_id": "b", "historic_clv": 50.0},
        ]
    )
    got = build_unit_economics(
        feats,
        model,
        as_of=AS_OF,
        customers=CUSTOMERS,
        acquisition_spend=SPEND,
        gross_margin=0.5,
        cost_to_serve_per_order=1.0,
    ).collect()
    rows = {(r["cohort_month"], r["channel"]): r for r in got.iter_rows(named=True)}
    web = rows[(date(2024, 1, 1), "web")]
    # a: clv 300, orders 3 + 2; b: clv 50 (historic), orders 1
    assert (web["customers"], web["spend"], web["cac"]) == (2, 100.0, 50.0)
    assert web["avg_clv"] == 175.0 and web["avg_cost_to_serve"] == 3.0
    assert web["avg_net_clv"] == pytest.approx(84.5)
    assert web["clv_minus_cac"] == pytest.approx(34.5)
    assert web["clv_cac_ratio"] == pytest.approx(1.69)
    assert web["below_benchmark"] is True
    every = rows[(date(2024, 1, 1), "all")]
    assert (every["customers"], every["spend"]) == (3, 160.0)
    assert every["avg_net_clv"] == pytest.approx(350 / 3 * 0.5 - 2.0)
    feb = rows[(date(2024, 2, 1), "web")]
    assert feb["customers"] == 0 and feb["cac"] is None and feb["below_benchmark"] is None
    assert len(rows) == 5  # Jan web, store, all; Feb web, all
    assert web["new_customer_clv"] is None and web["new_customer_clv_cac_ratio"] is None


def test_unit_economics_compares_cac_with_a_new_customers_clv() -> None:
    got = build_unit_economics(
        features([{"customer_id": "a", "T": 100, "ds": 1, "n_days": 3}]),
        clv([{"customer_id": "a", "historic_clv": 10.0}]),
        as_of=AS_OF,
        customers=CUSTOMERS,
        acquisition_spend=SPEND,
        new_customer_clv=150.0,
    ).collect()
    rows = {(r["cohort_month"], r["channel"]): r for r in got.iter_rows(named=True)}
    web = rows[(date(2024, 1, 1), "web")]
    assert web["new_customer_clv"] == 150.0
    assert web["new_customer_clv_cac_ratio"] == pytest.approx(150.0 / web["cac"])
    assert rows[(date(2024, 2, 1), "web")]["new_customer_clv_cac_ratio"] is None  # no CAC


def test_unit_economics_absent_inputs_give_an_empty_table() -> None:
    for customers, spend in ((None, SPEND), (CUSTOMERS, None), (None, None)):
        got = build_unit_economics(
            features([]), clv([]), as_of=AS_OF, customers=customers, acquisition_spend=spend
        ).collect()
        assert got.height == 0
