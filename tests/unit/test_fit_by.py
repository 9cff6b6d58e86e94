"""Per-group fits (``models.fit_by``): each large enough group gets its own fit, the rest pool."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from clv_pipeline.models.diagnostics import GROUP_FIT_CHECK, SELECTION_CHECK
from clv_pipeline.models.simulate import (
    simulate_beta_geometric,
    simulate_pareto_nbd,
    simulate_spend,
)
from clv_pipeline.publish.audit import audit_table
from clv_pipeline.schema import CUSTOMER_CLV, CUSTOMER_FEATURES, MODEL_DIAGNOSTICS, MODEL_PARAMS
from clv_pipeline.valuation import (
    describe_fit,
    fit_groups,
    fit_rows,
    group_labels,
    selected_purchase_model,
    value_customers,
    value_customers_by_group,
)

AS_OF = date(2024, 6, 30)
OPTIONS = {"model_options": {"models": ("bgnbd",), "selection": "bic"}}
GG = {"p": 6.0, "q": 4.0, "v": 15.0}
# two channels that buy and drop out very differently, and one too small to fit
TRUTH = {
    "store": {"r": 2.0, "alpha": 40.0, "a": 0.6, "b": 6.0},
    "web": {"r": 0.4, "alpha": 60.0, "a": 1.2, "b": 2.0},
}


def _group(name: str, params: dict[str, float], n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    T = rng.integers(30, 700, size=n).astype(np.float64)
    if "s" in params:
        x, tx = simulate_pareto_nbd(params, T, seed=rng)
    else:
        x, tx = simulate_beta_geometric(params, T, seed=rng)
    spend = simulate_spend(GG, x, seed=rng)
    return pl.DataFrame(
        {
            "customer_id": [f"{name}-{i:05d}" for i in range(n)],
            "frequency": x.astype(np.int64),
            "recency": np.floor(tx).astype(np.int64),
            "T": T.astype(np.int64),
            "monetary_value": spend,
            "group": [name] * n,
        }
    )


def _features(frame: pl.DataFrame) -> pl.DataFrame:
    return (
        frame.with_columns(
            pl.lit(AS_OF).alias("as_of"),
            (pl.col("frequency") + 1).alias("n_transactions"),
            (pl.col("frequency") + 1).alias("n_purchase_days"),
            pl.when(pl.col("frequency") > 0)
            .then(pl.col("monetary_value"))
            .otherwise(25.0)
            .alias("aov"),
            (pl.col("T") - pl.col("recency")).alias("days_since_last_purchase"),
            pl.lit(0.0).alias("refund_amount"),
            pl.lit(0).cast(pl.Int64).alias("n_refunds"),
            pl.lit(None, pl.Datetime("us", "UTC")).alias("first_purchase_at"),
            pl.lit(None, pl.Datetime("us", "UTC")).alias("last_purchase_at"),
            pl.lit(None, pl.Float64).alias("avg_days_between_purchases"),
        )
        .with_columns(
            (pl.col("aov") * pl.col("n_transactions")).alias("gross_revenue"),
            (pl.col("aov") * pl.col("n_transactions")).alias("total_revenue"),
        )
        .sort("customer_id")
        .select(CUSTOMER_FEATURES.names)
    )


@pytest.fixture(scope="module")
def customers() -> pl.DataFrame:
    return pl.concat(
        [
            _group("store", TRUTH["store"], 4000, 1),
            _group("web", TRUTH["web"], 4000, 2),
            _group("tiny", TRUTH["web"], 60, 3),
        ]
    ).sort("customer_id")


@pytest.fixture(scope="module")
def grouped(customers: pl.DataFrame):  # type: ignore[no-untyped-def]
    return value_customers_by_group(
        _features(customers),
        customers.select("customer_id", "group"),
        as_of=AS_OF,
        min_repeat_customers=100,
        attribute="channel",
        **OPTIONS,
    )


def test_each_large_group_recovers_its_own_parameters(grouped) -> None:  # type: ignore[no-untyped-def]
    params = grouped.params
    assert fit_groups(params) == ["store", "web"]  # tiny is pooled: no fit of its own
    for name, truth in TRUTH.items():
        rows = fit_rows(params, name).filter(pl.col("model") == "bgnbd")
        fitted = dict(zip(rows["param"], rows["value"], strict=True))
        # r / alpha (purchase rate) within 15% of the truth: the groups differ by 7x
        assert fitted["r"] / fitted["alpha"] == pytest.approx(truth["r"] / truth["alpha"], rel=0.15)
        assert rows["n_customers"][0] == 4000
    # the population fit is in the same table, over every customer
    everyone = fit_rows(params).filter(pl.col("model") == "bgnbd")
    assert everyone["n_customers"][0] == 8060
    assert selected_purchase_model(params) == "bgnbd"
    assert selected_purchase_model(params, "web") == "bgnbd"


def test_customers_take_their_group_fit_or_the_pooled_one(customers, grouped) -> None:  # type: ignore[no-untyped-def]
    clv = grouped.clv
    assert clv.schema == CUSTOMER_CLV.schema
    assert clv["customer_id"].to_list() == customers["customer_id"].to_list()
    expected = customers.select(
        pl.when(pl.col("group") == "tiny").then(pl.lit("all")).otherwise("group")
    ).to_series()
    assert clv["fit_group"].to_list() == expected.to_list()
    # a group's predictions are exactly what a fit on that group alone gives
    web = customers.filter(pl.col("group") == "web")
    alone = value_customers(_features(web), as_of=AS_OF, **OPTIONS).clv
    ours = clv.filter(pl.col("fit_group") == "web")
    for column in ("p_alive", "expected_purchases", "predicted_clv", "total_clv"):
        np.testing.assert_array_equal(ours[column].to_numpy(), alone[column].to_numpy())
    # pooled customers keep the population fit; the seed formula stays population-wide
    everyone = value_customers(_features(customers), as_of=AS_OF, **OPTIONS).clv
    tiny = clv.filter(pl.col("fit_group") == "all")
    base = everyone.join(tiny.select("customer_id"), on="customer_id", how="semi")
    np.testing.assert_array_equal(tiny["p_alive"].to_numpy(), base["p_alive"].to_numpy())
    np.testing.assert_array_equal(clv["formula_clv"].to_numpy(), everyone["formula_clv"].to_numpy())
    # and the groups really differ: web customers are far less likely to be alive here
    means = clv.group_by("fit_group").agg(pl.col("expected_purchases").mean())
    by_group = dict(means.iter_rows())
    assert by_group["store"] > 3 * by_group["web"]


def test_group_rows_say_which_fit_values_each_group(grouped) -> None:  # type: ignore[no-untyped-def]
    checks = grouped.diagnostics
    assert checks.schema == MODEL_DIAGNOSTICS.schema
    rows = {r["fit_group"]: r for r in checks.filter(pl.col("check") == GROUP_FIT_CHECK).to_dicts()}
    assert set(rows) == {"store", "tiny", "web"}
    assert rows["store"]["status"] == "ok" and "fitted on its own" in rows["store"]["message"]
    assert rows["tiny"]["status"] == "ok"  # pooled by design, nothing to fix
    assert "channel = 'tiny'" in rows["tiny"]["message"]
    assert "valued with the fit over all customers" in rows["tiny"]["message"]
    assert rows["tiny"]["value"] < rows["tiny"]["threshold"] == 100
    # every fit has its own checks and selection row; the audits accept the tables
    selection = checks.filter(pl.col("check") == SELECTION_CHECK)
    assert sorted(selection["fit_group"].to_list()) == ["all", "store", "web"]
    for frame, table in ((checks, MODEL_DIAGNOSTICS), (grouped.params, MODEL_PARAMS)):
        failures = {k: v for k, v in audit_table(frame, table, day=AS_OF).items() if v}
        assert failures == {}


def test_audit_catches_a_fit_without_selection_row(grouped) -> None:  # type: ignore[no-untyped-def]
    broken = grouped.diagnostics.filter(
        ~((pl.col("check") == SELECTION_CHECK) & (pl.col("fit_group") == "web"))
    )
    failures = audit_table(broken, MODEL_DIAGNOSTICS, day=AS_OF)
    assert any("fit_group web" in f for f in failures["one_selection_row"])


def test_summary_per_group(customers, grouped) -> None:  # type: ignore[no-untyped-def]
    features = _features(customers)
    kwargs = {
        "horizon_days": 365.0,
        "gross_margin": 1.0,
        "discount_rate": 0.1,
        "discount_period": "annual",
    }
    store_ids = customers.filter(pl.col("group") == "store").select("customer_id")
    store = describe_fit(
        grouped.params,
        features.join(store_ids, on="customer_id", how="semi"),
        fit_group="store",
        **kwargs,
    )
    web_ids = customers.filter(pl.col("group") == "web").select("customer_id")
    web = describe_fit(
        grouped.params,
        features.join(web_ids, on="customer_id", how="semi"),
        fit_group="web",
        **kwargs,
    )
    assert store is not None and web is not None
    assert store.new_customer_clv is not None and web.new_customer_clv is not None
    assert store.new_customer_clv > 2 * web.new_customer_clv
    assert describe_fit(grouped.params, features, fit_group="tiny", **kwargs) is None


def test_group_labels() -> None:
    features = pl.DataFrame({"customer_id": ["a", "b", "c", "d"]})
    groups = pl.DataFrame(
        {"customer_id": ["a", "b", "b", "c"], "group": [" web ", "all", "store", ""]}
    )
    labels = group_labels(groups, features)
    assert labels.rows() == [("a", "web"), ("b", "group:all"), ("c", "unknown"), ("d", "unknown")]


def test_group_whose_fit_is_not_trusted_is_pooled_with_a_warning() -> None:
    # "loyal" customers essentially never drop out: the group's own dropout collapses
    loyal = {"r": 1.0, "alpha": 50.0, "s": 0.001, "beta": 1e6}
    customers = pl.concat(
        [_group("store", TRUTH["store"], 3000, 4), _group("loyal", loyal, 1500, 5)]
    ).sort("customer_id")
    result = value_customers_by_group(
        _features(customers),
        customers.select("customer_id", "group"),
        as_of=AS_OF,
        min_repeat_customers=100,
        attribute="programme",
        **OPTIONS,
    )
    row = result.diagnostics.filter(
        (pl.col("check") == GROUP_FIT_CHECK) & (pl.col("fit_group") == "loyal")
    ).row(0, named=True)
    assert row["status"] == "warn"
    assert "did not pass its diagnostics" in row["message"] and "dropout" in row["message"]
    assert "loyal" in fit_groups(result.params)  # its fit is published for inspection ...
    loyal_clv = result.clv.filter(pl.col("customer_id").str.starts_with("loyal"))
    assert loyal_clv["fit_group"].unique().to_list() == ["all"]  # ... but values nobody
