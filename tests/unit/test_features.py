"""Every feature column on hand-computed histories (same-day purchases, single purchase, refunds)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from clv_pipeline.features import compute_features
from clv_pipeline.schema import CUSTOMER_FEATURES


def _tx(rows: list[tuple[str, str, float, str]]) -> pl.LazyFrame:
    """(customer, 'YYYY-MM-DD HH', amount, kind) -> validated-like frame."""
    stamps = [datetime.strptime(r[1], "%Y-%m-%d %H").replace(tzinfo=UTC) for r in rows]
    return pl.LazyFrame(
        {
            "customer_id": [r[0] for r in rows],
            "occurred_at": stamps,
            "event_date": [s.date() for s in stamps],
            "amount": [r[2] for r in rows],
            "revenue_kind": [r[3] for r in rows],
        },
        schema_overrides={"occurred_at": pl.Datetime("us", "UTC")},
    )


HISTORY = _tx(
    [
        # a: two orders on day 1 (one purchase-day), one on day 5, refund on day 6, order on day 11
        ("a", "2024-01-01 09", 10.0, "purchase"),
        ("a", "2024-01-01 18", 5.0, "purchase"),
        ("a", "2024-01-05 10", 20.0, "purchase"),
        ("a", "2024-01-06 10", -4.0, "refund"),
        ("a", "2024-01-11 10", 30.0, "purchase"),
        # b: single purchase
        ("b", "2024-01-03 00", 7.0, "purchase"),
        # c: only a refund and a cancelled order -> no row
        ("c", "2024-01-03 00", -3.0, "refund"),
        ("c", "2024-01-04 00", 9.0, "ignored"),
        # d: purchase after as_of must be ignored entirely
        ("d", "2024-01-21 00", 50.0, "purchase"),
    ]
)


def test_features_hand_computed() -> None:
    got = compute_features(HISTORY, as_of=date(2024, 1, 20)).collect()
    utc = lambda s: datetime.strptime(s, "%Y-%m-%d %H").replace(tzinfo=UTC)  # noqa: E731
    expected = pl.DataFrame(
        {
            "customer_id": ["a", "b"],
            "as_of": [date(2024, 1, 20)] * 2,
            "first_purchase_at": [utc("2024-01-01 09"), utc("2024-01-03 00")],
            "last_purchase_at": [utc("2024-01-11 10"), utc("2024-01-03 00")],
            "n_transactions": [4, 1],
            "n_purchase_days": [3, 1],
            "frequency": [2, 0],
            "recency": [10, 0],
            "T": [19, 17],
            "days_since_last_purchase": [9, 17],
            "monetary_value": [(20.0 + 30.0) / 2, 0.0],
            "gross_revenue": [65.0, 7.0],
            "refund_amount": [4.0, 0.0],
            "n_refunds": [1, 0],
            "total_revenue": [61.0, 7.0],
            "aov": [65.0 / 4, 7.0],
            "avg_days_between_purchases": [5.0, None],
        },
        schema=CUSTOMER_FEATURES.schema,
    )
    assert_frame_equal(got, expected)


def test_as_of_excludes_later_rows_and_counts_same_day_once() -> None:
    got = compute_features(HISTORY, as_of=date(2024, 1, 5)).collect()
    a = got.filter(pl.col("customer_id") == "a").row(0, named=True)
    assert a["n_purchase_days"] == 2 and a["frequency"] == 1 and a["recency"] == 4
    assert a["monetary_value"] == 20.0 and a["refund_amount"] == 0.0 and a["T"] == 4
    assert got.get_column("customer_id").to_list() == ["a", "b"]


def test_first_purchase_on_as_of_gives_zero_age() -> None:
    got = compute_features(HISTORY, as_of=date(2024, 1, 3)).collect()
    b = got.filter(pl.col("customer_id") == "b").row(0, named=True)
    assert (b["T"], b["recency"], b["frequency"], b["monetary_value"]) == (0, 0, 0, 0.0)


@pytest.mark.parametrize("as_of", [date(2023, 12, 31), date(2024, 1, 1)])
def test_empty_and_first_day(as_of: date) -> None:
    got = compute_features(HISTORY, as_of=as_of).collect()
    assert got.schema == CUSTOMER_FEATURES.schema
    assert got.height == (0 if as_of.day == 31 else 1)
