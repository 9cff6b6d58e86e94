"""The segments and churn steps put the day's features, customer_clv and purchase gaps side by
side instead of joining them on customer_id: the tables must equal the joined ones, and a day
whose tables do not list the same customers must fall back to the joins."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from clv_pipeline import pipeline
from clv_pipeline.config import load_config
from clv_pipeline.paths import Layout
from clv_pipeline.publish.warehouse import read_published
from clv_pipeline.segments.lifecycle import GAP_COLUMNS, side_by_side
from tests.conftest import build_through_features, land_demo_history

END = date(2024, 6, 30)
DAYS = 150


def test_side_by_side_tables_equal_the_joined_ones(layout: Layout, tmp_path: Path) -> None:
    land_demo_history(layout, tmp_path, n_customers=700, days=DAYS, end=END, seed=21)
    config = load_config(layout.home)
    build_through_features(config, END, DAYS)
    pipeline.build_customer_clv(config, END)
    pipeline.build_model_backtest(config, END)
    pipeline.build_customer_segments(config, END)
    pipeline.build_customer_churn(config, END)

    features = pipeline._scan(config, "customer_features", END)
    clv = pipeline._scan(config, "customer_clv", END)
    gaps = pipeline.purchase_gaps_from_state(
        pipeline._scan(config, "customer_state", END), as_of=END
    )
    # the published day went the side-by-side way: the day's tables are aligned
    view = pipeline._customers_side_by_side(
        config, END, ["p_alive"], gaps.select("customer_id", *GAP_COLUMNS)
    )
    assert {"p_alive", *GAP_COLUMNS} <= set(view.collect_schema().names())

    basis = pipeline.churn_basis(config, END)
    common = {
        "rules": pipeline.lifecycle_rules(config),
        "basis": basis,
        "period_retention": pipeline.period_retention(config, END),
        "window_days": config.segments.active_window_days,
    }
    joined_segments = pipeline.build_segments_table(
        features,
        clv,
        purchase_gaps=gaps,
        tiers=tuple(config.segments.value_tiers.items()),
        **common,
    ).collect()
    joined_churn = pipeline.build_churn_table(
        features, clv, risk_bands=tuple(config.segments.risk_bands.items()), **common
    ).collect()
    published_segments = read_published(layout, "customer_segments", END)
    published_churn = read_published(layout, "customer_churn", END)
    assert published_segments is not None and published_churn is not None
    assert joined_segments.height > 0
    assert published_segments.equals(joined_segments)
    assert published_churn.equals(joined_churn)


def test_tables_that_are_not_aligned_are_not_put_side_by_side() -> None:
    base = pl.DataFrame({"customer_id": ["a", "b", "c"], "x": [1, 2, 3]})
    aligned = pl.DataFrame({"customer_id": ["a", "b", "c"], "y": [4, 5, 6]})
    assert side_by_side(base, aligned).columns == ["customer_id", "x", "y"]
    for other in (
        pl.DataFrame({"customer_id": ["a", "c", "b"], "y": [4, 6, 5]}),  # another order
        pl.DataFrame({"customer_id": ["a", "b"], "y": [4, 5]}),  # a customer missing
        pl.DataFrame({"customer_id": ["a", "b", "d"], "y": [4, 5, 6]}),  # another customer
    ):
        assert side_by_side(base, aligned, other).equals(base)
