"""Transaction sources against real servers: moto (S3 API over HTTP) and PostgreSQL.

The same day pulled from the landing folder, S3 (folders and pattern layouts) and PostgreSQL
(table and query, ADBC and psycopg2) must validate to identical transactions.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from clv_pipeline.errors import InputError
from clv_pipeline.paths import Layout
from clv_pipeline.schema import RAW_TRANSACTIONS
from clv_pipeline.sources.base import LandingSource, TransactionSource, day_window_utc
from clv_pipeline.sources.object_store import ObjectStoreSource
from clv_pipeline.sources.shape import ReadOptions
from clv_pipeline.sources.sql import Engine, SqlSource, has_adbc, quote_ident, redact, to_numbered
from clv_pipeline.validation.rules import ValidationRules
from clv_pipeline.validation.transactions import validate_day
from tests.integration.s3_server import S3, free_port, moto_endpoint, s3  # noqa: F401

DAY = date(2024, 3, 10)  # US daylight saving starts: a 23-hour day in New York
TZ = "America/New_York"  # window [2024-03-10T05:00Z, 2024-03-11T04:00Z)
NOW = datetime(2024, 3, 20, tzinfo=UTC)
BUCKET = "shop-exports"
COLUMNS = (
    "transaction_id",
    "customer_id",
    "occurred_at",
    "amount",
    "currency",
    "quantity",
    "status",
    "channel",
    "product_category",
)
# the day's rows, as a shop would export them (several offsets, both window edges)
DAY_ROWS = [
    ("t01", "c1", "2024-03-10T05:00:00Z", "10.00", "USD", "1", "completed", "web", "books"),
    ("t02", "c1", "2024-03-11T12:30:00+09:00", "25.50", "usd", "2", "completed", "app", "toys"),
    ("t03", "c2", "2024-03-11T03:59:59.999999Z", "7.25", "USD", None, "completed", "web", None),
    ("t04", "c2", "2024-03-10T01:30:00-05:00", "40", "EUR", "3", "completed", None, "books"),
    ("t05", "c3", "2024-03-10T18:00:00+01:00", "-5.50", "USD", "1", "refunded", "web", "books"),
    ("t06", "c3", "2024-03-10T20:15:00Z", "99.99", "USD", "1", "cancelled", "store", "games"),
    ("t07", "c4", "2024-03-10T23:59:00-04:00", "12.00", "USD", "4", "completed", "app", "toys"),
]
# neighbours that belong to other days in New York (only the database holds them)
OTHER_ROWS = [
    ("t00", "c1", "2024-03-10T04:59:59.999999Z", "1.00", "USD", "1", "completed", "web", "x"),
    ("t08", "c2", "2024-03-11T04:00:00Z", "2.00", "USD", "1", "completed", "web", "x"),
    ("t09", "c5", "2024-03-09T12:00:00Z", "3.00", "USD", "1", "completed", "web", "x"),
]
# the database names two columns differently: mapped back with column_map
DB_MAP = {"order_id": "transaction_id", "created_at": "occurred_at"}
WEIRD_TABLE = 'sales.Orders "2024"%'
ENGINES: tuple[Engine, ...] = ("adbc", "psycopg2") if has_adbc() else ("psycopg2",)


def day_frame() -> pl.DataFrame:
    return pl.DataFrame(DAY_ROWS, schema=list(COLUMNS), orient="row")


def csv_bytes(frame: pl.DataFrame) -> bytes:
    return frame.write_csv().encode()


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    """Typed parquet, as a warehouse export would be: timestamps, floats and integers."""
    typed = frame.with_columns(
        pl.col("occurred_at").str.to_datetime(time_zone="UTC", time_unit="us"),
        pl.col("amount").cast(pl.Float64),
        pl.col("quantity").cast(pl.Int64),
    )
    buffer = io.BytesIO()
    typed.write_parquet(buffer)
    return buffer.getvalue()


def validated(raw: pl.DataFrame) -> pl.DataFrame:
    result = validate_day(raw, day=DAY, rules=ValidationRules(timezone=TZ), now=NOW)
    assert result.quarantine.is_empty(), result.reasons()
    return result.clean.drop("_source_file").sort("transaction_id")


def assert_raw(frame: pl.DataFrame) -> None:
    assert frame.schema == RAW_TRANSACTIONS.schema


# ---------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def expected() -> pl.DataFrame:
    """The day validated from the landing folder: the reference every source must match."""
    return validated(
        day_frame().with_columns(
            pl.lit("expected").alias("_source_file"),
            pl.int_range(pl.len(), dtype=pl.Int64).alias("_source_row"),
        )
    )


@pytest.fixture
def landing(tmp_path: Path) -> LandingSource:
    layout = Layout(tmp_path)
    folder = layout.landing_day(DAY)
    folder.mkdir(parents=True)
    frame = day_frame()
    (folder / "a.csv").write_bytes(csv_bytes(frame.head(4)))
    (folder / "b.parquet").write_bytes(parquet_bytes(frame.tail(3)))
    return LandingSource(layout)


@pytest.fixture
def bucket(s3: S3) -> S3:  # noqa: F811 - pytest fixture injection
    """The bucket in both layouts, plus objects that must be ignored."""
    s3.client.create_bucket(Bucket=BUCKET)
    frame = day_frame()
    folder = f"shop/tx/date={DAY.isoformat()}"
    s3.put(BUCKET, f"{folder}/a.csv", csv_bytes(frame.head(4)))
    s3.put(BUCKET, f"{folder}/b.parquet", parquet_bytes(frame.tail(3)))
    s3.put(BUCKET, f"{folder}/_SUCCESS", b"")
    s3.put(BUCKET, f"{folder}/notes.txt", b"not data")
    s3.put(BUCKET, f"{folder}/old/ignored.csv", csv_bytes(frame))
    s3.put(BUCKET, "shop/tx/date=2024-03-11/a.csv", csv_bytes(frame))
    s3.put(BUCKET, f"shop/exports/orders_{DAY.isoformat()}.csv", csv_bytes(frame))
    s3.put(BUCKET, "shop/exports/orders_2024-03-11.csv", csv_bytes(frame))
    return s3


@pytest.fixture(scope="module")
def pg_url(postgres_url: str) -> Iterator[str]:
    """libpq URL of the session server, with the ``orders`` tables created once."""
    import psycopg2

    url = postgres_url.replace("postgresql+psycopg2://", "postgresql://")
    ddl = """
        CREATE TABLE {name} (
            order_id text PRIMARY KEY, customer_id text, created_at timestamptz NOT NULL,
            amount numeric(12, 2), currency text, quantity integer, status text,
            channel text, product_category text, note jsonb
        )"""
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS orders; DROP SCHEMA IF EXISTS sales CASCADE")
        cur.execute("CREATE SCHEMA sales")
        for name in ("orders", 'sales."Orders ""2024""%"'):
            cur.execute(ddl.format(name=name))  # no parameters: % is literal here
            cur.executemany(
                f"INSERT INTO {name.replace('%', '%%')} VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, '{{}}')",  # noqa: S608 - test DDL
                [*reversed(DAY_ROWS), *OTHER_ROWS],
            )
    conn.close()
    yield url
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS orders; DROP SCHEMA IF EXISTS sales CASCADE")
    conn.close()


@pytest.fixture
def pg_env(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(
        "CLV_TEST_SOURCE_URL", pg_url.replace("postgresql://", "postgresql+psycopg2://")
    )
    return "CLV_TEST_SOURCE_URL"


# ---------------------------------------------------------------------------------- helpers
def test_day_window_is_local_midnight_to_midnight_in_utc() -> None:
    start, end = day_window_utc(DAY, TZ)
    assert start == datetime(2024, 3, 10, 5, tzinfo=UTC)
    assert end - start == timedelta(hours=23)  # daylight saving starts that night
    assert day_window_utc(DAY, "UTC") == (
        datetime(2024, 3, 10, tzinfo=UTC),
        datetime(2024, 3, 11, tzinfo=UTC),
    )
    with pytest.raises(InputError, match="unknown timezone 'Mars/Olympus'"):
        day_window_utc(DAY, "Mars/Olympus")


def test_sql_text_helpers() -> None:
    assert quote_ident('Orders "2024"%') == '"Orders ""2024""%%"'
    with pytest.raises(InputError):
        quote_ident("")
    text, args = to_numbered(
        "a >= %(start)s AND a < %(end)s AND b LIKE 'x%%' AND c < %(end)s", {"start": 1, "end": 2}
    )
    assert text == "a >= $1 AND a < $2 AND b LIKE 'x%' AND c < $2"
    assert args == (1, 2)
    assert redact("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"


# ---------------------------------------------------------------------------------- equality
def test_landing_source(landing: LandingSource, expected: pl.DataFrame) -> None:
    assert isinstance(landing, TransactionSource)
    raw = landing.pull_day(DAY, timezone=TZ)
    assert_raw(raw)
    assert raw.height == len(DAY_ROWS)
    assert_frame_equal(validated(raw), expected)


def test_s3_folders_and_pattern_match_landing(
    bucket: S3, landing: LandingSource, expected: pl.DataFrame
) -> None:
    folders = ObjectStoreSource(BUCKET, "shop/tx", endpoint_url=bucket.endpoint_url)
    pattern = ObjectStoreSource(
        BUCKET, "/shop/", pattern="exports/orders_{date}.csv", endpoint_url=bucket.endpoint_url
    )
    assert isinstance(folders, TransactionSource)
    assert folders.describe().startswith(f"s3://{BUCKET}/shop/tx")
    assert "testing" not in folders.describe()

    raw = folders.pull_day(DAY, timezone=TZ)
    assert_raw(raw)
    assert raw.get_column("_source_file").unique(maintain_order=True).to_list() == [
        "shop/tx/date=2024-03-10/a.csv",
        "shop/tx/date=2024-03-10/b.parquet",
    ]
    # the raw rows are exactly the landing folder's, apart from the file name
    local = landing.pull_day(DAY, timezone=TZ)
    assert_frame_equal(raw.drop("_source_file"), local.drop("_source_file"))
    assert_frame_equal(validated(raw), expected)

    raw = pattern.pull_day(DAY, timezone=TZ)
    assert raw.get_column("_source_file").unique().to_list() == [
        "shop/exports/orders_2024-03-10.csv"
    ]
    assert_frame_equal(validated(raw), expected)
    # idempotent: the same day again is the same frame
    assert_frame_equal(pattern.pull_day(DAY, timezone=TZ), raw)


def test_s3_pattern_with_wildcard_and_date_format(bucket: S3) -> None:
    frame = day_frame()
    bucket.put(BUCKET, "dump/20240310/part-1.csv", csv_bytes(frame.head(2)))
    bucket.put(BUCKET, "dump/20240310/part-0.csv", csv_bytes(frame.tail(5)))
    source = ObjectStoreSource(
        BUCKET, pattern="dump/{date:%Y%m%d}/part-*.csv", endpoint_url=bucket.endpoint_url
    )
    raw = source.pull_day(DAY, timezone=TZ)
    assert raw.get_column("transaction_id").to_list() == [
        *frame["transaction_id"][2:],
        "t01",
        "t02",
    ]
    assert raw.get_column("_source_row").to_list() == [0, 1, 2, 3, 4, 0, 1]


def test_sql_sources_match_landing(pg_env: str, expected: pl.DataFrame) -> None:
    table = SqlSource(url_env=pg_env, table="orders", column_map=DB_MAP)
    assert isinstance(table, TransactionSource)
    assert table.describe().endswith(" orders")
    raw = table.pull_day(DAY, timezone=TZ)
    assert_raw(raw)
    assert raw.get_column("transaction_id").to_list() == [
        "t01",
        "t04",
        "t05",
        "t06",
        "t02",
        "t07",
        "t03",
    ]  # ordered by created_at then id; boundary rows t00 / t08 excluded
    assert raw.get_column("_source_file").unique().to_list() == ["postgresql:orders"]
    assert raw.get_column("_source_row").to_list() == list(range(7))
    assert_frame_equal(validated(raw), expected)
    assert_frame_equal(table.pull_day(DAY, timezone=TZ), raw)  # idempotent

    # psycopg2 server-side cursor, tiny batches: the same raw frame as ADBC
    fallback = SqlSource(
        url_env=pg_env, table="orders", column_map=DB_MAP, engine="psycopg2", batch_size=2
    )
    assert_frame_equal(fallback.pull_day(DAY, timezone=TZ), raw)

    # a schema-qualified table whose name needs quoting (and contains %)
    weird = SqlSource(url_env=pg_env, table=WEIRD_TABLE, column_map=DB_MAP)
    for engine in ENGINES:
        quoted = SqlSource(url_env=pg_env, table=WEIRD_TABLE, column_map=DB_MAP, engine=engine)
        assert_frame_equal(
            quoted.pull_day(DAY, timezone=TZ).drop("_source_file"), raw.drop("_source_file")
        )
    assert weird.source_name == f"postgresql:{WEIRD_TABLE}"

    # a query with bound window placeholders and a literal %
    query = (
        "SELECT order_id, customer_id, created_at, amount, currency, quantity, status, channel, "
        "product_category FROM orders WHERE created_at >= %(start)s AND created_at < %(end)s "
        "AND status NOT LIKE 'x%%'"
    )
    for engine in ENGINES:
        source = SqlSource(url_env=pg_env, query=query, column_map=DB_MAP, engine=engine)
        got = source.pull_day(DAY, timezone=TZ)
        assert got.get_column("_source_file").unique().to_list() == ["postgresql:query"]
        assert_frame_equal(got.drop("_source_file"), raw.drop("_source_file"))
    assert_frame_equal(validated(got), expected)


def test_empty_days_give_empty_frames(bucket: S3, pg_env: str) -> None:
    empty_day = date(2024, 1, 1)
    for source in (
        ObjectStoreSource(BUCKET, "shop/tx", endpoint_url=bucket.endpoint_url),
        ObjectStoreSource(
            BUCKET, "shop", pattern="exports/orders_{date}.csv", endpoint_url=bucket.endpoint_url
        ),
        SqlSource(url_env=pg_env, table="orders", column_map=DB_MAP),
        SqlSource(url_env=pg_env, table="orders", column_map=DB_MAP, engine="psycopg2"),
    ):
        raw = source.pull_day(empty_day, timezone=TZ)
        assert raw.is_empty()
        assert_raw(raw)


# ---------------------------------------------------------------------------------- errors
def test_s3_unreachable_endpoint(s3: S3) -> None:  # noqa: F811
    port = free_port()
    source = ObjectStoreSource(
        BUCKET,
        "shop/tx",
        endpoint_url=f"http://127.0.0.1:{port}",
        max_attempts=2,
        connect_timeout=1,
    )
    with pytest.raises(InputError, match=rf"127\.0\.0\.1:{port} unreachable after 2 attempt"):
        source.pull_day(DAY, timezone=TZ)


def test_s3_missing_bucket(s3: S3) -> None:  # noqa: F811
    source = ObjectStoreSource("no-such-bucket", "x", endpoint_url=s3.endpoint_url)
    with pytest.raises(InputError, match="bucket 'no-such-bucket' does not exist"):
        source.pull_day(DAY, timezone=TZ)


def test_s3_no_credentials(s3: S3, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    source = ObjectStoreSource(BUCKET, "shop/tx", endpoint_url=s3.endpoint_url)
    with pytest.raises(InputError, match="no S3 credentials: set AWS_ACCESS_KEY_ID"):
        source.pull_day(DAY, timezone=TZ)


def test_s3_rejected_credentials() -> None:
    """moto accepts any key, so the 403 comes from botocore's stubber."""
    import boto3
    from botocore.stub import Stubber

    source = ObjectStoreSource(BUCKET, "shop/tx", endpoint_url="http://127.0.0.1:9")
    fake = {"aws_access_key_id": "bad", "aws_secret_access_key": "bad"}
    client = boto3.session.Session(region_name="us-east-1", **fake).client(
        "s3", endpoint_url="http://127.0.0.1:9"
    )
    with Stubber(client) as stub:
        stub.add_client_error(
            "list_objects_v2",
            service_error_code="InvalidAccessKeyId",
            service_message="The AWS Access Key Id you provided does not exist in our records.",
            http_status_code=403,
        )
        with pytest.raises(InputError, match="access denied \\(InvalidAccessKeyId"):
            source.day_keys(DAY, client=client)


