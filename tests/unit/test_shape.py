"""Read options: how a delivery becomes contract rows (delimiters, numbers, dates, amounts, orders)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from clv_pipeline.errors import InputError
from clv_pipeline.sources.shape import (
    ReadOptions,
    guess_date_format,
    read_delivery,
    shape_rows,
    to_raw,
)
from clv_pipeline.validation.rules import ValidationRules
from clv_pipeline.validation.transactions import DUPLICATE_ID_REASON, validate_day

LINES = (
    "InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID\n"
    "536365,85123A,6,01-12-2010 08:26,2.55,17850\n"
    "536365,71053,6,01-12-2010 08:26,3.39,17850\n"
    "536365,84406B,8,01-12-2010 08:20,2.75,17850\n"  # earliest line of the order
    "536366,22633,6,01-12-2010 08:28,1.85,17850\n"
    "C536379,D,-1,01-12-2010 09:41,27.5,14527\n"
    "536380,22961,2,01-12-2010 09:45,abc,14527\n"  # a price that is not a number
    "536380,22962,1,01-12-2010 09:45,1.5,14527\n"
)
UCI = ReadOptions(
    column_map={"CustomerID": "customer_id", "InvoiceDate": "occurred_at", "Quantity": "quantity"},
    day_first=True,
    amount="Quantity * UnitPrice",
    order_id="InvoiceNo",
)


def _csv(tmp_path: Path, text: str, name: str = "x.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_order_lines_become_one_transaction_per_order(tmp_path: Path) -> None:
    path = _csv(tmp_path, LINES)
    rows = shape_rows(read_delivery(path, UCI), UCI, source=str(path)).to_dicts()
    assert [r["transaction_id"] for r in rows] == ["536365", "536366", "C536379", "536380"]
    first, second, refund, bad = rows
    # 6 x 2.55 + 6 x 3.39 + 8 x 2.75 = 15.3 + 20.34 + 22 = 57.64, exactly
    assert (first["amount"], first["quantity"]) == ("57.64", "20")
    assert first["occurred_at"] == "2010-12-01T08:20:00"  # the earliest line
    assert first["customer_id"] == "17850" and first["_source_row"] == 0
    assert (second["amount"], second["refund_of"]) == ("11.1", None)
    # a negative order is a refund of its own order id
    assert (refund["amount"], refund["refund_of"]) == ("-27.5", "C536379")
    # one unreadable line puts its value on the whole order: validation quarantines it, shown
    assert bad["amount"] == "UnitPrice=abc"


def test_an_order_id_and_an_amount_are_checked_against_the_file(tmp_path: Path) -> None:
    path = _csv(tmp_path, LINES)
    frame = read_delivery(path, UCI)
    with pytest.raises(InputError, match=r"--order-id Invoice: no column 'Invoice'.*'InvoiceNo'"):
        shape_rows(frame, ReadOptions(order_id="Invoice"), source="x.csv")
    with pytest.raises(InputError, match=r"--amount 'Qty \* UnitPrice'.*no column 'Qty'"):
        shape_rows(frame, ReadOptions(amount="Qty * UnitPrice"), source="x.csv")
    with pytest.raises(InputError, match=r"both --amount .* and --column UnitPrice=amount"):
        shape_rows(
            frame,
            ReadOptions(amount="Quantity * UnitPrice", column_map={"UnitPrice": "amount"}),
            source="x.csv",
        )


def test_a_mapping_that_matches_no_column_names_the_closest(tmp_path: Path) -> None:
    path = _csv(tmp_path, LINES)
    options = ReadOptions(column_map={"CustomerId": "customer_id"})
    with pytest.raises(
        InputError, match=r"mapping CustomerId=customer_id matches no column.*'CustomerID'"
    ):
        shape_rows(read_delivery(path, options), options, source="x.csv")


def test_european_csv_with_bom_semicolons_and_decimal_commas(tmp_path: Path) -> None:
    text = (
        "\ufeffBestellnummer;Kunde;Datum;Betrag\n"
        "A1;k1;31.12.2023 18:05;1.234,56\n"
        "A2;k2;02.01.2024;-12,5\n"
    )
    path = _csv(tmp_path, text)
    options = ReadOptions(
        column_map={
            "Bestellnummer": "transaction_id",
            "Kunde": "customer_id",
            "Datum": "occurred_at",
            "Betrag": "amount",
        },
        delimiter=";",
        decimal_comma=True,
        day_first=True,
    )
    raw = to_raw(read_delivery(path, options), options, source="x.csv")
    assert raw.get_column("amount").to_list() == ["1234.56", "-12.5"]
    assert raw.get_column("occurred_at").to_list() == [
        "2023-12-31T18:05:00",
        "2024-01-02T00:00:00",
    ]
    with pytest.raises(InputError, match=r"--delimiter ';'"):
        shape_rows(read_delivery(path, ReadOptions()), ReadOptions(), source="x.csv")


def test_latin1_files_need_their_encoding(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "transaction_id,customer_id,occurred_at,amount\nt1,Jörg,2024-01-01,5\n",
        encoding="latin-1",
    )
    with pytest.raises(InputError, match=r"not UTF-8 text.*--encoding latin-1"):
        read_delivery(path, ReadOptions())
    frame = read_delivery(path, ReadOptions(encoding="latin-1"))
    assert frame.get_column("customer_id").to_list() == ["Jörg"]


def test_stripe_cents_and_unix_seconds(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {"id": ["ch_1"], "customer": ["cus_1"], "created": [1704103200], "amount": [1999]}
    )
    options = ReadOptions(
        column_map={"id": "transaction_id", "customer": "customer_id", "created": "occurred_at"},
        amount="amount / 100",
        date_format="unix",
    )
    row = shape_rows(frame, options, source="charges.parquet").row(0, named=True)
    assert (row["amount"], row["occurred_at"]) == ("19.99", "2024-01-01T10:00:00+00:00")
    with pytest.raises(InputError, match="epoch seconds: set --date-format unix"):
        shape_rows(frame, ReadOptions(column_map=options.column_map), source="charges.parquet")


def test_the_date_format_hint_reads_the_values() -> None:
    assert guess_date_format(["01-12-2010 08:26", "13-12-2010 10:00"]) == "--day-first"
    assert guess_date_format(["12/13/2010 10:00"]) == "--date-format '%m/%d/%Y %H:%M'"
    assert guess_date_format(["01/02/2010"]).startswith("--day-first (or --date-format '%m/%d/%Y'")
    assert guess_date_format(["1704103200"]) == "--date-format unix"
    assert guess_date_format(["soon"]) is None


def test_rows_differing_in_any_delivered_column_are_not_re_deliveries(tmp_path: Path) -> None:
    """Two products with the same quantity and price on one invoice are not one row sent twice;
    only identical rows are dropped."""
    text = (
        "InvoiceNo,StockCode,InvoiceDate,Price,CustomerID\n"
        "9,A,2024-03-01T10:00:00Z,5,c1\n"
        "9,B,2024-03-01T10:00:00Z,5,c1\n"  # another product: not a re-delivery
        "8,A,2024-03-01T11:00:00Z,7,c2\n"
        "8,A,2024-03-01T11:00:00Z,7,c2\n"  # the same row twice: a re-delivery
    )
    path = _csv(tmp_path, text)
    options = ReadOptions(
        column_map={
            "InvoiceNo": "transaction_id",
            "InvoiceDate": "occurred_at",
            "Price": "amount",
            "CustomerID": "customer_id",
        }
    )
    raw = to_raw(read_delivery(path, options), options, source="x.csv")
    result = validate_day(raw, day=date(2024, 3, 1), rules=ValidationRules(max_bad_rows=0))
    assert result.stats["duplicates_dropped"] == 1
    assert result.clean.get_column("transaction_id").to_list() == ["8"]
    assert result.reasons() == {DUPLICATE_ID_REASON: 2}
