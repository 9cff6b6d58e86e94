"""The scale benchmark's seed and table (bench/pipeline.py) on a tiny history."""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from clv_pipeline import pipeline
from clv_pipeline.config import load_config
from clv_pipeline.paths import Layout
from clv_pipeline.schema import VALIDATED_TRANSACTIONS, conform

BENCH = Path(__file__).resolve().parents[2] / "bench" / "pipeline.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_pipeline", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seed_writes_contract_partitions_and_a_landing_day(bench, tmp_path: Path) -> None:
    home = tmp_path / "bench"
    figures = bench.seed(home, 6_000, 1_000, 0.01, 7)
    layout = Layout(home)
    days = layout.published_days("validated_transactions", "date")
    assert days[0] >= bench.HISTORY_START and days[-1] < bench.AS_OF
    history = pl.read_parquet(
        [layout.partition_file("validated_transactions", "date", d) for d in days]
    )
    assert history.height == figures["history_rows"]
    assert 4_000 < history.height < 8_000  # about the requested 6 transactions per customer
    conform(history, VALIDATED_TRANSACTIONS)  # raises when a column or type is off
    assert history["transaction_id"].is_unique().all()
    assert history["event_date"].n_unique() == len(days)
    landing = pl.read_parquet(layout.landing_day(bench.AS_OF) / "orders.parquet")
    assert landing.height == figures["new_day_rows"] == 60
    assert set(landing.schema.values()) == {pl.String}
    # the new day goes through the real pipeline: validation accepts it and the state is incremental
    config = load_config(home, environ={}, overrides={"start_date": bench.HISTORY_START})
    pipeline.build_customer_state(config, bench.AS_OF - timedelta(days=1))
    pipeline.pull_raw_transactions(config, bench.AS_OF)
    validated = pipeline.validate_days(config, [bench.AS_OF])[0]
    assert validated.stats["rows_quarantined"] == 0
    state = pipeline.build_customer_state(config, bench.AS_OF)
    assert state.stats["mode"] == "incremental"


def test_render_prints_every_stage_and_the_ratios(bench) -> None:
    figures = {
        "machine": {"cores": 2, "memory_gib": 23.5, "cpu": "x"},
        "size": "tiny",
        "as_of": "2026-10-31",
        "seed": {"history_rows": 1000, "new_day_rows": 10},
        "stages": [
            {
                "stage": "customer_state: full recompute",
                "wall_s": 2.0,
                "peak_rss_mb": 10,
                "rows": 1000,
                "rows_per_s": 500,
            },
            {
                "stage": "customer_state: incremental",
                "wall_s": 0.5,
                "peak_rss_mb": 5,
                "rows": 10,
                "rows_per_s": 20,
            },
        ],
        "run_full": {"wall_s": 10.0, "peak_rss_mb": 100},
        "run_incremental": {"wall_s": 8.0, "peak_rss_mb": 90},
    }
    text = bench.render(figures)
    assert "| customer_state: incremental | 0.50 | 5 | 10 | 20 |" in text
    assert "incremental / full recompute: 0.25 (4.0x)" in text
    assert "daily run incremental / full recompute: 0.80" in text
    assert "2 cores, 23.5 GiB" in text
