"""The segments builders against their contract tables (clv_pipeline.schema.segments)."""

from __future__ import annotations

import importlib
import pkgutil
from datetime import date
from typing import TypeVar

import polars as pl
import pytest

import clv_pipeline.segments
from clv_pipeline.schema import (
    PURCHASE_GAPS,
    SEGMENT_TABLES,
    SNAPSHOT_TABLES,
    TABLES,
    Table,
    conform,
)
from clv_pipeline.segments.churn import build_customer_churn
from clv_pipeline.segments.cohorts import build_cohorts
from clv_pipeline.segments.kpis import build_kpis
from clv_pipeline.segments.lifecycle import find_purchase_gaps
from clv_pipeline.segments.migration import build_segment_migration
from clv_pipeline.segments.tiers import build_customer_segments
from clv_pipeline.segments.unit_economics import build_unit_economics

from .helpers import AS_OF, by_id, clv, features, transactions

FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)

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


def _lazy_tables(
    tx: pl.LazyFrame, feats: pl.LazyFrame, model: pl.LazyFrame
) -> dict[str, pl.LazyFrame]:
    gaps = find_purchase_gaps(tx, as_of=AS_OF)
    segments = build_customer_segments(feats, model, purchase_gaps=gaps)
    customers = pl.LazyFrame(
        {"customer_id": ["a"], "acquisition_channel": ["web"], "acquired_at": [date(2024, 1, 5)]}
    )
    spend = pl.LazyFrame({"month": [date(2024, 1, 1)], "channel": ["web"], "spend": [9.0]})
    kpis = build_kpis(feats, model, segments, tx, as_of=AS_OF).collect().lazy()
    return {
        "purchase_gaps": gaps,
        "customer_segments": segments,
        "customer_churn": build_customer_churn(feats, model),
        "segment_migration": build_segment_migration(None, segments, as_of=AS_OF),
        "cohorts": build_cohorts(tx, model, as_of=AS_OF),
        "unit_economics": build_unit_economics(
            feats, model, as_of=AS_OF, customers=customers, acquisition_spend=spend
        ),
        "kpis": build_kpis(feats, model, segments, tx, as_of=AS_OF, previous=kpis),
    }


def _all_tables(
    tx: pl.LazyFrame, feats: pl.LazyFrame, model: pl.LazyFrame
) -> dict[str, pl.DataFrame]:
    return {name: frame.collect() for name, frame in _lazy_tables(tx, feats, model).items()}


@pytest.fixture
def conformed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Table, pl.Schema]]:
    """Record every (table, schema of the frame) a segments builder passes to conform."""
    seen: list[tuple[Table, pl.Schema]] = []

    def spy(frame: FrameT, table: Table) -> FrameT:
        seen.append((table, frame.collect_schema()))
        return conform(frame, table)

    for info in pkgutil.iter_modules(clv_pipeline.segments.__path__):
        module = importlib.import_module(f"clv_pipeline.segments.{info.name}")
        if getattr(module, "conform", None) is conform:
            monkeypatch.setattr(module, "conform", spy)
    return seen


@pytest.mark.parametrize("case", list(CASES))
def test_builders_compute_the_contract_types(
    case: str, conformed: list[tuple[Table, pl.Schema]]
) -> None:
    """Each builder computes every column in its contract type: conform only orders columns.

    A strict cast still converts values that fit (float -> int truncates, datetime -> date drops
    the time), so a column computed in the wrong type would otherwise be hidden by conform.
    """
    got = _lazy_tables(*CASES[case])
    assert {table.name for table, _ in conformed} == set(got), "each builder conforms its table"
    for table, before in conformed:
        wrong = {
            c.name: str(before.get(c.name)) for c in table.columns if before.get(c.name) != c.dtype
        }
        assert not wrong, (case, table.name, wrong)


@pytest.mark.parametrize("case", list(CASES))
def test_outputs_have_the_contract_schema_and_no_unexpected_nulls(case: str) -> None:
    for name, lazy in _lazy_tables(*CASES[case]).items():
        spec = TABLES.get(name, PURCHASE_GAPS)
        assert spec.name == name
        # the planned schema, which later stages build on, and the collected one
        assert lazy.collect_schema() == spec.schema, name
        frame = lazy.collect()
        assert frame.schema == spec.schema, name
        for column in spec.columns:
            if not column.nullable:
                assert frame[column.name].null_count() == 0, (case, name, column.name)
        if case == "empty" and name in ("customer_segments", "kpis"):
            assert frame.height == (1 if name == "kpis" else 0)


def test_segment_tables_are_the_published_snapshots_the_builders_make(
    conformed: list[tuple[Table, pl.Schema]],
) -> None:
    """Publishing looks tables up in TABLES: every table a builder conforms to is registered
    there, as a snapshot table, and is one of SEGMENT_TABLES; purchase_gaps stays a helper."""
    _all_tables(*CASES["two customers, model"])
    made = {table.name: table for table, _ in conformed}
    assert made.pop("purchase_gaps") is PURCHASE_GAPS
    assert made == SEGMENT_TABLES
    assert all(TABLES[name] is table for name, table in made.items())
    assert set(made) <= set(SNAPSHOT_TABLES)
    assert "purchase_gaps" not in TABLES


def test_customer_segments_end_to_end_hand_computed() -> None:
    got = _all_tables(*CASES["two customers, model"])["customer_segments"]
    # two customers: two distinct values per score, so dense scores 1 and 2 (issue 20)
    assert by_id(got, "rfm_score") == {"a": "222", "b": "111"}
    assert by_id(got, "rfm_segment") == {"a": "hibernating", "b": "lost"}
    # share ranked above: a 0 -> platinum; b 1/2, not < 0.5 -> low
    assert by_id(got, "value_tier") == {"a": "platinum", "b": "low"}
    # a: rhythm 167 days, 10 days ago -> active; b: first purchase 29 days ago -> new
    assert by_id(got, "lifecycle_stage") == {"a": "active", "b": "new"}
    assert by_id(got, "micro_segment") == {"a": "platinum__active", "b": "low__new"}
    no_model = _all_tables(*CASES["two customers, all predictive columns null"])
    seg = no_model["customer_segments"]
    assert set(seg["value_basis"]) == {"historic_clv"}
    # without a model the churn probability comes from the rhythm (no period retention: dropout
    # 0.23 x the purchase rate). a: one 167-day gap, the only repeater, so the population is
    # 167 d too and the rhythm 167 d; b: one-time, the population's 167 d.
    # a: x = 10 / 167 = 0.0599, e = exp(-1.23 x 0.0599) = 0.9290,
    #    alive 0.9290 / (0.9290 + 0.1870 x 0.0710) = 0.9859 -> churn 0.0141
    # b: x = 29 / 167 = 0.1737, e = exp(-0.2136) = 0.8077,
    #    alive 0.8077 / (0.8077 + 0.1870 x 0.1923) = 0.9574 -> churn 0.0426
    churn = no_model["customer_churn"]
    assert by_id(churn, "expected_interval_days") == pytest.approx({"a": 167.0, "b": 167.0})
    assert by_id(churn, "churn_probability") == pytest.approx({"a": 0.0141, "b": 0.0426}, abs=2e-4)
    assert by_id(churn, "risk_band") == {"a": "low", "b": "low"}
    assert by_id(churn, "value_at_risk") == {"a": None, "b": None}  # no p_alive, no value
    # and the stage agrees: a active (band low), b new
    assert by_id(seg, "lifecycle_stage") == {"a": "active", "b": "new"}
