"""Backtest metrics on hand-built cases, both baselines by hand, the lift against the best
baseline, data-sufficiency flags, and the models against the baselines on simulated BG/NBD
customers."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from clv_pipeline.demo import generate_history
from clv_pipeline.report.backtest import (
    BASELINE_RATE,
    BASELINE_ZERO,
    auc,
    backtest_lift,
    baseline_predictions,
    mae,
    normalized_gini,
    rmse,
    run_backtest,
    spearman,
    with_lift,
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
    purchases, value = baseline_predictions(
        [2, 0, 3], [30, 0, 60], [60.0, 50.0, 100.0], [3, 1, 4], holdout_days=10
    )
    np.testing.assert_allclose(purchases, [2 / 30 * 10, 0.0, 3 / 60 * 10])
    np.testing.assert_allclose(value, [2 / 30 * 10 * 20.0, 0.0, 0.5 * 25.0])


def test_auc_is_exact_and_order_independent() -> None:
    # 2 buyers (scores 3, 1), 3 non-buyers (1, 1, 0): pairs won 3 + 3 + 0.5*2 (ties) of 6
    score = np.array([3.0, 1.0, 1.0, 1.0, 0.0])
    bought = np.array([True, True, False, False, False])
    assert auc(score, bought) == 5 / 6
    rng = np.random.default_rng(7)
    for _ in range(5):
        order = rng.permutation(score.size)
        assert auc(score[order], bought[order]) == 5 / 6


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
    assert sorted(m["model"].unique().to_list()) == [
        BASELINE_RATE,
        BASELINE_ZERO,
        "bgnbd",
        "pareto_nbd",
    ]
    assert m.height == 4 * len(BACKTEST_METRICS)
    models = m.filter(~pl.col("model").is_in([BASELINE_RATE, BASELINE_ZERO]))
    assert not models["data_sufficient"].any()
    assert models.filter(pl.col("metric") == "purchases_mae")["value"].is_null().all()
    assert models["note"].str.contains("insufficient data").all()
    assert_no_nan(m)
    # baseline_rate by hand: a = 2 repeat days / T 30 x 10 days, AOV per day 60/3; b = 0
    pa = 2 / 30 * 10
    rate = BASELINE_RATE
    assert metric(m, rate, "purchases_mae") == pytest.approx((abs(pa - 1) + 0) / 2)
    assert metric(m, rate, "purchases_rmse") == pytest.approx(math.sqrt((pa - 1) ** 2 / 2))
    assert metric(m, rate, "purchases_actual_total") == 1.0
    assert metric(m, rate, "value_actual_total") == 40.0
    assert metric(m, rate, "value_mae") == pytest.approx(abs(pa * 20 - 40) / 2)
    assert metric(m, rate, "purchases_total_error_pct") == pytest.approx(100 * (pa - 1))
    assert metric(m, rate, "purchases_spearman") == pytest.approx(1.0)
    assert metric(m, rate, "value_gini") == pytest.approx(1.0)
    # a (predicted 0.67) bought in the holdout, b (predicted 0) did not: ranked right
    assert metric(m, rate, "purchases_auc") == 1.0
    # a baseline has no P(alive): null with the reason
    assert metric(m, rate, "p_alive_auc") is None
    no_p_alive = m.filter((pl.col("model") == rate) & (pl.col("metric") == "p_alive_auc"))
    assert no_p_alive["note"][0] == "no P(alive): a baseline predicts purchases only"
    # deciles / calibration only for what could be predicted (not for the constant zero)
    assert res.deciles.schema == BACKTEST_DECILES.schema
    assert res.calibration.schema == BACKTEST_CALIBRATION.schema
    assert res.deciles["model"].unique().to_list() == [BASELINE_RATE]
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
    # undefined by construction only: no P(alive) for a baseline, no Spearman for a constant
    undefined = m.filter(pl.col("value").is_null())
    assert sorted(undefined.select("model", "metric").rows()) == [
        (BASELINE_RATE, "p_alive_auc"),
        (BASELINE_ZERO, "p_alive_auc"),
        (BASELINE_ZERO, "purchases_spearman"),
    ]
    assert_no_nan(m)
    for model in ("bgnbd", "pareto_nbd", BASELINE_RATE, BASELINE_ZERO):
        assert 0.0 <= num(m, model, "purchases_auc") <= 1.0
        assert -1.0 <= num(m, model, "value_gini") <= 1.0
    for model in ("bgnbd", "pareto_nbd"):
        assert 0.0 <= num(m, model, "p_alive_auc") <= 1.0
    # the models are calibrated on the total; the naive rate is not better than them here
    for model in ("bgnbd", "pareto_nbd"):
        assert abs(num(m, model, "purchases_total_error_pct")) < 30
        assert num(m, model, "purchases_mae") < num(m, BASELINE_RATE, "purchases_mae")
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
    auc_row = lift.filter((pl.col("model") == "bgnbd") & (pl.col("metric") == "purchases_auc"))
    assert auc_row["lift"][0] == pytest.approx(auc_row["value"][0] - auc_row["baseline"][0])
    totals = lift.filter(pl.col("metric") == "purchases_actual_total")
    assert totals["lift"].is_null().all()
    # the published columns say the same
    m = demo_result.metrics
    published = m.filter(pl.col("model") == "bgnbd").select(
        "metric", "best_baseline", pl.col("lift_vs_best_baseline").alias("lift")
    )
    expected_frame = lift.filter(pl.col("model") == "bgnbd").select(
        "metric", "best_baseline", "lift"
    )
    assert_frame_equal(published, expected_frame)


def test_lift_is_against_the_best_baseline_per_metric(demo_result) -> None:
    m = demo_result.metrics
    for name in ("purchases_mae", "purchases_rmse", "value_mae", "purchases_total_error_pct"):
        rate, zero = abs(num(m, BASELINE_RATE, name)), abs(num(m, BASELINE_ZERO, name))
        best, best_error = (BASELINE_RATE, rate) if rate <= zero else (BASELINE_ZERO, zero)
        rows = m.filter(pl.col("metric") == name)
        assert rows["best_baseline"].unique().to_list() == [best]
        for model in ("bgnbd", "pareto_nbd", BASELINE_RATE, BASELINE_ZERO):
            lift = rows.filter(pl.col("model") == model)["lift_vs_best_baseline"][0]
            assert lift == pytest.approx(1 - abs(num(m, model, name)) / best_error)
        assert rows.filter(pl.col("model") == best)["lift_vs_best_baseline"][0] == 0.0
    for name in ("purchases_auc", "value_gini"):
        rate, zero = num(m, BASELINE_RATE, name), num(m, BASELINE_ZERO, name)
        rows = m.filter(pl.col("metric") == name)
        assert rows["best_baseline"][0] == (BASELINE_RATE if rate >= zero else BASELINE_ZERO)
        for model in ("bgnbd", "pareto_nbd"):
            lift = rows.filter(pl.col("model") == model)["lift_vs_best_baseline"][0]
            assert lift == pytest.approx(num(m, model, name) - max(rate, zero))
    # only the rate baseline has a Spearman (the zero one is constant); no baseline a P(alive)
    spearman_rows = m.filter(pl.col("metric") == "purchases_spearman")
    assert spearman_rows["best_baseline"].unique().to_list() == [BASELINE_RATE]
    p_alive_rows = m.filter(pl.col("metric") == "p_alive_auc")
    assert p_alive_rows["best_baseline"].is_null().all()
    assert p_alive_rows["lift_vs_best_baseline"].is_null().all()
    totals = m.filter(pl.col("metric").str.ends_with("_total"))
    assert totals["best_baseline"].is_null().all()
    assert totals["lift_vs_best_baseline"].is_null().all()
    # recomputing keeps the frame as it is (row order too)
    assert_frame_equal(with_lift(m), m)


def test_zero_baseline_by_hand() -> None:
    """HAND: a bought once in the holdout for 40, b did not; baseline_zero predicts 0 and 0."""
    res = run_backtest(validated(HAND), as_of=AS_OF, holdout_days=10)
    m = res.metrics
    zero = BASELINE_ZERO
    expected = {
        "purchases_mae": (1 + 0) / 2,
        "purchases_rmse": math.sqrt((1**2 + 0**2) / 2),
        "purchases_predicted_total": 0.0,
        "purchases_actual_total": 1.0,
        "purchases_total_error_pct": -100.0,
        "purchases_spearman": None,  # constant prediction
        "purchases_auc": 0.5,  # one tie between the buyer and the non-buyer
        "value_mae": (40 + 0) / 2,
        "value_rmse": math.sqrt((40**2 + 0**2) / 2),
        "value_predicted_total": 0.0,
        "value_actual_total": 40.0,
        "value_gini": 0.0,  # no ordering
        "p_alive_auc": None,
    }
    assert list(expected) == list(BACKTEST_METRICS)
    for name, value in expected.items():
        assert metric(m, zero, name) == value, name
    rows = m.filter(pl.col("model") == zero)
    assert rows["data_sufficient"].all()
    assert rows.filter(pl.col("value").is_null())["note"].is_not_null().all()
    # against the best baseline: rate's purchase MAE (1 - 2/3) / 2 = 1/6 beats zero's 1/2
    mae_row = rows.filter(pl.col("metric") == "purchases_mae")
    assert mae_row["best_baseline"][0] == BASELINE_RATE
    assert mae_row["lift_vs_best_baseline"][0] == pytest.approx(1 - 0.5 / (1 / 6))
    auc_row = rows.filter(pl.col("metric") == "purchases_auc")
    assert auc_row["best_baseline"][0] == BASELINE_RATE
    assert auc_row["lift_vs_best_baseline"][0] == 0.5 - 1.0


def test_true_model_ranks_buyers_better_than_both_baselines(demo_result) -> None:
    """The demo history is simulated from BG/NBD (Gamma rates, geometric dropout after each
    purchase; clv_pipeline.demo), so bgnbd is the true model here."""
    m = demo_result.metrics
    true_auc = num(m, "bgnbd", "purchases_auc")
    assert true_auc > 0.5
    assert true_auc > num(m, BASELINE_RATE, "purchases_auc")
    assert true_auc > num(m, BASELINE_ZERO, "purchases_auc") == 0.5
    lift = m.filter((pl.col("model") == "bgnbd") & (pl.col("metric") == "purchases_auc"))
    assert lift["lift_vs_best_baseline"][0] > 0
    # the expectation is the best predictor in squared error, against both baselines
    for name in ("purchases_rmse", "value_rmse"):
        assert num(m, "bgnbd", name) < num(m, BASELINE_RATE, name)
        assert num(m, "bgnbd", name) < num(m, BASELINE_ZERO, name)
    # under BG/NBD a customer without a repeat purchase has P(alive) = 1, so 1 - P(alive)
    # ranks "no purchase in the holdout" worse than chance even for the true model: the reason
    # this AUC is not the headline and carries the precise name p_alive_auc
    assert num(m, "bgnbd", "p_alive_auc") < 0.5 < true_auc


def test_models_param_accepts_single_string() -> None:
    res = run_backtest(validated(HAND), as_of=AS_OF, holdout_days=10, models="bgnbd")
    assert sorted(res.metrics["model"].unique().to_list()) == [
        BASELINE_RATE,
        BASELINE_ZERO,
        "bgnbd",
    ]


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


def test_publish_audit_of_the_backtest_table(demo_result) -> None:
    from clv_pipeline.publish.audit import audit_table

    as_of = date(2025, 6, 30)
    m = demo_result.metrics
    assert all(not problems for problems in audit_table(m, MODEL_BACKTEST, day=as_of).values())
    broken = pl.concat([m.filter(pl.col("model") != BASELINE_ZERO), m.head(1)])
    found = audit_table(broken, MODEL_BACKTEST, day=as_of)
    assert found["one_row_per_model_metric"]
    assert found["both_baselines"] == [f"baseline_zero: 0 metric rows, expected {m.height // 4}"]
    bad_auc = m.with_columns(
        pl.when(pl.col("metric") == "purchases_auc").then(1.5).otherwise("value").alias("value")
    )
    assert audit_table(bad_auc, MODEL_BACKTEST, day=as_of)["auc_in_unit_interval"]
