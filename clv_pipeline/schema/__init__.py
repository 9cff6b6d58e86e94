"""The data contract: input columns and every published table's columns, types and units.

This package is the single source of truth: stages :func:`conform` their output to these tables,
the publish audit checks them, ``docs/data_contract.md`` is generated from them (``clv docs``)
and a test keeps the committed document in sync.

* :mod:`~clv_pipeline.schema.contract` — :class:`Column`, :class:`Table`, :func:`conform`;
* :mod:`~clv_pipeline.schema.transactions` — input contract, raw / validated / quarantined rows;
* :mod:`~clv_pipeline.schema.customers` — ``customer_state``, ``customer_features``;
* :mod:`~clv_pipeline.schema.valuation` — ``model_params``, ``model_diagnostics``,
  ``customer_clv``;
* :mod:`~clv_pipeline.schema.segments` — segments, churn, migration, cohorts, unit economics,
  KPIs (and the ``purchase_gaps`` helper);
* :mod:`~clv_pipeline.schema.report` — the backtest tables.

The contract sits below every stage: it imports polars, the standard library and the leaf
:mod:`clv_pipeline.numeric` only (``tests/unit/test_layers.py``).
"""

from __future__ import annotations

from clv_pipeline.schema.contract import (
    AS_OF,
    CUSTOMER_KEY,
    UTC_TS,
    Column,
    Table,
    conform,
    empty_frame,
    rows_in_order,
    sort_rows,
    with_added_columns,
)
from clv_pipeline.schema.customers import CUSTOMER_FEATURES, CUSTOMER_STATE, MONEY
from clv_pipeline.schema.report import (
    BACKTEST_CALIBRATION,
    BACKTEST_DECILES,
    BACKTEST_METRICS,
    MODEL_BACKTEST,
    REPORT_TABLES,
)
from clv_pipeline.schema.segments import (
    COHORTS,
    CUSTOMER_CHURN,
    CUSTOMER_SEGMENTS,
    KPI_COLUMNS,
    KPI_NAMES,
    KPIS,
    MIGRATION_DIMENSIONS,
    PURCHASE_GAPS,
    SEGMENT_MIGRATION,
    SEGMENT_TABLES,
    UNIT_ECONOMICS,
)
from clv_pipeline.schema.transactions import (
    INPUT_COLUMNS,
    OPTIONAL_INPUT,
    QUARANTINE_TRANSACTIONS,
    RAW_TRANSACTIONS,
    REQUIRED_INPUT,
    VALIDATED_TRANSACTIONS,
)
from clv_pipeline.schema.valuation import CUSTOMER_CLV, MODEL_DIAGNOSTICS, MODEL_PARAMS

#: Every published table by name (``quarantine_transactions`` and ``purchase_gaps`` are not
#: warehouse tables), in the order of ``docs/data_contract.md``.
TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        RAW_TRANSACTIONS,
        VALIDATED_TRANSACTIONS,
        CUSTOMER_STATE,
        CUSTOMER_FEATURES,
        MODEL_PARAMS,
        MODEL_DIAGNOSTICS,
        CUSTOMER_CLV,
        *SEGMENT_TABLES.values(),
        *REPORT_TABLES.values(),
    )
}
SNAPSHOT_TABLES = tuple(name for name, t in TABLES.items() if t.partition_key == "as_of")

__all__ = [
    "AS_OF",
    "BACKTEST_CALIBRATION",
    "BACKTEST_DECILES",
    "BACKTEST_METRICS",
    "COHORTS",
    "CUSTOMER_CHURN",
    "CUSTOMER_CLV",
    "CUSTOMER_FEATURES",
    "CUSTOMER_KEY",
    "CUSTOMER_SEGMENTS",
    "CUSTOMER_STATE",
    "INPUT_COLUMNS",
    "KPIS",
    "KPI_COLUMNS",
    "KPI_NAMES",
    "MIGRATION_DIMENSIONS",
    "MODEL_BACKTEST",
    "MODEL_DIAGNOSTICS",
    "MODEL_PARAMS",
    "MONEY",
    "OPTIONAL_INPUT",
    "PURCHASE_GAPS",
    "QUARANTINE_TRANSACTIONS",
    "RAW_TRANSACTIONS",
    "REPORT_TABLES",
    "REQUIRED_INPUT",
    "SEGMENT_MIGRATION",
    "SEGMENT_TABLES",
    "SNAPSHOT_TABLES",
    "TABLES",
    "UNIT_ECONOMICS",
    "UTC_TS",
    "VALIDATED_TRANSACTIONS",
    "Column",
    "Table",
    "conform",
    "empty_frame",
    "render_markdown",
    "rows_in_order",
    "sort_rows",
    "with_added_columns",
]


#: Folder key of committed snapshot partitions (``paths.PUBLIC_KEY``; the contract imports no
#: layout, a test keeps the two equal).
SNAPSHOT_FOLDER_KEY = "snapshot"


def _folder_key(table: Table) -> str:
    return SNAPSHOT_FOLDER_KEY if table.partition_key == "as_of" else table.partition_key


def render_markdown() -> str:
    """The data dictionary as markdown (``docs/data_contract.md`` is this text)."""
    lines = [
        "# Data contract",
        "",
        "Generated from `clv_pipeline/schema/` by `clv docs`; a test fails when it drifts.",
        "Time unit: **days**. Timestamps are UTC. Paths are relative to the data home `CLV_HOME`.",
        "",
        "## Input: raw transactions",
        "",
        "Files `landing/transactions/date=YYYY-MM-DD/*.parquet|*.csv`. Required: "
        + ", ".join(f"`{c}`" for c in REQUIRED_INPUT)
        + ". Optional, carried when present: "
        + ", ".join(f"`{c}`" for c in OPTIONAL_INPUT)
        + ". Other columns are kept in the landing files and count when deciding whether two rows "
        "are the same (only rows identical in every column are dropped as re-deliveries), but are "
        "not published. Renames: `--column source=contract` or `CLV_COLUMN_MAP`; how files are "
        "read (delimiter, decimal comma, encoding, date format, an `amount` expression such as "
        "`Quantity * UnitPrice`, order lines grouped by `--order-id`): the `[source]` settings, "
        "see `docs/importing.md`.",
        "",
        "Revenue rules (every snapshot): a zero-amount order (free items, voucher) is a purchase "
        "with zero revenue (`CLV_ZERO_AMOUNT=purchase`, the default; `ignore` drops it). A refund "
        "whose `refund_of` names a purchase of the same customer is *tied* to it: when the tied "
        "refunds cover the purchase's amount, the purchase and those refunds count as cancelled "
        "(no purchase-day, no revenue); a partial or untied refund only reduces revenue. With "
        "`--order-id`, an order whose lines add up to a negative total is a refund tied to its own "
        "order id. Example: order A (+50 on 3 Jan) and its refund A (-50 on 9 Jan) leave the "
        "customer with no purchase-day from A; a refund of -20 would leave the 3 Jan purchase-day "
        "and 30 of revenue.",
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
            f"Path: `{root}/{_folder_key(table)}=YYYY-MM-DD/part-0.parquet`"
            + (
                " (+ `_SUCCESS` once the day is committed)"
                if table.partition_key == "as_of"
                else ""
            ),
            "",
            "| column | type | nullable | unit | description |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| `{c.name}` | {c.dtype} | {'yes' if c.nullable else 'no'} | {c.unit} | {c.description} |"
            for c in table.columns
        ]
    return "\n".join(lines) + "\n"
