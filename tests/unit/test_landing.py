"""Importing exports into landing: split by event date, renames, idempotency, clear errors."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from clv_pipeline.errors import InputError
from clv_pipeline.paths import Layout
from clv_pipeline.sources.landing import import_files, read_delivered_file, read_landing_day
from clv_pipeline.validation.transactions import PARSE_REASONS
from tests.conftest import tx, write_csv

ROWS = [
    tx("2024-03-01", "c1", 10, "t1"),
    tx("2024-03-01", "c2", 20, "t2", hour=23),
    tx("2024-03-02", "c1", 5, "t3"),
]


def test_import_splits_by_event_date_and_is_idempotent(layout: Layout, tmp_path: Path) -> None:
    export = write_csv(tmp_path / "export.csv", ROWS)
    first = import_files([export], layout)
    assert first.rows == 3 and first.days == {date(2024, 3, 1), date(2024, 3, 2)}
    again = import_files([export], layout)
    assert sorted(again.written) == sorted(first.written)
    assert layout.landing_days() == [date(2024, 3, 1), date(2024, 3, 2)]
    assert read_landing_day(layout, date(2024, 3, 1)).height == 2
    assert read_landing_day(layout, date(2024, 3, 2)).height == 1


def test_import_uses_pipeline_timezone_for_the_day(layout: Layout, tmp_path: Path) -> None:
    export = write_csv(tmp_path / "export.csv", ROWS)
    report = import_files([export], layout, timezone="Asia/Tokyo")  # 23:00Z is the next day there
    assert report.days == {date(2024, 3, 1), date(2024, 3, 2)}
    assert read_landing_day(layout, date(2024, 3, 2)).height == 2


def test_column_renames_and_parquet_timestamps(layout: Layout, tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "order_id": ["x1", "x2"],
            "cust": ["a", "b"],
            "order_ts": pl.Series(["2024-03-01 10:00", "2024-03-01 11:00"]).str.to_datetime(
                time_zone="UTC"
            ),
            "amount": [1.5, 2],
            "extra": [1, 2],
        }
    )
    path = tmp_path / "orders.parquet"
    frame.write_parquet(path)
    mapping = {"order_id": "transaction_id", "cust": "customer_id", "order_ts": "occurred_at"}
    import_files([path], layout, column_map=mapping)
    # landing keeps the file as delivered; every read applies the data home's mapping
    raw = read_landing_day(layout, date(2024, 3, 1), column_map=mapping)
    assert raw.get_column("occurred_at").to_list() == [
        "2024-03-01T10:00:00+00:00",
        "2024-03-01T11:00:00+00:00",
    ]
    assert raw.get_column("amount").to_list() == ["1.5", "2.0"]
    assert "extra" not in raw.columns and raw.get_column("_source_row").to_list() == [0, 1]


def test_unparseable_dates_go_to_import_quarantine(layout: Layout, tmp_path: Path) -> None:
    export = write_csv(
        tmp_path / "e.csv", [*ROWS, {**ROWS[0], "transaction_id": "t9", "occurred_at": "soon"}]
    )
    report = import_files([export], layout)
    assert report.unparseable_rows == 1
    (quarantined,) = (layout.quarantine / "import").glob("*.parquet")
    bad = pl.read_parquet(quarantined)
    assert bad.get_column("transaction_id").to_list() == ["t9"]
    assert bad.get_column("reason")[0] == PARSE_REASONS["occurred_at"]


def test_missing_column_error_names_file_and_columns(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("transaction_id;customer_id;occurred_at;amount\nt1;c1;2024-01-01;5\n")
    with pytest.raises(InputError, match=r"bad\.csv: missing required column.*--delimiter"):
        read_delivered_file(path)


def test_unreadable_files_raise_input_error(tmp_path: Path) -> None:
    garbage = tmp_path / "x.parquet"
    garbage.write_bytes(b"not a parquet file")
    with pytest.raises(InputError, match=r"x\.parquet: cannot read as parquet"):
        read_delivered_file(garbage)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(
        "transaction_id,customer_id,occurred_at,amount\nt1,J\xf6rg,2024-01-01,5\n".encode("latin-1")
    )
    with pytest.raises(InputError, match=r"latin\.csv: not UTF-8 text.*--encoding latin-1"):
        read_delivered_file(latin)
    with pytest.raises(InputError, match="unsupported file type"):
        read_delivered_file(tmp_path / "file.json")
