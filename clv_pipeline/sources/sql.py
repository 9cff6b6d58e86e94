"""Raw transactions pulled from PostgreSQL, one event day at a time.

The day's window ``[start, end)`` in UTC (see :func:`clv_pipeline.sources.base.day_window_utc`) is
pushed down as **bound parameters** -- never formatted into the SQL text -- and identifiers are
quoted with PostgreSQL's rule (``"name"``, embedded ``"`` doubled), after checking them against
the catalog. Rows are ordered by the timestamp column then ``transaction_id``, so pulling a day
twice gives the same frame.

Reading: with ADBC (``adbc-driver-postgresql``, Arrow record batches straight from libpq's binary
protocol) when installed, else a psycopg2 server-side cursor read with ``fetchmany(batch_size)``.
Either way memory holds one batch plus the day's result, and progress is logged per batch.

The connection URL is read from the environment variable *named* by ``url_env`` so secrets stay
out of configuration files; SQLAlchemy-style ``postgresql+psycopg2://`` URLs are accepted.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import polars as pl
import pyarrow as pa

from clv_pipeline.errors import InputError
from clv_pipeline.schema import RAW_TRANSACTIONS
from clv_pipeline.sources.base import day_window_utc, empty_raw
from clv_pipeline.sources.shape import ReadOptions, to_raw, to_strings

log = logging.getLogger(__name__)

Engine = Literal["auto", "adbc", "psycopg2"]
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")
_UNREACHABLE = (
    "connection refused",
    "timeout expired",
    "timed out",
    "could not connect",
    "no route to host",
    "network is unreachable",
    "server closed the connection",
    "could not translate host name",
)
_CREDENTIALS = (
    "password authentication failed",
    "authentication failed",
    "no password supplied",
    "role",
    "pg_hba.conf",
    "permission denied for database",
)


def quote_ident(name: str) -> str:
    """Quote one identifier the way PostgreSQL does (``"name"``, ``"`` doubled).

    The result is also safe in a psycopg2 ``pyformat`` query (``%`` is doubled).

    Raises
    ------
    clv_pipeline.errors.InputError
        Empty name or a NUL character.
    """
    if not name or "\x00" in name:
        raise InputError(f"invalid SQL identifier {name!r}")
    return '"' + name.replace('"', '""').replace("%", "%%") + '"'


def qualified(table: str) -> str:
    """Quote ``table`` or ``schema.table`` (split on the first dot)."""
    return ".".join(quote_ident(part) for part in table.split(".", 1))


def to_numbered(query: str, params: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """Rewrite ``%(name)s`` placeholders to ``$1, $2, ...`` (and ``%%`` to ``%``) for ADBC."""
    order: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "%"
        if name not in order:
            order.append(name)
        return f"${order.index(name) + 1}"

    text = _PLACEHOLDER.sub(number, query)
    missing = [n for n in order if n not in params]
    if missing:
        raise InputError(f"SQL source: query uses unknown placeholder(s) {missing}")
    return text, tuple(params[n] for n in order)


def libpq_url(url: str) -> str:
    """``postgresql+driver://`` (SQLAlchemy) to ``postgresql://`` (libpq)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgresql", "postgres"):
        raise InputError(
            f"SQL source: unsupported URL scheme {parts.scheme!r} (only postgresql:// for now)"
        )
    return urlunsplit(("postgresql", *parts[1:]))


def redact(url: str) -> str:
    """The URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, *parts[2:]))


@dataclass(frozen=True)
class SqlSource:
    """A PostgreSQL table (or query) of transactions with a timestamp column.

    Parameters
    ----------
    url_env
        Name of the environment variable holding the connection URL, e.g.
        ``postgresql://reader:secret@db:5432/shop``.
    table
        ``table`` or ``schema.table``; exclusive with ``query``.
    query
        A ``SELECT`` returning the source columns, filtered on the day with the placeholders
        ``%(start)s`` and ``%(end)s`` (UTC ``timestamptz`` bounds, end exclusive); write ``%%`` for a
        literal ``%``. It is wrapped as ``SELECT * FROM (query) ... ORDER BY ts, transaction_id``.
    timestamp_column
        Source column holding the event time (``timestamptz``, ``timestamp`` read as UTC, or
        ``date``); default: the column mapped to ``occurred_at`` (else ``occurred_at``).
    column_map
        Renames ``source_name -> contract_name``.
    batch_size
        Rows per ``fetchmany`` with psycopg2 (ADBC chooses its own batch size).
    engine
        ``"auto"`` (ADBC when installed, else psycopg2), ``"adbc"`` or ``"psycopg2"``.
    connect_attempts
        Attempts when the server is unreachable (refused / timeout), with 0.5 s, 1 s, ... between.
    connect_timeout
        Seconds per connection attempt.
    """

    url_env: str = "CLV_SOURCE_URL"
    table: str | None = None
    query: str | None = None
    timestamp_column: str | None = None
    column_map: Mapping[str, str] = field(default_factory=dict)
    options: ReadOptions = field(default_factory=ReadOptions)
    batch_size: int = 100_000
    engine: Engine = "auto"
    connect_attempts: int = 3
    connect_timeout: int = 5

    def __post_init__(self) -> None:
        if (self.table is None) == (self.query is None):
            raise InputError("SQL source: set exactly one of table (CLV_SOURCE_TABLE) or query")
        if self.query is not None:
            for name in ("start", "end"):
                if f"%({name})s" not in self.query:
                    raise InputError(
                        f"SQL source: query lacks the %({name})s placeholder; filter the day with "
                        "WHERE ts >= %(start)s AND ts < %(end)s"
                    )
        if self.batch_size < 1:
            raise InputError("SQL source: batch_size must be positive")

    # ------------------------------------------------------------------ public API
    @property
    def source_name(self) -> str:
        """``_source_file`` of every row: ``postgresql:<table>`` or ``postgresql:query``."""
        return f"postgresql:{self.table or 'query'}"

    def describe(self) -> str:
        """Server and table, password removed (``$url_env`` when the variable is unset)."""
        raw = os.environ.get(self.url_env)
        where = redact(libpq_url(raw)) if raw else f"${self.url_env}"
        return f"{where} {self.table or 'query'}"

    def pull_day(self, day: date, *, timezone: str) -> pl.DataFrame:
        """The rows whose timestamp falls on ``day`` in ``timezone``, ordered, as raw strings.

        Raises
        ------
        clv_pipeline.errors.InputError
            URL variable unset, server unreachable, credentials rejected, table or column
            missing, or the query failed.
        """
        start, end = day_window_utc(day, timezone)
        url = self._url()
        with self._connect(url) as conn:
            sql = self._select(conn)
            params = {"start": start, "end": end}
            log.info(
                "%s: pulling %s [%s, %s)", self.describe(), day, start.isoformat(), end.isoformat()
            )
            frames: list[pl.DataFrame] = []
            rows = 0
            for number, batch in enumerate(conn.stream(sql, params, self.batch_size), start=1):
                frame = pl.from_arrow(batch)
                assert isinstance(frame, pl.DataFrame)  # noqa: S101 - a batch is a frame
                rows += frame.height
                frames.append(frame)
                log.info(
                    "%s: batch %d: %d rows (%d so far)",
                    self.source_name,
                    number,
                    frame.height,
                    rows,
                )
        log.info("%s: %s: %d rows", self.source_name, day, rows)
        if not frames:
            return empty_raw()
        # shaped once for the whole day: the lines of an order may span fetch batches
        delivered = pl.concat([to_strings(f) for f in frames], how="vertical")
        return to_raw(delivered, self._options, source=self.source_name)

    @property
    def _options(self) -> ReadOptions:
        return self.options.mapped(self.column_map)

    # ------------------------------------------------------------------ internals
    def _url(self) -> str:
        raw = os.environ.get(self.url_env, "").strip()
        if not raw:
            raise InputError(
                f"SQL source: environment variable {self.url_env} is not set; it must hold the "
                "connection URL, e.g. postgresql://user:password@host:5432/db"
            )
        return libpq_url(raw)

    def _source_of(self, contract: str) -> str:
        """The source column renamed to ``contract`` by ``column_map`` (else the same name)."""
        if contract == "transaction_id" and self.options.order_id:
            return self.options.order_id
        for source, target in self._options.column_map.items():
            if target == contract:
                return source
        return contract

    @property
    def _ts(self) -> str:
        return self.timestamp_column or self._source_of("occurred_at")

    def _select(self, conn: _Connection) -> str:
        order = f"{quote_ident(self._ts)}, {quote_ident(self._source_of('transaction_id'))}"
        if self.query is not None:
            body = self.query.strip().rstrip(";")
            return f"SELECT * FROM ({body}) AS clv_source ORDER BY {order}"  # noqa: S608 - idents quoted, values bound
        assert self.table is not None  # noqa: S101 - __post_init__ guarantees it
        columns = conn.columns(self.table)
        if not columns:
            raise InputError(
                f"{self.source_name}: table {self.table!r} does not exist (or is not visible to "
                "this user); set CLV_SOURCE_TABLE to schema.table"
            )
        self._check_columns(columns)
        extra = {self.options.order_id} if self.options.order_id else set()
        if self.options.amount:
            extra |= set(pl.sql_expr(self.options.amount).meta.root_names())
        mapping = self._options.column_map
        wanted = [c for c in columns if mapping.get(c, c) in _CONTRACT or c in extra]
        select = ", ".join(quote_ident(c) for c in wanted)
        ts = quote_ident(self._ts)
        return (
            f"SELECT {select} FROM {qualified(self.table)} "  # noqa: S608 - idents quoted, values bound
            f"WHERE {ts} >= %(start)s AND {ts} < %(end)s ORDER BY {order}"
        )

    def _check_columns(self, columns: Mapping[str, str]) -> None:
        have = ", ".join(columns)
        if self._ts not in columns:
            raise InputError(
                f"{self.source_name}: timestamp column {self._ts!r} not found; columns: {have}"
            )
        kind = columns[self._ts]
        if not kind.startswith(("timestamp", "date")):
            raise InputError(
                f"{self.source_name}: timestamp column {self._ts!r} has type {kind}; it must be "
                "timestamptz, timestamp or date"
            )
        mapping = self._options.column_map
        mapped = {mapping.get(c, c) for c in columns}
        if self.options.order_id in columns:
            mapped.add("transaction_id")
        if self.options.amount:
            mapped.add("amount")
        missing = [
            c for c in ("transaction_id", "customer_id", "occurred_at", "amount") if c not in mapped
        ]
        if missing:
            names = ", ".join(f"{c} (source column {self._source_of(c)!r})" for c in missing)
            raise InputError(
                f"{self.source_name}: missing required column(s) {names}; columns: {have}. "
                "Map names with the column map."
            )

    def _connect(self, url: str) -> _Connection:
        engine = self.engine
        if engine == "auto":
            engine = "adbc" if has_adbc() else "psycopg2"
        elif engine == "adbc" and not has_adbc():
            raise InputError(
                f"{self.source_name}: engine 'adbc' needs the adbc-driver-postgresql package "
                "(or use engine 'psycopg2')"
            )
        opener = _AdbcConnection if engine == "adbc" else _Psycopg2Connection
        delay = 0.5
        for attempt in range(1, max(1, self.connect_attempts) + 1):
            try:
                return opener(url, self.connect_timeout, self.source_name)
            except InputError:
                raise
            except Exception as exc:  # driver-specific error classes; classified by message
                text = _first_line(exc)
                low = str(exc).lower()
                where = redact(url)
                if any(s in low for s in _UNREACHABLE) and attempt < self.connect_attempts:
                    log.warning("%s unreachable (attempt %d): %s", where, attempt, text)
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise _connect_error(where, exc, attempt) from exc
        raise AssertionError("unreachable")  # pragma: no cover


_CONTRACT = {c for c in RAW_TRANSACTIONS.names if not c.startswith("_")}


def has_adbc() -> bool:
    try:
        import adbc_driver_postgresql.dbapi  # noqa: F401
    except ImportError:
        return False
    return True


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__


def _connect_error(where: str, exc: Exception, attempts: int) -> InputError:
    text, low = _first_line(exc), str(exc).lower()
    if any(s in low for s in _UNREACHABLE):
        return InputError(f"PostgreSQL at {where} unreachable after {attempts} attempt(s): {text}")
    if "database" in low and "does not exist" in low:
        return InputError(f"PostgreSQL at {where}: database does not exist: {text}")
    if any(s in low for s in _CREDENTIALS):
        return InputError(
            f"PostgreSQL at {where}: login rejected (check user/password in the URL): {text}"
        )
    return InputError(f"PostgreSQL at {where}: cannot connect: {text}")


def _query_error(source: str, exc: Exception) -> InputError:
    code = getattr(exc, "pgcode", None) or getattr(exc, "sqlstate", None) or ""
    text = _first_line(exc)
    what = {
        "42P01": "table or view does not exist",
        "42703": "column does not exist",
        "42501": "permission denied",
        "42601": "SQL syntax error",
        "3F000": "schema does not exist",
        "57014": "query cancelled (statement timeout?)",
    }.get(str(code), "query failed")
    return InputError(f"{source}: {what}: {text}")


_CATALOG = (
    "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) "
    "FROM pg_catalog.pg_attribute a "
    "WHERE a.attrelid = pg_catalog.to_regclass(%(rel)s) AND a.attnum > 0 AND NOT a.attisdropped "
    "ORDER BY a.attnum"
)
_SESSION = ("SET TIME ZONE 'UTC'", "SET default_transaction_read_only = on")


class _Connection:
    """What :class:`SqlSource` needs from a driver."""

    source: str

    def columns(self, table: str) -> dict[str, str]:
        """``{column: type}`` of ``table`` (empty when it does not exist)."""
        raise NotImplementedError

    def stream(
        self, sql: str, params: Mapping[str, Any], batch_size: int
    ) -> Iterator[pa.RecordBatch | pa.Table]:
        """Run ``sql`` (``%(name)s`` placeholders) and yield Arrow batches."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> _Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _AdbcConnection(_Connection):
    def __init__(self, url: str, timeout: int, source: str) -> None:
        import adbc_driver_postgresql.dbapi as adbc

        self.source = source
        parts = urlsplit(url)
        if "connect_timeout=" not in parts.query:
            query = "&".join(q for q in (parts.query, f"connect_timeout={timeout}") if q)
            url = urlunsplit((*parts[:3], query, parts.fragment))
        self._conn = adbc.connect(url, autocommit=True)
        try:
            with self._conn.cursor() as cur:
                for statement in _SESSION:
                    cur.execute(statement)
        except Exception:
            self._conn.close()
            raise

    def columns(self, table: str) -> dict[str, str]:
        text, args = to_numbered(_CATALOG, {"rel": qualified(table).replace("%%", "%")})
        try:
            with self._conn.cursor() as cur:
                cur.execute(text, args)
                return {str(name): str(kind) for name, kind in cur.fetchall()}
        except Exception as exc:
            raise _query_error(self.source, exc) from exc

    def stream(
        self, sql: str, params: Mapping[str, Any], batch_size: int
    ) -> Iterator[pa.RecordBatch | pa.Table]:
        text, args = to_numbered(sql, params)
        cur = self._conn.cursor()
        try:
            try:
                cur.execute(text, args)
                reader = cur.fetch_record_batch()
            except Exception as exc:
                raise _query_error(self.source, exc) from exc
            for batch in reader:
                if batch.num_rows:
                    yield _storage(batch)
        finally:
            cur.close()

    def close(self) -> None:
        self._conn.close()


class _Psycopg2Connection(_Connection):
    def __init__(self, url: str, timeout: int, source: str) -> None:
        import psycopg2

        self.source = source
        self._conn = psycopg2.connect(url, connect_timeout=timeout)
        try:
            with self._conn.cursor() as cur:
                cur.execute(_SESSION[0])
            self._conn.commit()
            self._conn.set_session(readonly=True)
        except Exception:
            self._conn.close()
            raise

    def columns(self, table: str) -> dict[str, str]:
        try:
            with self._conn.cursor() as cur:
                cur.execute(_CATALOG, {"rel": qualified(table).replace("%%", "%")})
                return {str(name): str(kind) for name, kind in cur.fetchall()}
        except Exception as exc:
            raise _query_error(self.source, exc) from exc
        finally:
            self._conn.rollback()

    def stream(
        self, sql: str, params: Mapping[str, Any], batch_size: int
    ) -> Iterator[pa.RecordBatch | pa.Table]:
        cur = self._conn.cursor(name="clv_source_pull")  # server-side: rows stay on the server
        cur.itersize = batch_size
        try:
            try:
                cur.execute(sql, params)
                rows = cur.fetchmany(batch_size)
            except Exception as exc:
                raise _query_error(self.source, exc) from exc
            names = [d.name for d in cur.description or ()]
            while rows:
                yield _rows_to_arrow(names, rows)
                rows = cur.fetchmany(batch_size)
        finally:
            cur.close()
            self._conn.rollback()

    def close(self) -> None:
        self._conn.close()


def _storage(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Unwrap extension columns (ADBC returns e.g. ``numeric`` as ``arrow.opaque`` text)."""
    arrays = [
        col.storage if isinstance(col.type, pa.BaseExtensionType) else col for col in batch.columns
    ]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _rows_to_arrow(names: list[str], rows: list[tuple[Any, ...]]) -> pa.Table:
    """Python rows from psycopg2 to Arrow: aware timestamps in UTC, decimals as text."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return pa.table({name: _column(values) for name, values in zip(names, columns, strict=True)})


def _column(values: tuple[Any, ...]) -> pa.Array:
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, datetime) and sample.tzinfo is not None:
        return pa.array(
            [v.astimezone(UTC) if v is not None else None for v in values],
            type=pa.timestamp("us", tz="UTC"),
        )
    if isinstance(sample, Decimal):
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())
    try:
        return pa.array(values)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())
