"""Typing, normalisation, deduplication and quarantine reasons of one partition day."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from clv_pipeline.schema import QUARANTINE_TRANSACTIONS, VALIDATED_TRANSACTIONS
from clv_pipeline.validation.rules import ValidationRules
from clv_pipeline.validation.transactions import PARSE_REASONS, DayResult, validate_day
from tests.conftest import raw_frame, tx

DAY = date(2024, 3, 10)


NOW = datetime(2024, 3, 12, tzinfo=UTC)


def _validate(rows: list[dict[str, object]], **kw: Any) -> DayResult:
    return validate_day(raw_frame(rows), day=DAY, rules=ValidationRules(**kw), now=NOW)


def test_clean_rows_are_typed_and_normalised() -> None:
    result = _validate(
        [
            tx(
                "2024-03-10",
                " c1 ",
                12.5,
                " t1 ",
                currency="usd",
                quantity="2",
                status="Completed",
                channel=" web ",
                product_category="home",
            ),
            tx("2024-03-10", "c1", -2.5, "t2"),
            tx("2024-03-10", "c2", 3, "t3", status="CANCELLED"),
            tx("2024-03-10", "c2", 0, "t4"),
        ]
    )
    assert result.quarantine.is_empty()
    assert result.clean.schema == VALIDATED_TRANSACTIONS.schema
    first = result.clean.row(0, named=True)
    assert first["transaction_id"] == "t1" and first["customer_id"] == "c1"
    assert first["occurred_at"] == datetime(2024, 3, 10, 12, tzinfo=UTC)
    assert (first["currency"], first["quantity"], first["status"], first["channel"]) == (
        "USD",
        2,
        "completed",
        "web",
    )
    assert result.clean.get_column("revenue_kind").to_list() == [
        "purchase",
        "refund",
        "ignored",
        "purchase",  # a zero-amount order is a purchase (CLV_ZERO_AMOUNT=purchase)
    ]


def test_zero_amount_orders_can_be_ignored() -> None:
    rows = [tx("2024-03-10", "c2", 0, "t4"), tx("2024-03-10", "c2", 5, "t5")]
    kinds = lambda **kw: _validate(rows, **kw).clean.get_column("revenue_kind").to_list()  # noqa: E731
    assert kinds() == ["purchase", "purchase"]
    assert kinds(zero_amount="ignore") == ["ignored", "purchase"]


def test_timestamps_with_offsets_naive_zone_and_dates() -> None:
    rows = [
        {
            "transaction_id": "a",
            "customer_id": "c",
            "occurred_at": "2024-03-10T23:30:00-01:00",
            "amount": "1",
        },
        {
            "transaction_id": "b",
            "customer_id": "c",
            "occurred_at": "2024-03-10 08:00:00",
            "amount": "1",
        },
        {"transaction_id": "c", "customer_id": "c", "occurred_at": "2024-03-10", "amount": "1"},
    ]
    # 23:30-01:00 is 00:30 UTC on the 11th: outside the UTC day, inside it in America/Sao_Paulo (-03)
    utc = _validate(rows)
    assert utc.clean.get_column("transaction_id").to_list() == ["b", "c"]
    assert "not on the partition day" in utc.quarantine.get_column("reason")[0]
    local = _validate(rows, timezone="America/Sao_Paulo", naive_timezone="America/Sao_Paulo")
    assert local.clean.height == 3
    b = local.clean.filter(pl.col("transaction_id") == "b").row(0, named=True)
    assert b["occurred_at"] == datetime(2024, 3, 10, 11, tzinfo=UTC)


def test_every_reason_is_reported() -> None:
    result = _validate(
        [
            tx("2024-03-10", "c1", 1, ""),
            tx("2024-03-10", "", 1, "t2"),
            {"transaction_id": "t3", "customer_id": "c", "occurred_at": "yesterday", "amount": "1"},
            {"transaction_id": "t4", "customer_id": "c", "occurred_at": None, "amount": "1"},
            tx("2024-03-10", "c1", "1,5", "t5"),
            tx("2024-03-10", "c1", "nan", "t6"),
            tx("2024-03-10", "c1", "inf", "t7", quantity="2.5"),
            tx("2024-03-10", "c1", None, "t8"),
        ]
    )
    assert result.clean.is_empty()
    assert result.quarantine.schema == QUARANTINE_TRANSACTIONS.schema
    reasons = dict(zip(result.quarantine["_source_row"], result.quarantine["reason"], strict=True))
    assert reasons == {
        0: "transaction_id missing",
        1: "customer_id missing",
        2: PARSE_REASONS["occurred_at"],
        3: "occurred_at missing or not an ISO-8601 timestamp or date",
        4: "amount not a number",
        5: "amount missing or not a number",
        6: "quantity not an integer; amount not finite or outside [-1e+06, 1e+06]",
        7: "amount missing or not a number",
    }
    assert result.quarantine.get_column("amount")[4] == "1,5"  # original value kept


def test_redelivered_rows_dropped_conflicts_quarantined() -> None:
    """Exact copies are re-deliveries (one kept); different values under one id are all rejected."""
    rows = [
        tx("2024-03-10", "c1", 5, "t1"),
        tx("2024-03-10", "c1", 5, "t1"),
        tx("2024-03-10", "c1", 6, "t1"),
    ]
    result = _validate(rows)
    assert result.clean.is_empty()
    assert result.stats["duplicates_dropped"] == 1
    reason = "duplicate transaction_id with different values on the same day"
    assert result.quarantine.get_column("reason").to_list() == [reason, reason]
    assert result.reasons() == {reason: 2}


def test_ids_delivered_on_an_earlier_day_are_rejected() -> None:
    earlier = pl.LazyFrame(
        {"transaction_id": ["t1", "t9"], "event_date": [date(2024, 3, 9), date(2024, 3, 11)]}
    )
    rows = [tx("2024-03-10", "c1", 5, "t1"), tx("2024-03-10", "c1", 5, "t9")]
    result = validate_day(raw_frame(rows), day=DAY, now=NOW, earlier=earlier)
    assert result.clean.get_column("transaction_id").to_list() == ["t9"]
    assert result.reasons() == {"transaction_id already delivered on an earlier day": 1}


def test_a_refund_of_its_own_order_may_follow_the_order() -> None:
    """Order lines: a negative order with the id of an earlier order is its refund (refund_of);
    a positive one with that id is still a second delivery of the id."""
    earlier = pl.LazyFrame({"transaction_id": ["o1", "o2"], "event_date": [date(2024, 3, 9)] * 2})
    rows = [
        tx("2024-03-10", "c1", -5, "o1", refund_of="o1"),
        tx("2024-03-10", "c1", 5, "o2", refund_of="o2"),
    ]
    result = validate_day(raw_frame(rows), day=DAY, now=NOW, earlier=earlier)
    clean = result.clean.select("transaction_id", "revenue_kind", "refund_of").rows()
    assert clean == [("o1", "refund", "o1")]
    assert result.reasons() == {"transaction_id already delivered on an earlier day": 1}


def test_bounds_currency_status_and_future() -> None:
    rows = [
        tx("2024-03-10", "c1", 2_000_000, "t1"),
        tx("2024-03-10", "c1", 5, "t2", currency="EUR"),
        tx("2024-03-10", "c1", 5, "t3", currency="dollars"),
        tx("2024-03-10", "c1", 5, "t4", status="teleported"),
        tx("2024-03-10", "c1", 5, "t5", currency="USD", status="Paid"),
    ]
    result = validate_day(
        raw_frame(rows),
        day=DAY,
        rules=ValidationRules(currencies=("USD",)),
        now=datetime(2024, 3, 10, 11, tzinfo=UTC),  # every row (12:00) is in the future
    )
    reasons = dict(
        zip(result.quarantine["transaction_id"], result.quarantine["reason"], strict=True)
    )
    future = "occurred_at in the future"
    assert reasons == {
        "t1": f"{future}; amount not finite or outside [-1e+06, 1e+06]",
        "t2": f"{future}; currency not one of USD",
        "t3": f"{future}; currency not one of USD",
        "t4": f"{future}; status not a known value",
        "t5": future,
    }


def test_validation_is_deterministic() -> None:
    rows = [tx("2024-03-10", f"c{i % 5}", i % 5, f"t{i % 5}") for i in range(20)]
    first, second = _validate(rows), _validate(list(reversed(rows)))
    assert first.clean.height == 5 and first.stats["duplicates_dropped"] == 15
    assert (
        first.clean.drop("_source_file")
        .sort("transaction_id")
        .equals(second.clean.drop("_source_file").sort("transaction_id"))
    )
