"""Customer valuation: seed formula by hand, predictive columns and their fallbacks."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from clv_pipeline.features import compute_features
from clv_pipeline.schema import CUSTOMER_CLV, CUSTOMER_FEATURES, MODEL_PARAMS
from clv_pipeline.valuation import value_customers

AS_OF = date(2024, 6, 30)


def _features(rows: list[tuple[int, int, int, int, float]]) -> pl.DataFrame:
    """(n_transactions, frequency, recency, T, aov) -> a features frame."""
    n = len(rows)
    frame = pl.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "as_of": [AS_OF] * n,
            "n_transactions": [r[0] for r in rows],
            "n_purchase_days": [r[1] + 1 for r in rows],
            "frequency": [r[1] for r in rows],
            "recency": [r[2] for r in rows],
            "T": [r[3] for r in rows],
            "aov": [r[4] for r in rows],
        }
    ).with_columns(
        (pl.col("T") - pl.col("recency")).alias("days_since_last_purchase"),
        (pl.col("aov") * pl.col("n_transactions")).alias("gross_revenue"),
        pl.lit(0.0).alias("refund_amount"),
        pl.lit(0).cast(pl.Int64).alias("n_refunds"),
        (pl.col("aov") * pl.col("n_transactions")).alias("total_revenue"),
        pl.lit(None, pl.Datetime("us", "UTC")).alias("first_purchase_at"),
        pl.lit(None, pl.Datetime("us", "UTC")).alias("last_purchase_at"),
        pl.when(pl.col("frequency") > 0).then(pl.col("aov")).otherwise(0.0).alias("monetary_value"),
        pl.lit(None, pl.Float64).alias("avg_days_between_purchases"),
    )
    return frame.select(CUSTOMER_FEATURES.names)


def test_formula_clv_by_hand() -> None:
    features = _features(
        [(2, 1, 50, 200, 10.0), (1, 0, 0, 300, 20.0), (4, 3, 90, 100, 30.0), (1, 0, 0, 10, 40.0)]
    )
    # c0 bought in both windows, c1 only in the previous one, c2 only now (net 90 - 10 refund),
    # c3 only now: retention 1 of 2 = 0.5
    activity = pl.DataFrame(
        {
            "customer_id": ["c0", "c1", "c2", "c3"],
            "active": [True, False, True, True],
            "previously_active": [True, True, False, False],
            "window_revenue": [10.0, 0.0, 80.0, -5.0],
            "window_orders": [1, 0, 3, 1],
            "window_purchase_amount": [10.0, 0.0, 90.0, 5.0],
        }
    )
    result = value_customers(
        features,
        as_of=AS_OF,
        gross_margin=0.5,
        horizon_days=180.0,
        activity=activity,
        window_days=90,
        currency="EUR",
        model_options={"discount_rate": 0.0},
    )
    assert result.period is not None and result.period.retention == 0.5
    # undiscounted, K = 180 / 90 = 2 future windows: 0.5 + 0.25 = 0.75 of the window revenue
    clv = result.clv
    assert clv["window_revenue"].to_list() == [10.0, 0.0, 80.0, 0.0]  # refund-only net floored
    assert clv["formula_clv"].to_list() == pytest.approx([10 * 0.5 * 0.75, 0.0, 80 * 0.5 * 0.75, 0])
    assert clv["gross_margin"].unique().to_list() == [0.5]
    assert clv["currency"].unique().to_list() == ["EUR"]
    # nobody bought in the previous window: retention unknown, formula CLV null (not 0)
    unknown = value_customers(
        features,
        as_of=AS_OF,
        activity=activity.with_columns(pl.lit(False).alias("previously_active")),
        window_days=90,
    )
    assert unknown.clv["formula_clv"].null_count() == 4


def test_insufficient_data_gives_nulls_and_flag_never_nan() -> None:
    features = _features([(1, 0, 0, 30, 10.0), (2, 1, 5, 40, 12.0)])
    result = value_customers(features, as_of=AS_OF, gross_margin=0.5)
    assert not result.data_sufficient and result.selected_model is None
    assert any("repeat" in m or "customers" in m for m in result.messages)
    clv = result.clv
    assert clv.schema == CUSTOMER_CLV.schema
    assert clv.get_column("p_alive").null_count() == 2
    assert clv.get_column("historic_clv").to_list() == [5.0, 12.0]  # total revenue x margin
    for column in ("historic_clv",):
        assert clv.get_column(column).is_finite().all()


def test_predictive_columns_on_simulated_history() -> None:
    from clv_pipeline.demo import generate_history

    history = generate_history(n_customers=3000, days=365, end=AS_OF, seed=5)
    tx = history.with_columns(
        pl.col("occurred_at").dt.date().alias("event_date"),
        pl.when(pl.col("status") == "cancelled")
        .then(pl.lit("ignored"))
        .when(pl.col("amount") > 0)
        .then(pl.lit("purchase"))
        .otherwise(pl.lit("refund"))
        .alias("revenue_kind"),
    )
    features = compute_features(tx.lazy(), as_of=AS_OF).collect()
    result = value_customers(features, as_of=AS_OF, horizon_days=365.0)
    assert result.data_sufficient and result.selected_model in {"bgnbd", "pareto_nbd"}
    clv = result.clv
    assert clv.get_column("p_alive").is_between(0, 1).all()
    assert (clv["churn_probability"] + clv["p_alive"] - 1).abs().max() < 1e-12  # type: ignore[operator]
    assert (clv["total_clv"] - clv["historic_clv"] - clv["predicted_clv"]).abs().max() < 1e-9  # type: ignore[operator]
    assert clv.get_column("predicted_clv").is_finite().all()
    nxt = clv.get_column("expected_next_purchase_at").drop_nulls()
    assert len(nxt) > 0 and (nxt > AS_OF).all()
    params = result.params
    assert params.schema == MODEL_PARAMS.schema
    selected = params.filter(pl.col("selected")).get_column("model").unique().sort().to_list()
    assert selected == sorted([result.selected_model, "gamma_gamma"])
    alpha = params.filter((pl.col("model") == "bgnbd") & (pl.col("param") == "alpha"))["value"][0]
    assert 10 < alpha < 200  # days (the demo's true alpha is 40 days), not weeks
    assert np.isfinite(params.get_column("log_likelihood").to_numpy()).all()


def _demo_transactions(n_customers: int, days: int, seed: int) -> pl.DataFrame:
    from clv_pipeline.demo import generate_history

    history = generate_history(n_customers=n_customers, days=days, end=AS_OF, seed=seed)
    return history.with_columns(
        pl.col("occurred_at").dt.date().alias("event_date"),
        pl.when(pl.col("status") == "cancelled")
        .then(pl.lit("ignored"))
        .when(pl.col("amount") > 0)
        .then(pl.lit("purchase"))
        .otherwise(pl.lit("refund"))
        .alias("revenue_kind"),
    )


def test_holdout_selection_diagnostics_table_and_its_audits() -> None:
    from clv_pipeline.models.diagnostics import SELECTION_CHECK
    from clv_pipeline.publish.audit import audit_table
    from clv_pipeline.report.backtest import calibration_holdout
    from clv_pipeline.schema import MODEL_DIAGNOSTICS

    tx = _demo_transactions(3000, 365, 5)
    features = compute_features(tx.lazy(), as_of=AS_OF).collect()
    split = calibration_holdout(tx.lazy(), as_of=AS_OF, holdout_days=90).collect()
    result = value_customers(
        features,
        as_of=AS_OF,
        model_options={"selection": "holdout"},
        holdout=split,
        holdout_days=90,
    )
    assert result.data_sufficient and result.selection_reason is not None
    assert result.selection_reason.startswith("lowest holdout MAE")
    diagnostics = result.diagnostics
    assert diagnostics.schema == MODEL_DIAGNOSTICS.schema
    assert (diagnostics["as_of"] == AS_OF).all()
    assert diagnostics.filter(pl.col("status") == "fail").is_empty()
    holdout = diagnostics.filter(pl.col("check") == "holdout_error")
    assert sorted(holdout["model"]) == ["bgnbd", "pareto_nbd"]
    assert holdout["value"].is_between(0, 10).all()
    chosen = diagnostics.filter(pl.col("check") == SELECTION_CHECK)
    assert chosen["message"].to_list() == [f"{result.selected_model}: {result.selection_reason}"]
    assert all(not p for p in audit_table(diagnostics, MODEL_DIAGNOSTICS, day=AS_OF).values())
    # std errors published, null only where unknown; the reason on every row
    params = result.params
    assert params.schema == MODEL_PARAMS.schema
    assert params["std_error"].null_count() == 0 and (params["std_error"] > 0).all()
    assert params["selection_reason"].null_count() == 0
    assert all(not p for p in audit_table(params, MODEL_PARAMS, day=AS_OF).values())
    # the audits catch a status outside the set, a repeated check and a missing selection row
    broken = pl.concat(
        [
            diagnostics.with_columns(
                pl.when(pl.col("check") == "customers")
                .then(pl.lit("maybe"))
                .otherwise(pl.col("status"))
                .alias("status")
            ),
            diagnostics.head(1),
        ]
    )
    found = audit_table(broken, MODEL_DIAGNOSTICS, day=AS_OF)
    assert found["status_ok_warn_fail"] and found["one_row_per_model_check"]
    assert not found["one_selection_row"]
    unselected = diagnostics.filter(pl.col("check") != SELECTION_CHECK)
    assert audit_table(unselected, MODEL_DIAGNOSTICS, day=AS_OF)["one_selection_row"]


def test_short_history_selects_by_bic_and_says_so() -> None:
    from clv_pipeline.report.backtest import calibration_holdout

    tx = _demo_transactions(2000, 150, 6)
    features = compute_features(tx.lazy(), as_of=AS_OF).collect()
    split = calibration_holdout(tx.lazy(), as_of=AS_OF, holdout_days=90).collect()
    result = value_customers(
        features, as_of=AS_OF, model_options={"selection": "holdout"}, holdout=split
    )
    assert result.data_sufficient
    assert (result.selection_reason or "").startswith("BIC (history shorter than 2 × holdout")
    assert result.diagnostics.filter(pl.col("check") == "holdout_error").is_empty()


def test_insufficient_data_still_publishes_diagnostics() -> None:
    features = _features([(1, 0, 0, 30, 10.0), (2, 1, 5, 40, 12.0)])
    result = value_customers(features, as_of=AS_OF)
    rows = {(r["model"], r["check"]): r for r in result.diagnostics.iter_rows(named=True)}
    assert rows[("all", "customers")]["status"] == "fail"
    assert rows[("all", "repeat_customers")]["status"] == "fail"
    assert rows[("all", "selected_model")]["status"] == "fail"
    assert result.params.is_empty()
