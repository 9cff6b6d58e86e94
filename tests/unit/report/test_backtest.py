"""Backtest metrics on hand-built cases, the baseline by hand and data-sufficiency flags."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from clv_pipeline.demo import generate_history
from clv_pipeline.report.backtest import (
    BASELINE,
    auc,
    backtest_lift,
    baseline_predictions,
    mae,
    normalized_gini,
    rmse,
    run_backtest,
    spearman,
)
from clv_pipeline.schema import (
    BACKTEST_CALIBRATION,
    BACKTEST_DECILES,
    BACKTEST_METRICS,
    MODEL_BACKTEST,
)

AS_OF = date(2024, 4, 10)


def validated(rows: list[tuple[str, str, float]]) -> pl.LazyFrame:
    """Validated transactions from (customer, ISO day, amount); amount < 0 is a refund."""
    return pl.LazyFrame(
        {
            "customer_id": [r[0] for r in rows],
            "occurred_at": [
                datetime.fromisoformat(r[1]).replace(hour=12, tzinfo=UTC) for r in rows
            ],
            "event_date": [date.fromisoformat(r[1]) for r in rows],
            "amount": [float(r[2]) for r in rows],
            "revenue_kind": ["purchase" if r[2] > 0 else "refund" for r in rows],
        },
        schema_overrides={"occurred_at": pl.Datetime("us", "UTC")},
    )


def metric(frame: pl.DataFrame, model: str, name: str) -> float | None:
    hit = frame.filter((pl.col("model") == model) & (pl.col("metric") == name))
    assert hit.height == 1
    return hit["value"][0]


def num(frame: pl.DataFrame, model: str, name: str) -> float:
    value = metric(frame, model, name)
    assert value is not None, (model, name)
    return value


def assert_no_nan(frame: pl.DataFrame) -> None:
    for name, dtype in frame.schema.items():
        if dtype == pl.Float64:
            assert frame[name].is_nan().sum() == 0, name


# ------------------------------------------------------------------ metric functions
def test_perfect_predictions() -> None:
    actual = np.array([0.0, 1.0, 3.0, 2.0, 7.0])
    assert mae(actual, actual) == 0.0
    assert rmse(actual, actual) == 0.0
    assert normalized_gini(actual, actual) == pytest.approx(1.0)
    assert spearman(actual, actual) == pytest.approx(1.0)
    assert auc(actual, actual > 1.5) == 1.0


def test_known_errors_and_reversed_order() -> None:
    assert mae([1.0, 2.0], [2.0, 4.0]) == pytest.approx(1.5)
    assert rmse([1.0, 2.0], [2.0, 4.0]) == pytest.approx(math.sqrt(2.5))
    actual = np.array([1.0, 2.0, 3.0, 4.0])
    assert normalized_gini(-actual, actual) == pytest.approx(-1.0)
    assert spearman(-actual, actual) == pytest.approx(-1.0)
    assert auc(-actual, actual > 2) == 0.0


def test_ties_are_averaged() -> None:
    actual = np.array([0.0, 0.0, 5.0, 10.0])
    # constant predictions carry no ranking information
    assert normalized_gini(np.ones(4), actual) == pytest.approx(0.0)
    assert auc(np.ones(4), actual > 0) == pytest.approx(0.5)
    # half-credit for a tie between one positive and one negative
    assert auc([1.0, 1.0, 2.0], [False, True, True]) == pytest.approx(0.75)


def test_undefined_metrics_are_none_not_nan() -> None:
    assert mae([], []) is None
    assert spearman([1.0, 2.0], [3.0, 3.0]) is None
    assert normalized_gini([1.0, 2.0], [0.0, 0.0]) is None
    assert auc([0.1, 0.2], [True, True]) is None
    with pytest.raises(ValueError, match="same length"):
        mae([1.0], [1.0, 2.0])


def test_baseline_by_hand() -> None:
    purchases, value, churn = baseline_predictions(
        [2, 0, 3], [30, 0, 60], [60.0, 50.0, 100.0], [3, 1, 4], [10, 0, 5], holdout_days=10
    )
    np.testing.assert_allclose(purchases, [2 / 30 * 10, 0.0, 3 / 60 * 10])
    np.testing.assert_allclose(value, [2 / 30 * 10 * 20.0, 0.0, 0.5 * 25.0])
    np.testing.assert_allclose(churn, [10, 0, 5])


# ------------------------------------------------------------------ run_backtest
HAND = [
    ("a", "2024-03-01", 10.0),
    ("a", "2024-03-11", 20.0),
    ("a", "2024-03-21", 30.0),
    ("a", "2024-04-05", 40.0),  # holdout purchase
    ("a", "2024-04-06", -5.0),  # holdout refund: not a purchase, not holdout value
    ("b", "2024-03-31", 50.0),  # acquired on the calibration end, silent in the holdout
    ("c", "2024-04-02", 70.0),  # acquired in the holdout: not evaluated
    ("a", "2024-04-11", 99.0),  # after as_of: ignored
]


def test_insufficient_data_flags_models_and_keeps_baseline() -> None:
    res = run_backtest(validated(HAND), as_of=AS_OF, holdout_days=10)
    m = res.metrics
    assert m.schema == MODEL_BACKTEST.schema
    assert not res.data_sufficient
    assert any("insufficient data" in msg for msg in res.messages)
    assert m["calibration_end"].unique().to_list() == [date(2024, 3, 31)]
    assert m["n_customers"].unique().to_list() == [2]
    assert sorted(m["model"].unique().to_list()) == ["baseline", "bgnbd", "pareto_nbd"]
    assert m.height == 3 * len(BACKTEST_METRICS)
    models = m.filter(pl.col("model") != BASELINE)
    assert not models["data_sufficient"].any()
    assert models.filter(pl.col("metric") == "purchases_mae")["value"].is_null().all()
    assert models["note"].str.contains("insufficient data").all()
    assert_no_nan(m)
    # baseline by hand: a = 2 repeat days / T 30 x 10 days, AOV per day 60/3; b = 0
    pa = 2 / 30 * 10
    assert metric(m, BASELINE, "purchases_mae") == pytest.approx((abs(pa - 1) + 0) / 2)
    assert metric(m, BASELINE, "purchases_rmse") == pytest.approx(math.sqrt((pa - 1) ** 2 / 2))
    assert metric(m, BASELINE, "purchases_actual_total") == 1.0
    assert metric(m, BASELINE, "value_actual_total") == 40.0
    assert metric(m, BASELINE, "value_mae") == pytest.approx(abs(pa * 20 - 40) / 2)
    assert metric(m, BASELINE, "purchases_total_error_pct") == pytest.approx(100 * (pa - 1))
    assert metric(m, BASELINE, "purchases_spearman") == pytest.approx(1.0)
    assert metric(m, BASELINE, "value_gini") == pytest.approx(1.0)
    # churned = b (no holdout purchase) but b was the more recent buyer: AUC 0
    assert metric(m, BASELINE, "churn_auc") == 0.0
    # deciles / calibration only for what could be predicted
    assert res.deciles.schema == BACKTEST_DECILES.schema
    assert res.calibration.schema == BACKTEST_CALIBRATION.schema
    assert res.deciles["model"].unique().to_list() == [BASELINE]
    cal = res.calibration.sort("frequency")
    assert cal["frequency_label"].to_list() == ["0", "2"]
    assert cal["actual_purchases"].to_list() == [0.0, 1.0]


def test_no_customers() -> None:
    res = run_backtest(validated([("a", "2024-04-05", 10.0)]), as_of=AS_OF, holdout_days=10)
    assert not res.data_sufficient
    assert "no customers" in res.messages[0]
    assert res.metrics["value"].is_null().all()
    assert not res.metrics["data_sufficient"].any()
    assert res.metrics["note"].is_not_null().all()
    assert res.deciles.height == 0 and res.calibration.height == 0


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="holdout_days"):
        run_backtest(validated(HAND), as_of=AS_OF, holdout_days=0)
    with pytest.raises(ValueError, match="n_deciles"):
        run_backtest(validated(HAND), as_of=AS_OF, n_deciles=0)


@pytest.fixture(scope="module")
def demo_history() -> pl.DataFrame:
    end = date(2025, 6, 30)
    history = generate_history(n_customers=600, days=300, end=end, seed=1)
    return history.with_columns(
        pl.col("occurred_at").dt.date().alias("event_date"),
        pl.when(pl.col("amount") > 0)
        .then(pl.lit("purchase"))
        .otherwise(pl.lit("refund"))
        .alias("revenue_kind"),
    )


@pytest.fixture(scope="module")
def demo_result(demo_history: pl.DataFrame):
    return run_backtest(demo_history.lazy(), as_of=date(2025, 6, 30), holdout_days=90)


def test_sufficient_data_gives_finite_metrics(demo_result) -> None:
    m = demo_result.metrics
    assert demo_result.data_sufficient
    assert m["data_sufficient"].all()
    assert m["value"].is_not_null().all()
    assert_no_nan(m)
    for model in ("bgnbd", "pareto_nbd", BASELINE):
        assert 0.0 <= num(m, model, "churn_auc") <= 1.0
        assert -1.0 <= num(m, model, "value_gini") <= 1.0
    # the models are calibrated on the total; the naive rate is not better than them here
    for model in ("bgnbd", "pareto_nbd"):
        assert abs(num(m, model, "purchases_total_error_pct")) < 30
        assert num(m, model, "purchases_mae") < num(m, BASELINE, "purchases_mae")
    d = demo_result.deciles
    assert d.schema == BACKTEST_DECILES.schema
    assert d.group_by("model").len()["len"].to_list() == [10, 10, 10]
    n = m["n_customers"][0]
    assert d.group_by("model").agg(pl.col("customers").sum())["customers"].to_list() == [n] * 3
    top = d.filter((pl.col("model") == "pareto_nbd") & (pl.col("decile") == 1))
    bottom = d.filter((pl.col("model") == "pareto_nbd") & (pl.col("decile") == 10))
    assert top["actual_purchases"][0] > bottom["actual_purchases"][0]
    c = demo_result.calibration
    assert c.schema == BACKTEST_CALIBRATION.schema
    assert c.filter(pl.col("model") == "bgnbd")["frequency_label"].to_list()[-1] == "7+"
    assert_no_nan(d)
    assert_no_nan(c)


def test_lift_is_explicit(demo_result) -> None:
    lift = backtest_lift(demo_result.metrics)
    assert set(lift["model"].unique().to_list()) == {"bgnbd", "pareto_nbd"}
    row = lift.filter((pl.col("model") == "bgnbd") & (pl.col("metric") == "purchases_mae"))
    expected = 1 - row["value"][0] / row["baseline"][0]
    assert row["lift"][0] == pytest.approx(expected)
    assert row["better"][0] is (expected > 0)
    auc_row = lift.filter((pl.col("model") == "bgnbd") & (pl.col("metric") == "churn_auc"))
    assert auc_row["lift"][0] == pytest.approx(auc_row["value"][0] - auc_row["baseline"][0])
    totals = lift.filter(pl.col("metric") == "purchases_actual_total")
    assert totals["lift"].is_null().all()


def test_models_param_accepts_single_string() -> None:
    res = run_backtest(validated(HAND), as_of=AS_OF, holdout_days=10, models="bgnbd")
    assert sorted(res.metrics["model"].unique().to_list()) == ["baseline", "bgnbd"]


def test_calibration_end_is_as_of_minus_holdout() -> None:
    res = run_backtest(validated(HAND), as_of=AS_OF, holdout_days=20)
    assert res.metrics["calibration_end"][0] == AS_OF - timedelta(days=20)


def test_sample_share_scores_a_deterministic_subset(demo_history) -> None:
    from clv_pipeline.report.backtest import in_sample

    history = demo_history.lazy()
    as_of = date(2025, 6, 30)
    half = run_backtest(history, as_of=as_of, sample_share=0.5, models=("bgnbd",))
    again = run_backtest(history, as_of=as_of, sample_share=0.5, models=("bgnbd",))
    full = run_backtest(history, as_of=as_of, models=("bgnbd",))
    n_half = half.metrics["n_customers"].max()
    assert (
        0.4 * full.metrics["n_customers"].max() < n_half < 0.6 * full.metrics["n_customers"].max()
    )
    assert half.metrics.equals(again.metrics)
    assert any("sample" in m for m in half.messages)
    chosen = demo_history.filter(in_sample(0.5))["customer_id"].unique()
    assert chosen.len() < demo_history["customer_id"].n_unique()
    with pytest.raises(ValueError, match="sample_share"):
        run_backtest(history, as_of=as_of, sample_share=0.0)
