"""The data contract: input columns and every published table's columns, types and units.

This module is the single source of truth: stages cast their output to these schemas, the publish
audit checks them, ``docs/data_contract.md`` is generated from them (``clv docs``) and a test keeps
the committed document in sync.
"""

from __future__ import annotations

import polars as pl

from clv_pipeline.contract import Column, Table
from clv_pipeline.numeric import FIXED
from clv_pipeline.report.tables import REPORT_TABLES
from clv_pipeline.segments.tables import SEGMENT_TABLES

UTC_TS = pl.Datetime("us", "UTC")
__all__ = ["Column", "Table", "TABLES", "SNAPSHOT_TABLES", "conform", "render_markdown"]


# ---------------------------------------------------------------- input contract
REQUIRED_INPUT = ("transaction_id", "customer_id", "occurred_at", "amount")
OPTIONAL_INPUT = ("currency", "quantity", "status", "channel", "product_category")
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
)

_SOURCE = (
    Column("_source_file", pl.String(), "Landing file the row came from."),
    Column("_source_row", pl.Int64(), "0-based row number in that file."),
)

RAW_TRANSACTIONS = Table(
    "raw_transactions",
    "date",
    "The day's rows as delivered (after column renames), every value as a string.",
    tuple(Column(c.name, pl.String(), c.description, c.unit, True) for c in INPUT_COLUMNS)
    + _SOURCE,
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
            "purchase (amount > 0), refund (amount < 0) or ignored (zero amount or a "
            "non-revenue status such as cancelled).",
        ),
        Column("currency", pl.String(), "Upper-case currency code.", nullable=True),
        Column("quantity", pl.Int64(), "Items in the order.", nullable=True),
        Column("status", pl.String(), "Lower-case status.", nullable=True),
        Column("channel", pl.String(), "Channel, trimmed.", nullable=True),
        Column("product_category", pl.String(), "Product category, trimmed.", nullable=True),
        _SOURCE[0],
    ),
)

QUARANTINE_TRANSACTIONS = Table(
    "quarantine_transactions",
    "date",
    "Rejected input rows with the original values and the reason (under quarantine/transactions/).",
    tuple(Column(c.name, pl.String(), c.description, c.unit, True) for c in INPUT_COLUMNS)
    + _SOURCE
    + (Column("reason", pl.String(), "Why the row was rejected."),),
)

_KEY = (
    Column("customer_id", pl.String(), "Customer id."),
    Column("as_of", pl.Date(), "Snapshot date: only rows with event_date <= as_of are used."),
)

MONEY = FIXED  # fixed point: sums are exact and independent of row order (numeric.py)

