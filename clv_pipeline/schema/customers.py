"""Per-customer snapshot tables: the running ``customer_state`` and ``customer_features``."""

from __future__ import annotations

import polars as pl

from clv_pipeline.numeric import FIXED
from clv_pipeline.schema.contract import CUSTOMER_KEY, UTC_TS, Column, Table

MONEY = FIXED  # fixed point: sums are exact and independent of row order (numeric.py)

CUSTOMER_STATE = Table(
    "customer_state",
    "as_of",
    "Running per-customer summary of every validated row with event_date <= as_of; "
    "customer_state[D] = customer_state[D-1] merged with day D (docs/scaling.md). Money in fixed "
    "point so incremental and full recomputes are identical. One row per customer with any "
    "purchase or refund.",
    CUSTOMER_KEY
    + (
        Column("first_day", pl.Date(), "First purchase-day (null: refunds only).", nullable=True),
        Column("previous_day", pl.Date(), "Second-latest purchase-day (null: < 2).", nullable=True),
        Column("last_day", pl.Date(), "Latest purchase-day.", nullable=True),
        Column("first_purchase_at", UTC_TS, "Time of the first purchase.", nullable=True),
        Column("last_purchase_at", UTC_TS, "Time of the last purchase.", nullable=True),
        Column("n_transactions", pl.Int64(), "Purchase transactions.", "count"),
        Column("n_purchase_days", pl.Int64(), "Distinct purchase-days.", "count"),
        Column("gross_revenue", MONEY, "Sum of purchase amounts.", "currency units"),
        Column(
            "first_day_total",
            MONEY,
            "Purchase total of the first purchase-day.",
            "currency units",
            nullable=True,
        ),
        Column("refund_amount", MONEY, "Sum of refunds (positive).", "currency units"),
        Column("n_refunds", pl.Int64(), "Refund transactions.", "count"),
    ),
)

CUSTOMER_FEATURES = Table(
    "customer_features",
    "as_of",
    "One row per customer with at least one purchase on or before as_of (BTYD conventions).",
    CUSTOMER_KEY
    + (
        Column("first_purchase_at", UTC_TS, "Time of the first purchase."),
        Column("last_purchase_at", UTC_TS, "Time of the last purchase."),
        Column("n_transactions", pl.Int64(), "Purchase transactions (amount > 0).", "count"),
        Column("n_purchase_days", pl.Int64(), "Distinct purchase-days (calendar days).", "count"),
        Column("frequency", pl.Int64(), "Repeat purchase-days = n_purchase_days - 1.", "count"),
        Column("recency", pl.Int64(), "First to last purchase-day.", "days"),
        Column("T", pl.Int64(), "First purchase-day to as_of (customer age).", "days"),
        Column(
            "days_since_last_purchase",
            pl.Int64(),
            "Last purchase-day to as_of = T - recency.",
            "days",
        ),
        Column(
            "monetary_value",
            pl.Float64(),
            "Mean per-day purchase total over repeat purchase-days (first day excluded); "
            "0 when frequency = 0.",
            "currency units",
        ),
        Column("gross_revenue", pl.Float64(), "Sum of purchase amounts.", "currency units"),
        Column(
            "refund_amount", pl.Float64(), "Sum of refunds, as a positive number.", "currency units"
        ),
        Column("n_refunds", pl.Int64(), "Refund transactions (amount < 0).", "count"),
        Column(
            "total_revenue",
            pl.Float64(),
            "Net revenue = gross_revenue - refund_amount.",
            "currency units",
        ),
        Column(
            "aov",
            pl.Float64(),
            "Average order value = gross_revenue / n_transactions.",
            "currency units",
        ),
        Column(
            "avg_days_between_purchases",
            pl.Float64(),
            "recency / frequency; null when frequency = 0 (no interval observed).",
            "days",
            nullable=True,
        ),
    ),
)
