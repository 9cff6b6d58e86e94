"""Every export shape of docs/importing.md imports with its documented command.

Each test writes a small file of one shape, imports it through the real CLI (`clv init` / `clv
import`, the exact options of the doc), then pulls and validates every landed day and computes
the customer features as `clv run` would (the pipeline steps, without Dagster: one GX call per
shape). Expected features are literal numbers derived by hand in the comments; every order of the
file is accounted for (validated + quarantined == orders).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from clv_pipeline import pipeline
from clv_pipeline.cli import app
from clv_pipeline.config import load_config
from clv_pipeline.errors import InputError
from clv_pipeline.features.customers import apply_refund_ties, compute_features
from clv_pipeline.publish.warehouse import scan_published
from clv_pipeline.sources.shape import ReadOptions, read_delivery, shape_rows

runner = CliRunner()

FEATURES = ("frequency", "recency", "T", "monetary_value", "total_revenue", "n_transactions")


@dataclass
class Outcome:
    validated: pl.DataFrame
    quarantined: pl.DataFrame  # validation quarantine and import quarantine (no usable date)
    features: dict[str, dict[str, object]]

    def kinds(self) -> dict[str, str]:
        """transaction_id -> revenue_kind after refund ties (purchase, refund, ignored, ...)."""
        return dict(zip(self.validated["transaction_id"], self.validated["kind"], strict=True))

    def amounts(self) -> dict[str, float]:
        """transaction_id -> amount of the validated rows (one row per id in these files)."""
        return dict(zip(self.validated["transaction_id"], self.validated["amount"], strict=True))


def clv(*args: str, home: Path) -> str:
    result = runner.invoke(app, [*args, "--home", str(home)])
    assert result.exit_code == 0, result.output
    return result.output


def run_pipeline(home: Path, as_of: date) -> Outcome:
    """raw_transactions and validated_transactions for every landed day, then the features."""
    config = load_config(home, environ={})
    days = config.layout.landing_days()
    for day in days:
        pipeline.pull_raw_transactions(config, day)
    pipeline.validate_days(config, days)
    validated = scan_published(config.layout, "validated_transactions")
    quarantine = sorted(config.layout.quarantine.glob("*/**/*.parquet"))
    quarantined = (
        pl.concat([pl.read_parquet(p).select("reason") for p in quarantine])
        if quarantine
        else pl.DataFrame({"reason": []}, schema={"reason": pl.String})
    )
    features = compute_features(validated, as_of=as_of).collect()
    kinds = apply_refund_ties(validated).collect().rename({"revenue_kind": "kind"})
    return Outcome(
        kinds,
        quarantined,
        {row["customer_id"]: row for row in features.iter_rows(named=True)},
    )


def assert_features(outcome: Outcome, expected: dict[str, dict[str, float]]) -> None:
    assert sorted(outcome.features) == sorted(expected)
    for customer, values in expected.items():
        got = {name: outcome.features[customer][name] for name in values}
        assert got == pytest.approx(values), customer


# --------------------------------------------------------------------------- (a) Shopify

SHOPIFY = """\
Name,Email,Financial Status,Currency,Subtotal,Shipping,Total,Refunded Amount,Created at,Lineitem quantity,Lineitem name,Lineitem price
#1001,ann@example.com,paid,EUR,50.00,5.00,55.00,0.00,2024-01-05 10:03:11 +0100,2,Mug,20.00
#1001,ann@example.com,,,,,,,2024-01-05 10:03:11 +0100,1,Coaster,10.00
#1002,bob@example.com,paid,EUR,30.00,0.00,30.00,0.00,2024-01-05 11:00:00 +0100,1,Teapot,30.00
#1003,ann@example.com,refunded,EUR,40.00,0.00,40.00,40.00,2024-01-07 09:00:00 +0100,2,Plate,20.00
#1004,bob@example.com,voided,EUR,15.00,0.00,15.00,0.00,2024-01-08 12:00:00 +0100,1,Spoon,15.00
#1005,ann@example.com,paid,EUR,19.50,5.00,24.50,0.00,2024-01-09 08:30:00 +0100,1,Bowl,19.50
#1006,bob@example.com,partially_refunded,EUR,60.00,0.00,60.00,20.00,2024-01-10 16:00:00 +0100,1,Kettle,35.00
#1006,bob@example.com,,,,,,,2024-01-10 16:00:00 +0100,1,Tray,25.00
#1007,ann@example.com,paid,EUR,0.00,0.00,0.00,0.00,2024-01-09 20:00:00 +0100,1,Sample,0.00
#1008,cara@example.com,paid,EUR,12.00,0.00,12.00,0.00,2024-01-06 00:30:00 +0100,1,Cup,12.00
#1009,,paid,EUR,8.00,0.00,8.00,0.00,2024-01-08 13:00:00 +0100,1,Napkins,8.00
"""

SHOPIFY_STATUSES = [
    "--set",
    "validation.known_statuses=pending,authorized,partially_paid,paid,partially_refunded,"
    "refunded,voided,expired",
    "--set",
    "validation.non_revenue_statuses=refunded,voided,expired",
]
SHOPIFY_IMPORT = [
    "--order-id",
    "Name",
    "--amount",
    'COALESCE(Total, 0) - COALESCE("Refunded Amount", 0)',
    "-c",
    "Email=customer_id",
    "-c",
    "Created at=occurred_at",
    "-c",
    "Financial Status=status",
    "-c",
    "Currency=currency",
]


def test_shopify_orders_export(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "orders_export.csv"
    path.write_text(SHOPIFY)
    clv("init", *SHOPIFY_STATUSES, home=home)
    out = clv("import", str(path), *SHOPIFY_IMPORT, home=home)
    assert "Imported 11 of 11 rows (9 orders by Name)" in " ".join(out.split())
    outcome = run_pipeline(home, date(2024, 1, 10))
    # 9 orders: 8 validated, #1009 (a POS sale without an e-mail) quarantined; its day
    # (2024-01-08) has 1 bad row of 2, above 5% but not above CLV_MAX_BAD_ROWS=10: published
    assert outcome.validated.height + outcome.quarantined.height == 9
    assert outcome.quarantined["reason"].to_list() == ["customer_id missing"]
    assert outcome.kinds() == {
        "#1001": "purchase",  # 55.00: the Total of the first line; the second line is blank
        "#1002": "purchase",
        "#1003": "ignored",  # refunded: a non-revenue status (Total - Refunded Amount = 0)
        "#1004": "ignored",  # voided
        "#1005": "purchase",
        "#1006": "purchase",  # partially refunded: 60 - 20 = 40
        "#1007": "purchase",  # a zero-amount order is a purchase with zero revenue
        "#1008": "purchase",
    }
    assert_features(
        outcome,
        {
            # ann: #1001 on 5 Jan (55.00; 10:03 +0100 = 09:03 UTC), #1005 24.50 + #1007 0.00 on
            # 9 Jan -> 2 purchase-days: frequency 1, recency 9-5 = 4, T 10-5 = 5,
            # monetary_value = the 9 Jan total 24.50, revenue 55 + 24.50 = 79.50, 3 purchases
            "ann@example.com": {
                "frequency": 1,
                "recency": 4,
                "T": 5,
                "monetary_value": 24.5,
                "total_revenue": 79.5,
                "n_transactions": 3,
            },
            # bob: #1002 30.00 on 5 Jan, #1006 60 - 20 = 40 on 10 Jan (#1004 voided):
            # frequency 1, recency 5, T 5, monetary_value 40, revenue 70
            "bob@example.com": {
                "frequency": 1,
                "recency": 5,
                "T": 5,
                "monetary_value": 40.0,
                "total_revenue": 70.0,
                "n_transactions": 2,
            },
            # cara: 6 Jan 00:30 +0100 is 5 Jan 23:30 UTC: one purchase-day on 5 Jan
            "cara@example.com": {
                "frequency": 0,
                "recency": 0,
                "T": 5,
                "monetary_value": 0.0,
                "total_revenue": 12.0,
                "n_transactions": 1,
            },
        },
    )


def test_shopify_line_items_as_the_amount(tmp_path: Path) -> None:
    """The documented alternative: merchandise at line price (no shipping, no refunds)."""
    path = tmp_path / "orders_export.csv"
    path.write_text(SHOPIFY)
    options = ReadOptions(
        column_map={"Email": "customer_id", "Created at": "occurred_at"},
        order_id="Name",
        amount='"Lineitem quantity" * "Lineitem price"',
    )
    orders = shape_rows(read_delivery(path, options), options, source=str(path))
    amounts = dict(zip(orders["transaction_id"], orders["amount"], strict=True))
    # #1001: 2 x 20 + 1 x 10 = 50 (the 5.00 shipping is not a line); #1006: 35 + 25 = 60
    # (the 20.00 refund is not seen); #1003: 2 x 20 = 40 (refunded, counted unless status is read)
    assert (amounts["#1001"], amounts["#1006"], amounts["#1003"]) == ("50", "60", "40")


def test_blank_amounts_on_later_lines_of_an_order(tmp_path: Path) -> None:
    path = tmp_path / "orders_export.csv"
    path.write_text(SHOPIFY)
    options = ReadOptions(
        column_map={"Email": "customer_id", "Created at": "occurred_at", "Total": "amount"},
        order_id="Name",
    )
    orders = shape_rows(read_delivery(path, options), options, source=str(path))
    amounts = dict(zip(orders["transaction_id"], orders["amount"], strict=True))
    assert (amounts["#1001"], amounts["#1006"]) == ("55", "60")


# --------------------------------------------------------------------------- (b) WooCommerce

WOOCOMMERCE = """\
Order ID,Order Date,Order Status,Customer User,Billing Email,Order Currency,Order Total
1201,2024-01-05 10:03,completed,17,ann@example.com,EUR,42.50
1202,2024-01-05 18:40,completed,0,guest@example.com,EUR,19.99
1203,2024-01-06 09:12,cancelled,17,ann@example.com,EUR,30.00
1204,2024-01-06 14:00,completed,23,bob@example.com,EUR,25.00
1205,2024-01-08 15:30,on-hold,23,bob@example.com,EUR,12.00
1206,2024-01-09 11:00,refunded,23,bob@example.com,EUR,25.00
1207,2024-01-09 09:00,processing,17,ann@example.com,EUR,0.00
1208,2024-01-07 16:20,pending,17,ann@example.com,EUR,10.00
"""


def test_woocommerce_orders_export(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "woocommerce_orders.csv"
    path.write_text(WOOCOMMERCE)
    clv(
        "init",
        "--set",
        "validation.known_statuses=pending,processing,on-hold,completed,cancelled,refunded,failed",
        "--set",
        "validation.non_revenue_statuses=pending,cancelled,refunded,failed",
        home=home,
    )
    clv(
        "import",
        str(path),
        *("-c", "Order ID=transaction_id", "-c", "Order Date=occurred_at"),
        *("-c", "Billing Email=customer_id", "-c", "Order Total=amount"),
        *("-c", "Order Status=status", "-c", "Order Currency=currency"),
        home=home,
    )
    outcome = run_pipeline(home, date(2024, 1, 9))
    assert outcome.validated.height == 8 and outcome.quarantined.height == 0
    assert {k for k, v in outcome.kinds().items() if v == "ignored"} == {"1203", "1206", "1208"}
    assert_features(
        outcome,
        {
            # ann: 1201 42.50 on 5 Jan, 1207 0.00 on 9 Jan (processing, zero amount: a
            # purchase-day with no revenue); 1203 cancelled and 1208 pending are not revenue:
            # frequency 1, recency 4, T 4, monetary_value 0 (the 9 Jan total), revenue 42.50
            "ann@example.com": {
                "frequency": 1,
                "recency": 4,
                "T": 4,
                "monetary_value": 0.0,
                "total_revenue": 42.5,
                "n_transactions": 2,
            },
            # bob: 1204 25.00 on 6 Jan, 1205 12.00 (on-hold) on 8 Jan; 1206 refunded:
            # frequency 1, recency 2, T 3, monetary_value 12, revenue 37
            "bob@example.com": {
                "frequency": 1,
                "recency": 2,
                "T": 3,
                "monetary_value": 12.0,
                "total_revenue": 37.0,
                "n_transactions": 2,
            },
            # a guest (Customer User 0) is still a customer by billing e-mail
            "guest@example.com": {
                "frequency": 0,
                "recency": 0,
                "T": 4,
                "monetary_value": 0.0,
                "total_revenue": 19.99,
                "n_transactions": 1,
            },
        },
    )


# --------------------------------------------------------------------------- (c) Stripe

# created: 1704449000 = 2024-01-05 10:03:20 UTC, 1704470400 = 01-05 16:00, 1704621600 = 01-07
# 10:00, 1704724200 = 01-08 14:30, 1704724800 = 01-08 14:40, 1704800000 = 01-09 11:33:20,
# 1704830000 = 01-09 19:53:20
STRIPE_CHARGES = """\
id,customer,created,amount,amount_refunded,currency,status,description
ch_1,cus_Ann,1704449000,4250,500,eur,succeeded,Order 1
ch_2,cus_Bob,1704470400,1999,0,eur,succeeded,Order 2
ch_3,cus_Ann,1704621600,3000,0,eur,failed,Order 3
ch_4,cus_Bob,1704724200,2500,2500,eur,succeeded,Order 4
ch_5,,1704724800,900,0,eur,succeeded,Guest checkout
ch_6,cus_Ann,1704800000,1250,0,eur,succeeded,Order 6
ch_7,cus_Ann,1704830000,750,0,eur,succeeded,Order 7
"""
# the refunds, one row each with the charge they refund: 1704900000 = 2024-01-10 15:20 UTC,
# 1704895000 = 2024-01-10 13:56:40 UTC
STRIPE_REFUNDS = """\
id,customer,created,amount,currency,status,refund_of
re_1,cus_Bob,1704900000,-2500,eur,succeeded,ch_4
re_2,cus_Ann,1704895000,-500,eur,succeeded,ch_1
"""


def test_stripe_charges_and_refunds(home: Path, tmp_path: Path) -> None:
    charges, refunds = tmp_path / "charges.csv", tmp_path / "refunds.csv"
    charges.write_text(STRIPE_CHARGES)
    refunds.write_text(STRIPE_REFUNDS)
    clv("init", "--set", "validation.known_statuses=succeeded,pending,failed", home=home)
    clv(
        "import",
        str(charges),
        *("-c", "id=transaction_id", "-c", "customer=customer_id", "-c", "created=occurred_at"),
        *("--amount", "amount / 100", "--date-format", "unix"),
        home=home,
    )
    clv("import", str(refunds), home=home)  # the saved options read the refunds too
    outcome = run_pipeline(home, date(2024, 1, 10))
    # 9 rows: 8 validated, ch_5 (no customer) quarantined
    assert outcome.validated.height + outcome.quarantined.height == 9
    assert outcome.quarantined["reason"].to_list() == ["customer_id missing"]
    kinds = outcome.kinds()
    assert (kinds["ch_3"], kinds["ch_4"], kinds["re_1"], kinds["re_2"]) == (
        "ignored",  # failed: a non-revenue status
        "cancelled",  # fully refunded by re_1 two days later
        "cancelled",
        "refund",  # partial: 5.00 of ch_1's 42.50
    )
    amounts = outcome.amounts()
    assert (amounts["ch_1"], amounts["ch_2"], amounts["re_2"]) == (42.5, 19.99, -5.0)
    assert_features(
        outcome,
        {
            # Ann: ch_1 42.50 on 5 Jan, ch_6 12.50 + ch_7 7.50 on 9 Jan, re_2 -5.00:
            # frequency 1, recency 4, T 5, monetary_value 20, revenue 62.50 - 5 = 57.50
            "cus_Ann": {
                "frequency": 1,
                "recency": 4,
                "T": 5,
                "monetary_value": 20.0,
                "total_revenue": 57.5,
                "n_transactions": 3,
            },
            # Bob: ch_2 19.99 on 5 Jan; ch_4 (8 Jan) cancelled with its refund: one purchase-day
            "cus_Bob": {
                "frequency": 0,
                "recency": 0,
                "T": 5,
                "monetary_value": 0.0,
                "total_revenue": 19.99,
                "n_transactions": 1,
            },
        },
    )


# --------------------------------------------------------------------------- (d) order lines

ORDER_LINES = """\
InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536370,22728,ALARM CLOCK BAKELIKE PINK,24,01-12-2010 08:45,3.75,12345,France
536370,22326,ROUND SNACK BOXES SET OF4 WOODLAND,12,01-12-2010 08:45,0.85,12345,France
536373,21731,RED TOADSTOOL LED NIGHT LIGHT,3,01-12-2010 09:00,10.00,12346,Germany
536374,POST,FREE GIFT,2,02-12-2010 11:00,0.00,12346,Germany
536376,22633,HAND WARMER UNION JACK,1,02-12-2010 12:00,5.00,,Germany
536371,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,03-12-2010 10:00,2.55,12345,France
C536372,85123A,WHITE HANGING HEART T-LIGHT HOLDER,-2,03-12-2010 12:00,2.55,12345,France
536380,84879,ASSORTED COLOUR BIRD ORNAMENT,10,06-12-2010 09:00,1.25,12345,France
536380,POST,FREE GIFT,1,06-12-2010 09:00,0.00,12345,France
536375,22960,JAM MAKING SET WITH JARS,4,06-12-2010 15:00,5.00,12346,Germany
536375,22961,JAM MAKING SET PRINTED,1,06-12-2010 15:00,2.50,12346,Germany
"""
# a later delivery: order 536373 refunded in full, under its own order number, on 4 Dec
LATER_REFUND = """\
InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536373,21731,RED TOADSTOOL LED NIGHT LIGHT,-3,04-12-2010 16:00,10.00,12346,Germany
"""
ORDER_LINE_IMPORT = [
    *("--order-id", "InvoiceNo", "--amount", "Quantity * UnitPrice"),
    *("-c", "CustomerID=customer_id", "-c", "InvoiceDate=occurred_at", "-c", "Quantity=quantity"),
    "--day-first",
]


def test_order_lines_with_day_first_dates_and_cancellations(home: Path, tmp_path: Path) -> None:
    path, later = tmp_path / "online_retail.csv", tmp_path / "online_retail_refunds.csv"
    path.write_text(ORDER_LINES)
    later.write_text(LATER_REFUND)
    out = clv("import", str(path), *ORDER_LINE_IMPORT, home=home)
    assert "Imported 11 of 11 rows (8 orders by InvoiceNo)" in " ".join(out.split())
    clv("import", str(later), home=home)
    outcome = run_pipeline(home, date(2010, 12, 6))
    # 8 orders + 1 refund order: 8 validated, 536376 (no CustomerID, a guest) quarantined
    assert outcome.validated.height + outcome.quarantined.height == 9
    assert outcome.quarantined["reason"].to_list() == ["customer_id missing"]
    by_id = outcome.validated.group_by("transaction_id").agg(pl.col("amount"), pl.col("kind"))
    rows = {r["transaction_id"]: (r["amount"], r["kind"]) for r in by_id.iter_rows(named=True)}
    assert rows["536370"] == ([100.2], ["purchase"])  # 24 x 3.75 + 12 x 0.85
    ids, quantity = outcome.validated["transaction_id"], outcome.validated["quantity"]
    quantities = dict(zip(ids, quantity, strict=True))
    assert (quantities["536370"], quantities["C536372"]) == (36, -2)  # 24 + 12 items; -2
    assert rows["C536372"] == ([-5.1], ["refund"])  # a C invoice: untied refund
    assert rows["536374"] == ([0.0], ["purchase"])  # free gift only: zero-amount purchase
    assert sorted(rows["536373"][0]) == [-30.0, 30.0]  # the purchase and its later refund
    assert rows["536373"][1] == ["cancelled", "cancelled"]
    assert_features(
        outcome,
        {
            # 12345: 1 Dec 100.20, 3 Dec 15.30 (6 x 2.55), 6 Dec 12.50 (10 x 1.25 + a free
            # line); C536372 -5.10: frequency 2, recency 5, T 5, monetary_value
            # (15.30 + 12.50) / 2 = 13.90, revenue 128.00 - 5.10 = 122.90
            "12345": {
                "frequency": 2,
                "recency": 5,
                "T": 5,
                "monetary_value": 13.9,
                "total_revenue": 122.9,
                "n_transactions": 3,
            },
            # 12346: 536373 (1 Dec, 30.00) cancelled by its refund on 4 Dec; 2 Dec 0.00 (free
            # gift), 6 Dec 22.50 (4 x 5 + 2.50): first purchase-day 2 Dec, frequency 1,
            # recency 4, T 4, monetary_value 22.50, revenue 22.50
            "12346": {
                "frequency": 1,
                "recency": 4,
                "T": 4,
                "monetary_value": 22.5,
                "total_revenue": 22.5,
                "n_transactions": 2,
            },
        },
    )
    # each customer's revenue is the sum of Quantity x UnitPrice over their lines
    lines = pl.concat([pl.read_csv(p, infer_schema=False) for p in (path, later)]).filter(
        pl.col("CustomerID").is_not_null()
    )
    sums = lines.group_by("CustomerID").agg(
        (pl.col("Quantity").cast(pl.Float64) * pl.col("UnitPrice").cast(pl.Float64)).sum()
    )
    for customer, total in sums.iter_rows():
        assert outcome.features[customer]["total_revenue"] == pytest.approx(total)


def test_a_later_refund_of_an_order_in_the_same_file_cancels_it(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "online_retail.csv"
    path.write_text(ORDER_LINES + LATER_REFUND.split("\n", 1)[1])
    clv("import", str(path), *ORDER_LINE_IMPORT, home=home)
    outcome = run_pipeline(home, date(2010, 12, 6))
    # as with the refund in a later delivery: 12346's first purchase-day is 2 Dec, not 1 Dec
    assert outcome.features["12346"]["frequency"] == 1
    assert outcome.features["12346"]["T"] == 4


# --------------------------------------------------------------------------- (e) European CSV

EUROPEAN = """\
\ufeffBestellnummer;Kundennummer;Bestelldatum;Betrag;Währung;Storno zu
A-1001;K-17;05.01.2024 10:03;1.234,56;EUR;
A-1002;K-23;05.01.2024 18:40;19,99;EUR;
A-1005;K-23;06.01.2024 08:15;2,50;EUR;
A-1003;K-17;07.01.2024 09:12;0,00;EUR;
A-1004;K-17;08.01.2024 14:00;-234,56;EUR;A-1001
"""


def test_european_semicolon_decimal_comma_csv_with_a_bom(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "bestellungen.csv"
    path.write_bytes(EUROPEAN.encode("utf-8"))
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    clv(
        "import",
        str(path),
        *("--delimiter", ";", "--decimal-comma", "--day-first"),
        *("-c", "Bestellnummer=transaction_id", "-c", "Kundennummer=customer_id"),
        *("-c", "Bestelldatum=occurred_at", "-c", "Betrag=amount", "-c", "Währung=currency"),
        *("-c", "Storno zu=refund_of"),
        home=home,
    )
    outcome = run_pipeline(home, date(2024, 1, 8))
    assert outcome.validated.height == 5 and outcome.quarantined.height == 0
    amounts = outcome.amounts()
    assert amounts["A-1001"] == 1234.56 and amounts["A-1004"] == -234.56
    assert outcome.kinds()["A-1004"] == "refund"  # partial: the purchase stays
    assert_features(
        outcome,
        {
            # K-17: A-1001 1,234.56 on 5 Jan, A-1003 0,00 on 7 Jan (zero-amount purchase),
            # A-1004 -234.56 tied to A-1001 but partial: frequency 1, recency 2, T 3,
            # monetary_value 0 (the 7 Jan total), revenue 1234.56 - 234.56 = 1000
            "K-17": {
                "frequency": 1,
                "recency": 2,
                "T": 3,
                "monetary_value": 0.0,
                "total_revenue": 1000.0,
                "n_transactions": 2,
            },
            # K-23: 19.99 on 5 Jan, 2.50 on 6 Jan: frequency 1, recency 1, T 3, mv 2.50
            "K-23": {
                "frequency": 1,
                "recency": 1,
                "T": 3,
                "monetary_value": 2.5,
                "total_revenue": 22.49,
                "n_transactions": 2,
            },
        },
    )


def test_a_semicolon_file_without_the_delimiter_option_names_it(tmp_path: Path) -> None:
    path = tmp_path / "bestellungen.csv"
    path.write_text("Bestellnummer;Kundennummer;Bestelldatum;Betrag\nA-1;K-1;2024-01-05;12\n")
    options = ReadOptions(column_map={"Bestellnummer": "transaction_id"})
    with pytest.raises(InputError) as error:
        shape_rows(read_delivery(path, options), options, source=str(path))
    assert "--delimiter ';'" in str(error.value)


# --------------------------------------------------------------------------- (f) parquet


def test_typed_parquet_needs_only_column_maps(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "orders.parquet"
    pl.DataFrame(
        {
            "order_id": [5001, 5002, 5003, 5004, 5005],
            "customer": ["c1", "c2", "c1", "c1", "c2"],
            "ordered_at": [
                datetime(2024, 1, 5, 10, 3, tzinfo=UTC),
                datetime(2024, 1, 5, 18, 40, tzinfo=UTC),
                datetime(2024, 1, 7, 9, 12, tzinfo=UTC),
                datetime(2024, 1, 9, 11, 0, tzinfo=UTC),
                datetime(2024, 1, 9, 23, 30, tzinfo=UTC),
            ],
            "total": [42.5, 19.99, 30.0, 12.25, -5.0],
            "items": [2, 1, 3, 1, -1],
        }
    ).write_parquet(path)
    clv(
        "import",
        str(path),
        *("-c", "order_id=transaction_id", "-c", "customer=customer_id"),
        *("-c", "ordered_at=occurred_at", "-c", "total=amount", "-c", "items=quantity"),
        home=home,
    )
    outcome = run_pipeline(home, date(2024, 1, 9))
    assert outcome.validated.height == 5 and outcome.quarantined.height == 0
    assert outcome.validated["quantity"].sort().to_list() == [-1, 1, 1, 2, 3]
    assert_features(
        outcome,
        {
            # c1: 5, 7 and 9 Jan: frequency 2, recency 4, T 4, monetary_value
            # (30 + 12.25) / 2 = 21.125, revenue 84.75
            "c1": {
                "frequency": 2,
                "recency": 4,
                "T": 4,
                "monetary_value": 21.125,
                "total_revenue": 84.75,
                "n_transactions": 3,
            },
            # c2: 19.99 on 5 Jan, an untied refund of 5.00 on 9 Jan
            "c2": {
                "frequency": 0,
                "recency": 0,
                "T": 4,
                "monetary_value": 0.0,
                "total_revenue": 14.99,
                "n_transactions": 1,
            },
        },
    )
