"""A corpus of bad deliveries: each gives quarantine rows with reasons or a clear failure.

Every case lands in its own partition day of one data home; a good snapshot of each day is
published first, so a failing case must leave it byte-identical. All days are validated in one
batch (GX costs about a second per call), exactly as a catch-up run does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from clv_pipeline import pipeline
from clv_pipeline.config import load_config
from clv_pipeline.errors import DayFailures, InputError
from clv_pipeline.paths import Layout
from clv_pipeline.validation.rules import ValidationRules
from clv_pipeline.validation.suite import suite_reasons
from clv_pipeline.validation.transactions import PARSE_REASONS

START = date(2024, 4, 1)
GOOD = 40  # good rows delivered with every row-level case (bad share stays under 5%)
HEADER = "transaction_id,customer_id,occurred_at,amount,currency,status\n"


def good_rows(day: date, n: int = GOOD, prefix: str = "g") -> str:
    return "".join(
        f"{prefix}{day:%m%d}-{i},c{i},{day}T10:00:00Z,{i + 1}.5,USD,completed\n" for i in range(n)
    )


@dataclass
class Case:
    name: str
    write: Callable[[Path, date], None]
    fails: str | None = None  # fragment of the partition failure message
    reasons: dict[str, int] = field(default_factory=dict)  # expected quarantine reasons
    valid: int = GOOD


def csv(
    body: Callable[[date], str], *, header: str = HEADER, encoding: str = "utf-8"
) -> Callable[[Path, date], None]:
    def write(folder: Path, day: date) -> None:
        (folder / "drop.csv").write_bytes((header + body(day)).encode(encoding))

    return write


def raw_bytes(name: str, data: bytes) -> Callable[[Path, date], None]:
    def write(folder: Path, day: date) -> None:
        (folder / name).write_bytes(data)

    return write


def parquet(frame: Callable[[date], pl.DataFrame]) -> Callable[[Path, date], None]:
    def write(folder: Path, day: date) -> None:
        frame(day).write_parquet(folder / "drop.parquet")

    return write


def with_good(bad: Callable[[date], str]) -> Callable[[Path, date], None]:
    return csv(lambda d: good_rows(d) + bad(d))


NOT_NUMBER = "amount not a number"
OFF_DAY = "occurred_at not on the partition day (UTC)"
CASES = [
    Case(
        "malformed_csv_quotes",
        csv(lambda d: f'x1,c1,"{d}T10:00:00Z,5,USD,completed\n'),
        fails="cannot read as csv",
    ),
    Case(
        "wrong_delimiter",
        csv(lambda d: f"x1;c1;{d};5\n", header="transaction_id;customer_id;occurred_at;amount\n"),
        fails="--delimiter ';'",
    ),
    Case(
        "missing_column",
        csv(lambda d: f"{d:%m%d}x1,c1,{d}\n", header="transaction_id,customer_id,occurred_at\n"),
        fails="missing required column(s) amount",
    ),
    Case("empty_file", raw_bytes("drop.csv", b""), fails="cannot read as csv"),
    Case("header_only", csv(lambda d: ""), fails="no rows delivered"),
    Case(
        "non_utf8_bytes",
        csv(lambda d: f"{d:%m%d}x1,J\xf6rg,{d},5,EUR,paid\n", encoding="latin-1"),
        fails="not UTF-8 text (byte 0xf6",
    ),
    Case(
        "ragged_row",
        csv(lambda d: good_rows(d) + f"{d:%m%d}x1,c1,{d},5,USD,paid,extra,fields\n"),
        fails="cannot read as csv",
    ),
    Case(
        "parquet_not_parquet",
        raw_bytes("drop.parquet", b"transaction_id,customer_id\n"),
        fails="cannot read as parquet",
    ),
    Case(
        "parquet_nested_amount",
        parquet(
            lambda d: pl.DataFrame(
                {
                    "transaction_id": ["x"],
                    "customer_id": ["c"],
                    "occurred_at": [str(d)],
                    "amount": [[1.0]],
                }
            )
        ),
        fails="schema drift: column amount",
    ),
    Case(
        "parquet_bool_timestamp",
        parquet(
            lambda d: pl.DataFrame(
                {
                    "transaction_id": ["x"],
                    "customer_id": ["c"],
                    "occurred_at": [True],
                    "amount": [1.0],
                }
            )
        ),
        fails="schema drift: column occurred_at",
    ),
    Case(
        "parquet_epoch_integers",
        parquet(
            lambda d: pl.DataFrame(
                {
                    "transaction_id": ["x", "y"],
                    "customer_id": ["c", "c"],
                    "occurred_at": [1712000000, 1712000001],
                    "amount": [1.0, 2.0],
                }
            )
        ),
        fails="schema drift: column occurred_at has type Int64",
    ),
    Case(
        "mostly_garbage",
        csv(lambda d: good_rows(d, 4) + "".join(f"b{i},c,{d},??,USD,paid\n" for i in range(11))),
        fails="more than both CLV_MAX_BAD_ROW_SHARE=5% and CLV_MAX_BAD_ROWS=10",
    ),
    Case(
        # one order without a customer on a 14-order day: 7% > 5%, but 1 <= CLV_MAX_BAD_ROWS
        "small_day_one_bad_row",
        csv(lambda d: good_rows(d, 13) + f"{d:%m%d}nc,,{d}T12:00:00Z,5,USD,paid\n"),
        reasons={"customer_id missing": 1},
        valid=13,
    ),
    Case(
        "conflicting_duplicate_ids",
        with_good(
            lambda d: (
                f"{d:%m%d}dup,c1,{d}T11:00:00Z,5,USD,paid\n{d:%m%d}dup,c1,{d}T11:00:00Z,6,USD,paid\n"
            )
        ),
        reasons={"duplicate transaction_id with different values on the same day": 2},
    ),
    Case(
        "exact_redelivery",
        with_good(lambda d: f"{d:%m%d}same,c1,{d}T11:00:00Z,5,USD,paid\n" * 3),
        valid=GOOD + 1,
    ),
    Case(
        "nan_amount",
        with_good(lambda d: f"{d:%m%d}x1,c1,{d},nan,USD,paid\n"),
        reasons={"amount missing or not a number": 1},
    ),
    Case(
        "inf_amount",
        with_good(lambda d: f"{d:%m%d}x1,c1,{d},inf,USD,paid\n"),
        reasons={"amount not finite or outside [-1e+06, 1e+06]": 1},
    ),
    Case(
        "huge_amount",
        with_good(lambda d: f"{d:%m%d}x1,c1,{d},1e12,USD,paid\n"),
        reasons={"amount not finite or outside [-1e+06, 1e+06]": 1},
    ),
    Case(
        "negative_amount_is_a_refund",
        with_good(lambda d: f"{d:%m%d}x1,c1,{d},-5,USD,refunded\n"),
        valid=GOOD + 1,
    ),
    Case(
        "zero_amount_is_kept_as_ignored",
        with_good(lambda d: f"{d:%m%d}x1,c1,{d},0,USD,paid\n"),
        valid=GOOD + 1,
    ),
    Case(
        "future_date",
        with_good(lambda d: f"{d:%m%d}x1,c1,2099-01-01T00:00:00Z,5,USD,paid\n"),
        reasons={OFF_DAY: 1, "occurred_at in the future": 1},
    ),
    Case(
        "far_past_date",
        with_good(lambda d: f"{d:%m%d}x1,c1,1970-01-01,5,USD,paid\n"),
        reasons={OFF_DAY: 1},
    ),
    Case(
        "mixed_time_zones",
        with_good(
            lambda d: (
                f"{d:%m%d}z1,c1,{d}T10:00:00+02:00,5,USD,paid\n{d:%m%d}z2,c1,{d}T10:00:00,5,USD,paid\n{d:%m%d}z3,c1,{d}T23:30:00-05:00,5,USD,paid\n"
            )
        ),
        reasons={OFF_DAY: 1},
        valid=GOOD + 2,
    ),
    Case(
        "date_formats_unparseable",
        with_good(lambda d: f"{d:%m%d}x1,c1,{d:%d/%m/%Y},5,USD,paid\n"),
        reasons={PARSE_REASONS["occurred_at"]: 1},
    ),
    Case(
        "blank_occurred_at",
        with_good(lambda d: f"{d:%m%d}x1,c1,,5,USD,paid\n"),
        reasons={"occurred_at missing or not an ISO-8601 timestamp or date": 1},
    ),
    Case(
        "missing_transaction_id",
        with_good(lambda d: f",c1,{d},5,USD,paid\n"),
        reasons={"transaction_id missing": 1},
    ),
    Case(
        "whitespace_ids",
        with_good(lambda d: f"   ,   ,{d},5,USD,paid\n"),
        reasons={"transaction_id missing": 1, "customer_id missing": 1},
    ),
    Case(
        "thousands_separator",
        with_good(lambda d: f'x1,c1,{d},"1,234.50",USD,paid\n'),
        reasons={NOT_NUMBER: 1},
    ),
    Case(
        "currency_symbol_in_amount",
        with_good(lambda d: f"{d:%m%d}x1,c1,{d},$12,USD,paid\n"),
        reasons={NOT_NUMBER: 1},
    ),
    Case(
        "unknown_status",
        with_good(lambda d: f"{d:%m%d}x1,c1,{d},5,USD,teleported\n"),
        reasons={"status not a known value": 1},
    ),
    Case(
        "bad_currency_code",
        with_good(lambda d: f"{d:%m%d}x1,c1,{d},5,dollars,paid\n"),
        reasons={"currency not a three-letter code": 1},
    ),
    Case(
        "quantity_not_integer",
        csv(
            lambda d: (
                "".join(f"q{i},c{i},{d},5,2\n" for i in range(GOOD)) + f"{d:%m%d}x1,c1,{d},5,two\n"
            ),
            header="transaction_id,customer_id,occurred_at,amount,quantity\n",
        ),
        reasons={"quantity not an integer": 1},
    ),
    Case(
        "unicode_ids",
        with_good(lambda d: f"{d:%m%d}tx-ü-🛒,客户-1,{d},5,EUR,paid\n"),
        valid=GOOD + 1,
    ),
    Case(
        "extra_columns",
        csv(
            lambda d: "".join(f"e{i},c{i},{d},5,USD,paid,x,y\n" for i in range(GOOD)),
            header=HEADER.strip() + ",coupon,notes\n",
        ),
    ),
    Case(
        "utf8_bom_and_crlf",
        lambda folder, d: (folder / "drop.csv").write_bytes(
            ("\ufeff" + HEADER + good_rows(d)).replace("\n", "\r\n").encode()
        ),
    ),
    Case(
        "id_from_an_earlier_day",
        with_good(lambda d: f"g{START:%m%d}-0,c0,{d},1.5,USD,paid\n"),
        reasons={"transaction_id already delivered on an earlier day": 1},
    ),
    Case(
        "stray_non_data_file",
        lambda folder, d: (
            csv(lambda x: good_rows(x))(folder, d),
            (folder / "README.txt").write_text("hi"),
        ),
    ),
]


@dataclass
class Outcome:
    error: str | None
    published_before: bytes | None = field(repr=False)
    published_after: bytes | None = field(repr=False)
    quarantine: pl.DataFrame | None
    valid: int | None


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    home = tmp_path_factory.mktemp("corpus")
    config = load_config(home, environ={}, overrides={"validation.on_empty_day": "fail"})
    layout = Layout(home)
    days = {case.name: START + timedelta(days=i + 1) for i, case in enumerate(CASES)}
    # a good, published snapshot of the reference day and of every case day
    for day in [START, *days.values()]:
        folder = layout.landing_day(day)
        folder.mkdir(parents=True)
        (folder / "good.csv").write_text(HEADER + good_rows(day, 3, prefix="old"))
        pipeline.pull_raw_transactions(config, day)
    (layout.landing_day(START) / "good.csv").write_text(HEADER + good_rows(START))
    pipeline.pull_raw_transactions(config, START)
    pipeline.validate_days(config, [START, *days.values()])
    before = {
        n: layout.partition_file("validated_transactions", "date", d).read_bytes()
        for n, d in days.items()
    }
    errors: dict[str, str] = {}
    pulled = []
    for case in CASES:
        folder = layout.landing_day(days[case.name])
        (folder / "good.csv").unlink()
        case.write(folder, days[case.name])
        try:
            pipeline.pull_raw_transactions(config, days[case.name])
            pulled.append(days[case.name])
        except InputError as exc:
            errors[case.name] = str(exc)
    try:
        pipeline.validate_days(config, pulled)
    except DayFailures as exc:  # each failed day with its own error, the others published
        for case in CASES:
            if days[case.name] in exc.failures:
                errors[case.name] = exc.failures[days[case.name]]
    result = {}
    for case in CASES:
        day = days[case.name]
        qpath = layout.quarantine_file("transactions", day)
        vpath = layout.partition_file("validated_transactions", "date", day)
        after = vpath.read_bytes()
        result[case.name] = Outcome(
            errors.get(case.name),
            before[case.name],
            after,
            pl.read_parquet(qpath) if qpath.exists() else None,
            pl.read_parquet(vpath).height,
        )
    return result


def test_every_quarantine_reason_is_exercised_by_the_corpus(outcomes: dict[str, Outcome]) -> None:
    """Each expectation of the suite and each parse rule rejects a row somewhere in the corpus:
    a new rule without a bad-input case, or a rule that silently stopped firing, fails here."""
    seen = {
        reason
        for got in outcomes.values()
        if got.quarantine is not None
        for text in got.quarantine.get_column("reason").to_list()
        for reason in text.split("; ")
    }
    expected = set(suite_reasons(ValidationRules())) | set(PARSE_REASONS.values())
    assert sorted(expected - seen) == []


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, outcomes: dict[str, Outcome]) -> None:
    got = outcomes[case.name]
    if case.fails:
        assert got.error is not None and case.fails in got.error, got.error
        assert "Traceback" not in got.error
        assert got.published_after == got.published_before, "a failed day must not change BI tables"
        return
    assert got.error is None, got.error
    found = {}
    if got.quarantine is not None:
        found = pl.Series(got.quarantine["reason"].str.split("; ").explode()).value_counts().rows()
        found = dict(found)
        assert got.quarantine.get_column("_source_row").null_count() == 0
    assert found == case.reasons
    assert got.valid == case.valid
