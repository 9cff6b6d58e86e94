"""The data contract itself (clv_pipeline.schema): conform, and rules every table follows."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from clv_pipeline.schema import (
    CUSTOMER_STATE,
    MONEY,
    PURCHASE_GAPS,
    QUARANTINE_TRANSACTIONS,
    RAW_TRANSACTIONS,
    SNAPSHOT_TABLES,
    TABLES,
    Column,
    Table,
    conform,
)

ALL_TABLES = (*TABLES.values(), QUARANTINE_TRANSACTIONS, PURCHASE_GAPS)
AS_DELIVERED = (RAW_TRANSACTIONS, QUARANTINE_TRANSACTIONS)  # every input value kept as a string
SMALL = Table(
    "small",
    "as_of",
    "A table for the tests.",
    (
        Column("as_of", pl.Date(), "Snapshot date."),
        Column("n", pl.Int64(), "A count.", "count"),
        Column("x", pl.Float64(), "A value.", nullable=True),
    ),
)


def _frame() -> pl.DataFrame:
    return pl.DataFrame(
        {"extra": ["dropped"], "x": [1.5], "n": [3], "as_of": [date(2024, 1, 2)]},
        schema={"extra": pl.String, "x": pl.Float64, "n": pl.Int32, "as_of": pl.Date},
    )


def test_conform_orders_drops_and_casts_eager_and_lazy_alike() -> None:
    eager = conform(_frame(), SMALL)
    lazy = conform(_frame().lazy(), SMALL)
    assert isinstance(lazy, pl.LazyFrame)
    assert lazy.collect_schema() == SMALL.schema
    assert eager.schema == SMALL.schema  # order, extra column dropped, Int32 -> Int64
    assert eager.equals(lazy.collect())
    assert eager.row(0) == (date(2024, 1, 2), 3, 1.5)


def test_conform_names_every_missing_column() -> None:
    for frame in (_frame().drop("n", "as_of"), _frame().drop("n", "as_of").lazy()):
        with pytest.raises(ValueError, match=r"small: stage output lacks columns \['as_of', 'n'\]"):
            conform(frame, SMALL)


def test_conform_rejects_a_value_the_contract_type_cannot_hold() -> None:
    text = _frame().with_columns(pl.lit("three").alias("n"))
    with pytest.raises(pl.exceptions.InvalidOperationError):
        conform(text, SMALL)
    with pytest.raises(pl.exceptions.InvalidOperationError):
        conform(text.lazy(), SMALL).collect()


def test_tables_are_named_described_and_have_unique_columns() -> None:
    assert all(name == table.name for name, table in TABLES.items())
    for table in ALL_TABLES:
        assert table.partition_key in ("as_of", "date"), table.name
        assert table.description.endswith("."), table.name
        assert len(set(table.names)) == len(table.names), table.name  # a schema would hide it
        for column in table.columns:
            assert column.description.endswith("."), (table.name, column.name)


def test_snapshot_tables_carry_their_partition_date() -> None:
    assert SNAPSHOT_TABLES
    for name in SNAPSHOT_TABLES:
        as_of = {c.name: c for c in TABLES[name].columns}["as_of"]
        assert as_of.dtype == pl.Date() and not as_of.nullable, name


def _day_valued(column: Column) -> bool:
    words = column.name.split("_")
    return (
        column.dtype.is_numeric()
        and ("days" in words or column.name in ("T", "recency"))
        and words[0] != "n"  # n_purchase_days counts days: unit count
        and words[-1] != "pct"
    )


def test_day_valued_columns_are_in_days() -> None:
    day_valued = [(t.name, c) for t in ALL_TABLES for c in t.columns if _day_valued(c)]
    assert len(day_valued) > 10
    for table, column in day_valued:
        assert column.unit == "days", (table, column.name, column.unit)


def test_a_column_name_means_one_type_in_every_table() -> None:
    """Except the as-delivered strings and the fixed-point money of customer_state."""
    types: dict[str, dict[pl.DataType, list[str]]] = {}
    for table in ALL_TABLES:
        if table in AS_DELIVERED:
            continue
        for column in table.columns:
            if table is CUSTOMER_STATE and column.dtype == MONEY:
                continue
            types.setdefault(column.name, {}).setdefault(column.dtype, []).append(table.name)
    assert {name: found for name, found in types.items() if len(found) > 1} == {}
    money = {c.name for t in ALL_TABLES for c in t.columns if c.dtype == MONEY}
    assert money == {c.name for c in CUSTOMER_STATE.columns if c.dtype == MONEY}
    assert money == {"gross_revenue", "first_day_total", "refund_amount"}


@pytest.mark.parametrize(
    "rows",
    [
        [(1, "a"), (1, "b"), (2, "a")],  # in order: returned as it is
        [(1, "a"), (1, "a"), (2, "a")],  # ties are in order
        [(1, "b"), (1, "a"), (2, "a")],  # second key out of order
        [(2, "a"), (1, "b")],  # first key out of order
        [(1, "b"), (2, "a"), (1, "c")],
        [(1, None), (1, "a")],  # a null key: sorted as polars sorts (nulls first)
        [(1, "a"), (None, "a")],
        [],
    ],
)
def test_sort_rows_is_sort_and_skips_sorted_rows(rows: list[tuple[int | None, str | None]]) -> None:
    from clv_pipeline.schema import sort_rows

    frame = pl.DataFrame(
        rows, schema={"k": pl.Int64, "id": pl.String}, orient="row"
    ).with_row_index("row")
    got = sort_rows(frame, "k", "id")
    assert got.select("k", "id").equals(frame.sort("k", "id").select("k", "id"))
    # rows with equal keys keep their order only when nothing had to move; a sorted frame is
    # returned as it is
    if frame.select("k", "id").equals(frame.sort("k", "id").select("k", "id")):
        assert got.equals(frame)
