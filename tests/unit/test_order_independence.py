"""Every stage writes the same bytes whatever the order of its input rows (issue 18, item 4).

Polars aggregates in parallel: the float sum or mean of a group adds its threads' partial sums in
an order that varies from run to run, and a sort without a total key leaves ties in input order.
Each stage runs on its inputs as given and on shuffled copies (the order a rerun, a late file or a
full recompute may read them in); the files written with the project's parquet writer must be
identical, byte for byte.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from clv_pipeline.demo import generate_history
from clv_pipeline.features.customers import compute_features, merge_states, summarise_transactions
from clv_pipeline.parquet import write_parquet
from clv_pipeline.report.backtest import _calibration, _deciles, run_backtest
from clv_pipeline.segments.churn import build_customer_churn
from clv_pipeline.segments.cohorts import build_cohorts
from clv_pipeline.segments.kpis import build_kpis
from clv_pipeline.segments.migration import build_segment_migration
from clv_pipeline.segments.tiers import build_customer_segments
from clv_pipeline.segments.unit_economics import build_unit_economics
from clv_pipeline.valuation import Valuation, value_customers

AS_OF = date(2025, 6, 30)
BEFORE = AS_OF - timedelta(days=30)
SEEDS = (1, 2, 3)


def shuffled(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    return frame.sample(fraction=1.0, shuffle=True, seed=seed)


def file_bytes(frame: pl.DataFrame | pl.LazyFrame, path: Path) -> bytes:
    """``frame`` written as a published table is (``clv_pipeline.parquet.write_parquet``)."""
    write_parquet(frame.collect() if isinstance(frame, pl.LazyFrame) else frame, path)
    return path.read_bytes()


def assert_same_bytes(
    expected: pl.DataFrame | pl.LazyFrame, actual: pl.DataFrame | pl.LazyFrame, folder: Path
) -> None:
    a, b = (
        file_bytes(expected, folder / "expected.parquet"),
        file_bytes(actual, folder / "b.parquet"),
    )
    if a != b:  # show what differs
        assert_frame_equal(pl.read_parquet(a), pl.read_parquet(b), check_exact=True)
    assert a == b


@pytest.fixture(scope="module")
def history() -> pl.DataFrame:
    """Validated-like transactions: purchases, refunds (negative amounts), channels."""
    frame = generate_history(n_customers=500, days=400, end=AS_OF, seed=3)
    return frame.with_columns(
        pl.col("occurred_at").dt.date().alias("event_date"),
        pl.when(pl.col("amount") > 0)
        .then(pl.lit("purchase"))
        .otherwise(pl.lit("refund"))
        .alias("revenue_kind"),
    )


def _value(history: pl.DataFrame, as_of: date) -> tuple[pl.DataFrame, Valuation]:
    features = compute_features(history.lazy(), as_of=as_of).collect()
    return features, value_customers(features, as_of=as_of, horizon_days=365.0)


@pytest.fixture(scope="module")
def snapshot(history: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """One snapshot's inputs to the segment stages, and the previous snapshot's segments."""
    features, valuation = _value(history, AS_OF)
    prev_features, prev_valuation = _value(history, BEFORE)
    return {
        "features": features,
        "clv": valuation.clv,
        "params": valuation.params,
        "segments": build_customer_segments(features.lazy(), valuation.clv.lazy()).collect(),
        "previous": build_customer_segments(
            prev_features.lazy(), prev_valuation.clv.lazy()
        ).collect(),
    }


# ------------------------------------------------------------------ features and state
@pytest.mark.parametrize("seed", SEEDS)
def test_features_and_state_do_not_depend_on_row_order(
    history: pl.DataFrame, seed: int, tmp_path: Path
) -> None:
    rows = shuffled(history, seed).lazy()
    assert_same_bytes(
        compute_features(history.lazy(), as_of=AS_OF),
        compute_features(rows, as_of=AS_OF),
        tmp_path,
    )
    full = summarise_transactions(history.lazy()).sort("customer_id")
    assert_same_bytes(full, summarise_transactions(rows).sort("customer_id"), tmp_path)
    # the incremental state (an older state merged with the newer days) is the same bytes too
    old = rows.filter(pl.col("event_date") <= BEFORE)
    new = rows.filter(pl.col("event_date") > BEFORE)
    merged = merge_states(summarise_transactions(old), summarise_transactions(new))
    assert_same_bytes(full, merged.sort("customer_id"), tmp_path)


# ------------------------------------------------------------------ models
@pytest.mark.parametrize("seed", SEEDS[:2])
def test_valuation_does_not_depend_on_customer_order(
    snapshot: dict[str, pl.DataFrame], seed: int, tmp_path: Path
) -> None:
    again = value_customers(shuffled(snapshot["features"], seed), as_of=AS_OF, horizon_days=365.0)
    assert_same_bytes(snapshot["params"], again.params, tmp_path)
    # customer_clv follows the (sorted) customer_features rows
    assert_same_bytes(snapshot["clv"], again.clv.sort("customer_id"), tmp_path)


# ------------------------------------------------------------------ segments
@pytest.mark.parametrize("seed", SEEDS)
def test_segment_tables_do_not_depend_on_row_order(
    history: pl.DataFrame, snapshot: dict[str, pl.DataFrame], seed: int, tmp_path: Path
) -> None:
    s = snapshot
    mixed = {name: shuffled(frame, seed).lazy() for name, frame in s.items()}
    rows = shuffled(history, seed).lazy()
    customers = (
        history.group_by("customer_id")
        .agg(pl.col("channel").min().alias("acquisition_channel"), pl.col("event_date").min())
        .select("customer_id", "acquisition_channel", pl.col("event_date").alias("acquired_at"))
        .sort("customer_id")
    )
    spend = pl.DataFrame(
        {
            "month": [date(2025, m, 1) for m in range(1, 7)] * 2,
            "channel": ["email"] * 6 + ["search"] * 6,
            "spend": [100.1, 200.2, 300.3, 0.7, 1.9, 2.3] * 2,
        }
    )

    def tables(
        inputs: dict[str, pl.LazyFrame], transactions: pl.LazyFrame, buyers: pl.DataFrame
    ) -> dict[str, pl.LazyFrame]:
        features, clv, segments = inputs["features"], inputs["clv"], inputs["segments"]
        return {
            "customer_segments": build_customer_segments(features, clv),
            "customer_churn": build_customer_churn(features, clv),
            "segment_migration": build_segment_migration(inputs["previous"], segments, as_of=AS_OF),
            "cohorts": build_cohorts(transactions, clv, as_of=AS_OF),
            "kpis": build_kpis(features, clv, segments, transactions, as_of=AS_OF),
            "unit_economics": build_unit_economics(
                features,
                clv,
                as_of=AS_OF,
                customers=buyers.lazy(),
                acquisition_spend=spend.sample(fraction=1.0, shuffle=True, seed=seed).lazy(),
                cost_to_serve_per_order=1.3,
            ),
        }

    given = tables({k: v.lazy() for k, v in s.items()}, history.lazy(), customers)
    again = tables(mixed, rows, shuffled(customers, seed))
    for name in given:
        assert_same_bytes(given[name], again[name], tmp_path)


def test_unit_economics_counts_a_customer_listed_twice_once_whatever_the_order(
    snapshot: dict[str, pl.DataFrame], tmp_path: Path
) -> None:
    """A customer listed twice is acquired at the earliest date (ties: the first channel by name),
    not at whichever row comes first."""
    customers = pl.DataFrame(
        {
            "customer_id": ["C0000001", "C0000001", "C0000002", "C0000002"],
            "acquisition_channel": ["search", "email", "search", "email"],
            "acquired_at": [date(2025, 2, 3), date(2025, 1, 9), date(2025, 3, 1), date(2025, 3, 1)],
        }
    )
    spend = pl.DataFrame({"month": [date(2025, 1, 1)], "channel": ["email"], "spend": [10.0]})

    def table(rows: pl.DataFrame) -> pl.DataFrame:
        return build_unit_economics(
            snapshot["features"].lazy(),
            snapshot["clv"].lazy(),
            as_of=AS_OF,
            customers=rows.lazy(),
            acquisition_spend=spend.lazy(),
        ).collect()

    first = table(customers)
    assert first.filter(pl.col("channel") != "all").select(
        "cohort_month", "channel", "customers"
    ).rows() == [(date(2025, 1, 1), "email", 1), (date(2025, 3, 1), "email", 1)]
    assert_same_bytes(first, table(customers.reverse()), tmp_path)


# ------------------------------------------------------------------ backtest
@pytest.mark.parametrize("seed", SEEDS)
def test_backtest_tables_do_not_depend_on_row_order(
    history: pl.DataFrame, seed: int, tmp_path: Path
) -> None:
    given = run_backtest(history.lazy(), as_of=AS_OF, holdout_days=60)
    again = run_backtest(shuffled(history, seed).lazy(), as_of=AS_OF, holdout_days=60)
    assert given.deciles.height >= 20 and given.calibration.height > 10  # >= 2 of 3 models
    for name in ("metrics", "deciles", "calibration"):
        assert_same_bytes(getattr(given, name), getattr(again, name), tmp_path)


def test_decile_and_calibration_means_are_exact_in_any_order(tmp_path: Path) -> None:
    """The means of 2,000 customers in a shuffled order are the same bytes (a float mean added
    in another order differs in the last bits), and equal the float means to 1e-9."""
    rng = np.random.default_rng(7)
    n = 2000
    predicted = rng.gamma(0.6, 1.5, n)  # distinct values: a shuffle keeps every decile's members
    value = predicted * rng.gamma(2.0, 40.0, n)
    actual = rng.poisson(predicted).astype(np.float64)
    actual_value = actual * rng.gamma(2.0, 35.0, n)
    frequency = rng.poisson(2.0, n).astype(np.int64)
    deciles = _deciles("m", predicted, value, actual, actual_value, 10)
    calibration = _calibration("m", frequency, predicted, actual, 7)
    for seed in SEEDS:
        p = np.random.default_rng(seed).permutation(n)
        again = _deciles("m", predicted[p], value[p], actual[p], actual_value[p], 10)
        assert_same_bytes(deciles, again, tmp_path)
        again = _calibration("m", frequency[p], predicted[p], actual[p], 7)
        assert_same_bytes(calibration, again, tmp_path)
    for _ in range(20):  # and the same every run (no thread-order dependence)
        assert_same_bytes(
            deciles, _deciles("m", predicted, value, actual, actual_value, 10), tmp_path
        )
    order = np.argsort(-predicted, kind="stable")
    for d, members in enumerate(np.array_split(order, 10), start=1):
        row = deciles.filter(pl.col("decile") == d).row(0, named=True)
        assert row["customers"] == members.size
        assert row["predicted_purchases"] == pytest.approx(predicted[members].mean(), abs=1e-9)
        assert row["predicted_value"] == pytest.approx(value[members].mean(), abs=1e-9)
        assert row["actual_value"] == pytest.approx(actual_value[members].mean(), abs=1e-9)
