"""Transactions: the input contract, and the raw, validated and quarantined rows of a day."""

from __future__ import annotations

import polars as pl

from clv_pipeline.schema.contract import UTC_TS, Column, Table

REQUIRED_INPUT = ("transaction_id", "customer_id", "occurred_at", "amount")
OPTIONAL_INPUT = ("currency", "quantity", "status", "channel", "product_category", "refund_of")
INPUT_COLUMNS: tuple[Column, ...] = (
    Column("transaction_id", pl.String(), "Unique id of the transaction (string)."),
    Column("customer_id", pl.String(), "Customer id (string)."),
    Column(
        "occurred_at",
        pl.String(),
        "ISO-8601 timestamp or date, or a parquet timestamp. Naive values are read in "
        "`naive_timezone` (default UTC).",
    ),
    Column("amount", pl.String(), "Order value; negative = refund.", unit="currency units"),
    Column("currency", pl.String(), "ISO-4217 code (optional).", nullable=True),
    Column("quantity", pl.String(), "Items in the order (optional, integer).", nullable=True),
    Column(
        "status", pl.String(), "Order status (optional), e.g. completed, cancelled.", nullable=True
    ),
    Column("channel", pl.String(), "Sales / acquisition channel (optional).", nullable=True),
    Column("product_category", pl.String(), "Product category (optional).", nullable=True),
    Column(
        "refund_of",
        pl.String(),
        "For a refund: the transaction_id of the purchase it refunds (optional; set for a "
        "negative order of an order-line export, whose own order id it names).",
        nullable=True,
    ),
)

_SOURCE = (
    Column("_source_file", pl.String(), "Landing file the row came from."),
    Column("_source_row", pl.Int64(), "0-based row number in that file (an order's first line)."),
    Column(
        "_row_digest",
        pl.UInt64(),
        "Hash of every delivered column of the row (of every line of an order): only rows "
        "identical in all delivered columns are dropped as re-deliveries.",
        nullable=True,
    ),
)
_AS_DELIVERED = tuple(
    Column(c.name, pl.String(), c.description, c.unit, True) for c in INPUT_COLUMNS
)

RAW_TRANSACTIONS = Table(
    "raw_transactions",
    "date",
    "The day's rows as delivered (after column renames), every value as a string.",
    _AS_DELIVERED + _SOURCE,
)

VALIDATED_TRANSACTIONS = Table(
    "validated_transactions",
    "date",
    "Typed, normalised rows of one event date, unique on transaction_id.",
    (
        Column("transaction_id", pl.String(), "Unique id, trimmed."),
        Column("customer_id", pl.String(), "Customer id, trimmed."),
        Column("occurred_at", UTC_TS, "Event time in UTC."),
        Column("event_date", pl.Date(), "Calendar date of occurred_at in the pipeline timezone."),
        Column("amount", pl.Float64(), "Order value; negative = refund.", "currency units"),
        Column(
            "revenue_kind",
            pl.String(),
            "purchase (amount > 0, or = 0 with CLV_ZERO_AMOUNT=purchase, the default), refund "
            "(amount < 0) or ignored (a non-revenue status such as cancelled, or a zero amount "
            "with CLV_ZERO_AMOUNT=ignore).",
        ),
        Column("currency", pl.String(), "Upper-case currency code.", nullable=True),
        Column("quantity", pl.Int64(), "Items in the order.", nullable=True),
        Column("status", pl.String(), "Lower-case status.", nullable=True),
        Column("channel", pl.String(), "Channel, trimmed.", nullable=True),
        Column("product_category", pl.String(), "Product category, trimmed.", nullable=True),
        Column(
            "refund_of",
            pl.String(),
            "For a refund: the transaction_id of the purchase it refunds, when known. A purchase "
            "whose tied refunds cover its amount counts as cancelled in every snapshot.",
            nullable=True,
        ),
        _SOURCE[0],
    ),
)

QUARANTINE_TRANSACTIONS = Table(
    "quarantine_transactions",
    "date",
    "Rejected input rows with the original values and the reason (under quarantine/transactions/).",
    _AS_DELIVERED + _SOURCE + (Column("reason", pl.String(), "Why the row was rejected."),),
)
