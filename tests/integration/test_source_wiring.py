"""The pipeline pulling from S3 (moto server) by config, with a look-back for late rows."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from clv_pipeline import pipeline
from clv_pipeline.config import load_config
from clv_pipeline.paths import Layout
from clv_pipeline.publish.warehouse import read_published
from clv_pipeline.runs import operations
from tests.integration.s3_server import S3, moto_endpoint, s3  # noqa: F401

DAY = date(2024, 4, 30)
HEADER = "transaction_id,customer_id,occurred_at,amount\n"


def _rows(day: date, n: int, prefix: str) -> str:
    return "".join(f"{prefix}{i},c{i % 40},{day}T1{i % 10}:00:00Z,{10 + i}.5\n" for i in range(n))


def test_s3_source_with_lookback(s3: S3, layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    s3.client.create_bucket(Bucket="shop")
    days = [DAY - timedelta(days=i) for i in range(3)]
    for day in days:
        s3.put(
            "shop", f"tx/date={day}/part-1.csv", (HEADER + _rows(day, 60, f"{day:%d}-")).encode()
        )
    for name, value in {
        "CLV_SOURCE": "s3",
        "CLV_S3_BUCKET": "shop",
        "CLV_S3_PREFIX": "tx",
        "CLV_S3_ENDPOINT_URL": s3.endpoint_url,
        "CLV_LOOKBACK_DAYS": "2",
    }.items():
        monkeypatch.setenv(name, value)
    config = load_config()
    assert pipeline.transaction_source(config).describe().startswith("s3://shop/tx")
    operations.run_partition(config, DAY)
    for day in days:
        validated = read_published(layout, "validated_transactions", day)
        assert validated is not None and validated.height == 60, day
    features = read_published(layout, "customer_features", DAY)
    assert features is not None and features["n_transactions"].sum() == 180
    # a late row for two days ago, plus a re-delivery of the whole file: counted once
    late = HEADER + _rows(days[2], 60, f"{days[2]:%d}-") + f"late-1,c1,{days[2]}T23:00:00Z,99\n"
    s3.put("shop", f"tx/date={days[2]}/part-2.csv", late.encode())
    operations.run_partition(config, DAY)
    validated = read_published(layout, "validated_transactions", days[2])
    assert validated is not None and validated.height == 61
    features = read_published(layout, "customer_features", DAY)
    assert features is not None and features["n_transactions"].sum() == 181
    raw = read_published(layout, "raw_transactions", days[2])
    assert raw is not None and set(raw["_source_file"]) == {
        f"tx/date={days[2]}/part-1.csv",
        f"tx/date={days[2]}/part-2.csv",
    }
    assert pl.Series(raw["transaction_id"]).n_unique() == 61