def test_s3_unreadable_object_names_the_key(bucket: S3) -> None:
    bucket.put(BUCKET, "bad/date=2024-03-10/x.parquet", b"not parquet at all")
    bucket.put(BUCKET, "bad/date=2024-03-11/y.csv", b"id;customer\n1;2\n")
    source = ObjectStoreSource(BUCKET, "bad", endpoint_url=bucket.endpoint_url)
    with pytest.raises(
        InputError, match=rf"s3://{BUCKET}/bad/date=2024-03-10/x.parquet: cannot read"
    ):
        source.pull_day(DAY, timezone=TZ)
    with pytest.raises(InputError, match=r"y\.csv: missing required column.*--delimiter"):
        source.pull_day(date(2024, 3, 11), timezone=TZ)


@pytest.mark.parametrize("engine", ENGINES)
def test_sql_errors(engine: Engine, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def pull(url: str | None, **kwargs: object) -> None:
        if url is None:
            monkeypatch.delenv("CLV_TEST_SOURCE_URL", raising=False)
        else:
            monkeypatch.setenv("CLV_TEST_SOURCE_URL", url)
        kwargs.setdefault("table", "orders")
        kwargs.setdefault("column_map", DB_MAP)
        source = SqlSource(url_env="CLV_TEST_SOURCE_URL", engine=engine, **kwargs)  # type: ignore[arg-type]
        source.pull_day(DAY, timezone=TZ)

    port = free_port()
    with pytest.raises(
        InputError, match=rf"127\.0\.0\.1:{port}/dagster unreachable after 2 attempt"
    ):
        pull(f"postgresql://clv@127.0.0.1:{port}/dagster", connect_attempts=2)
    wrong_user = pg_url.replace("://clv@", "://intruder:hunter2@")
    with pytest.raises(InputError, match="login rejected") as info:
        pull(wrong_user)
    assert "hunter2" not in str(info.value) and 'role "intruder" does not exist' in str(info.value)
    with pytest.raises(InputError, match="table 'no_such_table' does not exist"):
        pull(pg_url, table="no_such_table")
    with pytest.raises(InputError, match="timestamp column 'paid_at' not found"):
        pull(pg_url, timestamp_column="paid_at")
    with pytest.raises(InputError, match="timestamp column 'status' has type text"):
        pull(pg_url, timestamp_column="status")
    with pytest.raises(InputError, match="missing required column.*transaction_id"):
        pull(pg_url, column_map={"created_at": "occurred_at"})
    with pytest.raises(InputError, match='column does not exist.*"paid_at"'):
        pull(
            pg_url,
            table=None,
            query="SELECT paid_at FROM orders WHERE created_at >= %(start)s "
            "AND created_at < %(end)s",
        )
    with pytest.raises(InputError, match="environment variable CLV_TEST_SOURCE_URL is not set"):
        pull(None)


def test_sql_configuration_errors() -> None:
    with pytest.raises(InputError, match="exactly one of table"):
        SqlSource(table="a", query="b")
    with pytest.raises(InputError, match=r"lacks the %\(end\)s placeholder"):
        SqlSource(query="SELECT * FROM t WHERE ts >= %(start)s")


def test_every_source_reads_deliveries_with_the_data_homes_read_options(
    pg_url: str, pg_env: str, bucket: S3
) -> None:
    """The read options (order lines, amount expression, decimal comma, delimiter) apply to
    PostgreSQL and S3 deliveries as to files: the lines of an order become one transaction,
    also when they span fetch batches."""
    import psycopg2

    conn = psycopg2.connect(pg_url)
    conn.autocommit = True
    start = datetime(2024, 3, 10, 12, tzinfo=UTC)
    lines = [  # (order, line, customer, at, quantity, unit price)
        ("A", 1, "c1", start, 2, "2.55"),
        ("A", 2, "c1", start - timedelta(minutes=5), 1, "10.00"),
        ("A", 3, "c1", start, 3, "0.10"),
        ("B", 1, "c2", start + timedelta(hours=1), 1, "7.00"),
        ("R", 1, "c2", start + timedelta(hours=2), -1, "7.00"),
    ]
    with conn.cursor() as cur:
        cur.execute(
            "DROP TABLE IF EXISTS order_lines; CREATE TABLE order_lines (order_no text, "
            "line int, cust text, ts timestamptz, qty int, price numeric(10, 2))"
        )
        cur.executemany("INSERT INTO order_lines VALUES (%s, %s, %s, %s, %s, %s)", lines)
    conn.close()
    options = ReadOptions(
        column_map={"cust": "customer_id", "ts": "occurred_at", "qty": "quantity"},
        amount="qty * price",
        order_id="order_no",
    )
    expected = [
        ("A", "15.4", "6", "2024-03-10T11:55:00+00:00", None),  # 5.1 + 10 + 0.3
        ("B", "7", "1", "2024-03-10T13:00:00+00:00", None),
        ("R", "-7", "-1", "2024-03-10T14:00:00+00:00", "R"),
    ]
    columns = ["transaction_id", "amount", "quantity", "occurred_at", "refund_of"]
    for engine in ENGINES:
        source = SqlSource(
            url_env=pg_env, table="order_lines", options=options, engine=engine, batch_size=2
        )
        raw = source.pull_day(DAY, timezone="UTC")
        assert raw.select(columns).rows() == expected, engine
    # a European CSV on S3: semicolons, decimal commas, day-first dates
    text = "Bestellung;Kunde;Datum;Betrag\nE1;k1;10.03.2024 12:00;1.234,50\nE2;k2;10.03.2024;-3,5\n"
    bucket.put(BUCKET, "eu/date=2024-03-10/orders.csv", ("\ufeff" + text).encode())
    european = ReadOptions(
        column_map={
            "Bestellung": "transaction_id",
            "Kunde": "customer_id",
            "Datum": "occurred_at",
            "Betrag": "amount",
        },
        delimiter=";",
        decimal_comma=True,
        day_first=True,
    )
    source = ObjectStoreSource(
        BUCKET, prefix="eu", endpoint_url=bucket.endpoint_url, options=european
    )
    raw = source.pull_day(DAY, timezone=TZ)
    assert raw.select("transaction_id", "amount", "occurred_at").rows() == [
        ("E1", "1234.50", "2024-03-10T12:00:00"),
        ("E2", "-3.5", "2024-03-10T00:00:00"),
    ]
