"""Every builder's output schema equals its spec in clv_pipeline.segments.tables (edge cases too)."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from clv_pipeline.segments.churn import build_customer_churn
from clv_pipeline.segments.cohorts import build_cohorts
from clv_pipeline.segments.kpis import build_kpis
from clv_pipeline.segments.lifecycle import find_purchase_gaps
from clv_pipeline.segments.migration import build_segment_migration
from clv_pipeline.segments.tables import (
    COHORTS,
    CUSTOMER_CHURN,
    CUSTOMER_SEGMENTS,
    KPIS,
    PURCHASE_GAPS,
    SEGMENT_MIGRATION,
    SEGMENT_TABLES,
    UNIT_ECONOMICS,
)
from clv_pipeline.segments.tiers import build_customer_segments
from clv_pipeline.segments.unit_economics import build_unit_economics

from .helpers import AS_OF, by_id, clv, features, transactions

TX = transactions(
    [
        ("a", "2024-01-05", 10.0, "web"),
        ("a", "2024-06-20", 30.0, "web"),
        ("b", "2024-06-01", 5.0, "store"),
        ("b", "2024-06-02", -5.0, "store"),
    ]
)
FEATS = features(
    [
        {"customer_id": "a", "T": 177, "ds": 10, "n_days": 2, "revenue": 40.0},
        {"customer_id": "b", "T": 29, "ds": 29, "n_days": 1, "revenue": 0.0},
    ]
)
WITH_MODEL = clv(
    [
        {"customer_id": "a", "p_alive": 0.9, "predicted_clv": 80.0, "historic_clv": 40.0},
        {"customer_id": "b", "p_alive": 1.0, "predicted_clv": 5.0, "historic_clv": 0.0},
    ]
)
NO_MODEL = clv([{"customer_id": "a", "historic_clv": 40.0}, {"customer_id": "b"}])
CASES = {
    "two customers, model": (TX, FEATS, WITH_MODEL),
    "two customers, all predictive columns null": (TX, FEATS, NO_MODEL),
    "one customer": (TX.filter(pl.col("customer_id") == "a"), FEATS.head(1), WITH_MODEL.head(1)),
    "empty": (transactions([]), features([]), clv([])),
}


def _all_tables(
    tx: pl.LazyFrame, feats: pl.LazyFrame, model: pl.LazyFrame
) -> dict[str, pl.DataFrame]:
    gaps = find_purchase_gaps(tx, as_of=AS_OF)
    segments = build_customer_segments(feats, model, purchase_gaps=gaps)
    customers = pl.LazyFrame(
        {"customer_id": ["a"], "acquisition_channel": ["web"], "acquired_at": [date(2024, 1, 5)]}
    )
    spend = pl.LazyFrame({"month": [date(2024, 1, 1)], "channel": ["web"], "spend": [9.0]})
    kpis = build_kpis(feats, model, segments, tx, as_of=AS_OF)
    return {
        "purchase_gaps": gaps.collect(),
        "customer_segments": segments.collect(),
        "customer_churn": build_customer_churn(feats, model).collect(),
        "segment_migration": build_segment_migration(None, segments, as_of=AS_OF).collect(),
        "cohorts": build_cohorts(tx, model, as_of=AS_OF).collect(),
        "unit_economics": build_unit_economics(
            feats, model, as_of=AS_OF, customers=customers, acquisition_spend=spend
        ).collect(),
        "kpis": build_kpis(feats, model, segments, tx, as_of=AS_OF, previous=kpis).collect(),
    }


@pytest.mark.parametrize("case", list(CASES))
def test_output_schemas_equal_the_specs(case: str) -> None:
    got = _all_tables(*CASES[case])
    specs = {**SEGMENT_TABLES, "purchase_gaps": PURCHASE_GAPS}
    assert set(got) == set(specs)
    for name, frame in got.items():
        assert frame.schema == specs[name].schema, name
        for column in specs[name].columns:
            if not column.nullable:
                assert frame[column.name].null_count() == 0, (case, name, column.name)
    if case == "empty":
        assert got["customer_segments"].height == 0 and got["kpis"].height == 1


def test_customer_segments_end_to_end_hand_computed() -> None:
    got = _all_tables(*CASES["two customers, model"])["customer_segments"]
    # two customers: the better one scores 1 + floor(5 x 1/2) = 3, the other 1
    assert by_id(got, "rfm_score") == {"a": "333", "b": "111"}
    assert by_id(got, "rfm_segment") == {"a": "need_attention", "b": "hibernating"}
    # share ranked above: a 0 -> platinum; b 1/2, not < 0.5 -> low
    assert by_id(got, "value_tier") == {"a": "platinum", "b": "low"}
    # a: rhythm 167 days, 10 days ago -> active; b: first purchase 29 days ago -> new
    assert by_id(got, "lifecycle_stage") == {"a": "active", "b": "new"}
    assert by_id(got, "micro_segment") == {"a": "platinum__active", "b": "low__new"}
    no_model = _all_tables(*CASES["two customers, all predictive columns null"])
    seg = no_model["customer_segments"]
    assert set(seg["value_basis"]) == {"historic_clv"}
    assert no_model["customer_churn"]["risk_band"].to_list() == ["unknown", "unknown"]
    assert set(SEGMENT_TABLES) == {
        t.name
        for t in (
            CUSTOMER_SEGMENTS,
            CUSTOMER_CHURN,
            SEGMENT_MIGRATION,
            COHORTS,
            UNIT_ECONOMICS,
            KPIS,
        )
    }
