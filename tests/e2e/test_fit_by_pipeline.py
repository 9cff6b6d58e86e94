"""``CLV_FIT_BY`` through the pipeline: groups read from the customers files, per-group fits in
the published tables, per-channel new-customer CLV in unit_economics, the report's table."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from clv_pipeline import pipeline
from clv_pipeline.config import ClvConfig, load_config
from clv_pipeline.errors import InputError
from clv_pipeline.paths import Layout
from clv_pipeline.publish.warehouse import read_published
from clv_pipeline.schema import TABLES
from tests.conftest import build_through_features, land_demo_history

END = date(2024, 8, 31)
DAYS = 240


@pytest.fixture
def home_with_channels(
    layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ClvConfig:
    history = land_demo_history(layout, tmp_path, n_customers=1500, days=DAYS, end=END, seed=8)
    first = (
        history.filter(pl.col("amount") > 0)
        .group_by("customer_id")
        .agg(pl.col("occurred_at").min().dt.date().alias("acquired_at"), pl.col("channel").first())
        .sort("customer_id")
        .with_columns(
            # a channel too small for a fit of its own, and a customer without one
            pl.when(pl.int_range(pl.len()) < 12)
            .then(pl.lit("partner"))
            .when(pl.int_range(pl.len()) == 12)
            .then(pl.lit(None))
            .otherwise(pl.col("channel"))
            .alias("acquisition_channel")
        )
        .drop("channel")
    )
    folder = layout.landing.parent / "customers"
    folder.mkdir(parents=True)
    first.write_csv(folder / "crm.csv")
    spend = layout.landing.parent / "acquisition_spend"
    spend.mkdir(parents=True)
    spend.joinpath("spend.csv").write_text(
        "month,channel,spend\n"
        + "".join(f"2024-{m:02d},{ch},{900 + 50 * m}\n" for m in range(1, 9) for ch in ("web",))
    )
    monkeypatch.setenv("CLV_FIT_BY", "acquisition_channel")
    monkeypatch.setenv("CLV_FIT_BY_MIN_REPEAT_CUSTOMERS", "60")
    monkeypatch.setenv("CLV_MODELS", "bgnbd")
    config = load_config(layout.home)
    build_through_features(config, END, DAYS)
    return config


def test_groups_fitted_published_and_shown(home_with_channels: ClvConfig) -> None:
    config = home_with_channels
    result, valuation = pipeline.build_customer_clv(config, END)
    layout = config.layout
    clv = read_published(layout, "customer_clv", END)
    params = read_published(layout, "model_params", END)
    checks = read_published(layout, "model_diagnostics", END)
    assert clv is not None and params is not None and checks is not None
    for name, frame in (("customer_clv", clv), ("model_params", params)):
        assert frame.schema == TABLES[name].schema
    groups = dict(clv.group_by("fit_group").len().iter_rows())
    # web, app and store have their own fits; partner (12) and the one without a channel pool
    assert set(groups) == {"all", "app", "store", "web"}
    assert groups["all"] == 13
    assert sorted(params["fit_group"].unique().to_list()) == ["all", "app", "store", "web"]
    status = {
        r["fit_group"]: r["status"]
        for r in checks.filter(pl.col("check") == "group_fit").iter_rows(named=True)
    }
    assert status == {"app": "ok", "partner": "ok", "store": "ok", "unknown": "ok", "web": "ok"}
    assert "fit_groups" in result.stats and "partner" in result.stats["fit_groups"]

    summaries = pipeline.group_summaries(config, END)
    assert sorted(summaries) == ["app", "store", "web"]
    # CAC of web is compared with web's own new-customer CLV, not the population's
    pipeline.build_unit_economics(config, END)
    economics = read_published(layout, "unit_economics", END)
    assert economics is not None and economics.height
    web = economics.filter(pl.col("channel") == "web")["new_customer_clv"].unique().to_list()
    assert web == [pytest.approx(summaries["web"].new_customer_clv)]
    population = pipeline.model_summary(config, END)
    assert population is not None
    overall = economics.filter(pl.col("channel") == "all")["new_customer_clv"].unique()
    assert overall.to_list() == [pytest.approx(population.new_customer_clv)]
    assert summaries["web"].new_customer_clv != population.new_customer_clv

    report = pipeline.build_report(config, END)
    page = report.path.read_text()
    assert 'id="table-group-fits"' in page and 'id="group-fits-pooled"' in page
    assert "2 group(s) with fewer than 60 repeat customers" in page


def test_unknown_attribute_names_the_file_and_the_fix(
    home_with_channels: ClvConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLV_FIT_BY", "loyalty_tier")
    config = load_config(home_with_channels.layout.home)
    with pytest.raises(InputError) as error:
        pipeline.build_customer_clv(config, END)
    message = str(error.value)
    assert "crm.csv" in message and "loyalty_tier" in message
    assert "customer_id, acquired_at, acquisition_channel" in message  # what the file has
    assert "first_channel" in message


def test_first_channel_needs_no_customers_file(
    home_with_channels: ClvConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLV_FIT_BY", "first_channel")
    config = load_config(home_with_channels.layout.home)
    groups = pipeline.customer_groups(config, END, "first_channel")
    assert set(groups["group"].unique()) == {"web", "app", "store"}
    assert groups["customer_id"].n_unique() == groups.height


def test_report_reads_only_the_columns_it_shows(
    home_with_channels: ClvConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report step reads ``REPORT_COLUMNS`` / ``DESCRIBE_COLUMNS`` of the per-customer
    tables; the page is the same bytes as one rendered from the whole tables (a column the page
    uses but the lists lack would change a chart, a card or a table)."""
    config = home_with_channels
    pipeline.build_customer_clv(config, END)
    for step in (
        pipeline.build_customer_segments,
        pipeline.build_customer_churn,
        pipeline.build_cohorts,
        pipeline.build_unit_economics,
        pipeline.build_kpis,
        pipeline.build_model_backtest,
    ):
        step(config, END)
    pruned = pipeline.build_report(
        config, END, self_contained=True, output=tmp_path / "pruned.html"
    ).path.read_bytes()
    read_columns: list[tuple[str, tuple[str, ...]]] = []

    def whole(layout: Layout, name: str, day: date, columns: object = None) -> object:
        if columns is not None:
            read_columns.append((name, tuple(columns)))  # type: ignore[arg-type]
        return read_published(layout, name, day)

    monkeypatch.setattr(pipeline, "read_published", whole)
    full = pipeline.build_report(
        config, END, self_contained=True, output=tmp_path / "full.html"
    ).path.read_bytes()
    assert {name for name, _ in read_columns} >= {
        "customer_clv",
        "customer_segments",
        "customer_churn",
        "customer_features",
    }
    assert b'id="table-group-fits"' in pruned and b"Value at risk" in pruned
    assert pruned == full