CUSTOMER_STATE = Table(
    "customer_state",
    "as_of",
    "Running per-customer summary of every validated row with event_date <= as_of; "
    "customer_state[D] = customer_state[D-1] merged with day D (docs/scaling.md). Money in fixed "
    "point so incremental and full recomputes are identical. One row per customer with any "
    "purchase or refund.",
    _KEY
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
    _KEY
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

MODEL_PARAMS = Table(
    "model_params",
    "as_of",
    "Fitted model parameters, one row per (model, param); time unit days.",
    (
        Column("as_of", pl.Date(), "Snapshot date."),
        Column("model", pl.String(), "bgnbd, pareto_nbd, mbgnbd or gamma_gamma."),
        Column("param", pl.String(), "Parameter name (r, alpha, a, b, s, beta, p, q, v)."),
        Column("value", pl.Float64(), "Estimate (alpha and beta in days).", nullable=True),
        Column("log_likelihood", pl.Float64(), "Maximised log-likelihood.", nullable=True),
        Column("bic", pl.Float64(), "Bayesian information criterion.", nullable=True),
        Column("n_customers", pl.Int64(), "Customers in the fit.", "count"),
        Column("n_repeat_customers", pl.Int64(), "Customers with frequency > 0.", "count"),
        Column("converged", pl.Boolean(), "Optimizer converged to finite parameters."),
        Column("selected", pl.Boolean(), "This model produced customer_clv."),
    ),
)

CUSTOMER_CLV = Table(
    "customer_clv",
    "as_of",
    "Per-customer CLV: historic, seed formula and predictive (BTYD + Gamma-Gamma). Predictive "
    "columns are null, with data_sufficient = false, when no model could be fitted.",
    _KEY
    + (
        Column("model", pl.String(), "Purchase model used (null when none).", nullable=True),
        Column("data_sufficient", pl.Boolean(), "A purchase model was fitted and converged."),
        Column("p_alive", pl.Float64(), "P(customer still active at as_of).", "probability", True),
        Column("churn_probability", pl.Float64(), "1 - p_alive.", "probability", True),
        Column(
            "expected_purchases",
            pl.Float64(),
            "Expected purchase-days in (as_of, as_of + horizon_days].",
            "count",
            True,
        ),
        Column(
            "prob_active_in_horizon",
            pl.Float64(),
            "P(at least one purchase in the horizon).",
            "probability",
            True,
        ),
        Column(
            "expected_avg_value",
            pl.Float64(),
            "Gamma-Gamma conditional expected spend per purchase-day.",
            "currency units",
            True,
        ),
        Column(
            "predicted_clv",
            pl.Float64(),
            "Discounted expected purchases x expected_avg_value x gross_margin over the horizon.",
            "currency units",
            True,
        ),
        Column(
            "historic_clv", pl.Float64(), "total_revenue x gross_margin to date.", "currency units"
        ),
        Column("total_clv", pl.Float64(), "historic_clv + predicted_clv.", "currency units", True),
        Column("horizon_days", pl.Float64(), "Prediction horizon.", "days"),
        Column(
            "expected_next_purchase_at",
            pl.Date(),
            "as_of + expected days to the next purchase; null when not expected within the model cap.",
            nullable=True,
        ),
        Column(
            "formula_clv",
            pl.Float64(),
            "Seed formula: aov x population purchase rate (per day) x estimated lifespan (days) "
            "x gross_margin.",
            "currency units",
        ),
    ),
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        RAW_TRANSACTIONS,
        VALIDATED_TRANSACTIONS,
        CUSTOMER_STATE,
        CUSTOMER_FEATURES,
        MODEL_PARAMS,
        CUSTOMER_CLV,
        *SEGMENT_TABLES.values(),
        *REPORT_TABLES.values(),
    )
}
SNAPSHOT_TABLES = tuple(name for name, t in TABLES.items() if t.partition_key == "as_of")


def conform(frame: pl.DataFrame, table: Table) -> pl.DataFrame:
    """Select and cast ``frame`` to ``table``'s columns in contract order (strict casts)."""
    missing = [c for c in table.names if c not in frame.columns]
    if missing:
        raise ValueError(f"{table.name}: stage output lacks columns {missing}")
    return frame.select(pl.col(c.name).cast(c.dtype, strict=True) for c in table.columns)


def render_markdown() -> str:
    """The data dictionary as markdown (``docs/data_contract.md`` is this text)."""
    lines = [
        "# Data contract",
        "",
        "Generated from `clv_pipeline/schema.py` by `clv docs`; a test fails when it drifts.",
        "Time unit: **days**. Timestamps are UTC. Paths are relative to the data home `CLV_HOME`.",
        "",
        "## Input: raw transactions",
        "",
        "Files `landing/transactions/date=YYYY-MM-DD/*.parquet|*.csv`. Required: "
        + ", ".join(f"`{c}`" for c in REQUIRED_INPUT)
        + ". Optional, carried when present: "
        + ", ".join(f"`{c}`" for c in OPTIONAL_INPUT)
        + ". Other columns are ignored. Renames: `--column source=contract` or `CLV_COLUMN_MAP`.",
        "",
        "| column | description | unit |",
        "|---|---|---|",
    ]
    lines += [f"| `{c.name}` | {c.description} | {c.unit} |" for c in INPUT_COLUMNS]
    for table in (*TABLES.values(), QUARANTINE_TRANSACTIONS):
        root = (
            "quarantine/transactions"
            if table is QUARANTINE_TRANSACTIONS
            else f"warehouse/{table.name}"
        )
        lines += [
            "",
            f"## `{table.name}`",
            "",
            f"{table.description}",
            "",
            f"Path: `{root}/{table.partition_key}=YYYY-MM-DD/part-0.parquet`",
            "",
            "| column | type | nullable | unit | description |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| `{c.name}` | {c.dtype} | {'yes' if c.nullable else 'no'} | {c.unit} | {c.description} |"
            for c in table.columns
        ]
    return "\n".join(lines) + "\n"
