"""How a delivery is read and shaped into ``raw_transactions``: the data home's read options.

Every source (landing folder, S3, PostgreSQL, ``clv import``, ``clv validate``) reads a delivery
with the same :class:`ReadOptions`, kept in the data home's ``[source]`` settings, in this order:

1. **read** the file: ``delimiter``, ``encoding`` (a byte-order mark and blanks around header
   names are removed);
2. **row digest**: a hash of every delivered column of the row (``_row_digest``), so only rows
   identical in *every* column are ever treated as re-deliveries;
3. **amount expression** (``amount = "Quantity * UnitPrice"``, ``"amount_cents / 100"``), evaluated
   on the delivered column names with polars' SQL expression parser;
4. **renames** (``column_map``, ``--column SRC=DEST``): each must match a column;
5. **numbers and dates**: ``decimal_comma`` (``1.234,56``), ``date_format`` (strftime, or ``unix``
   for epoch seconds) or ``day_first`` rewrite the values as plain decimals and ISO-8601 text;
   values that do not parse are kept as delivered, so validation quarantines them with the value;
6. **order lines** (``order_id``): the lines of one order become one transaction (the order id is
   its ``transaction_id``; amount and quantity summed exactly, the earliest line's timestamp);
   an order with a negative total is a refund tied to its own order id (``refund_of``).

Everything here is a pure function over polars frames of strings.
"""

from __future__ import annotations

import difflib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

from clv_pipeline.errors import InputError
from clv_pipeline.parse import parse_timestamps
from clv_pipeline.schema import INPUT_COLUMNS, MONEY, RAW_TRANSACTIONS, REQUIRED_INPUT, conform

__all__ = [
    "DAY_FIRST_FORMATS",
    "ReadOptions",
    "guess_date_format",
    "read_delivery",
    "shape_rows",
    "to_raw",
]

_ISO_AWARE = "%Y-%m-%dT%H:%M:%S%.f%:z"
_ISO_NAIVE = "%Y-%m-%dT%H:%M:%S%.f"
_SCALAR = (pl.String, pl.Categorical, pl.Enum)
_TIMES = ("%H:%M:%S%.f", "%H:%M:%S", "%H:%M")
DAY_FIRST_FORMATS: tuple[str, ...] = tuple(
    f"%d{sep}%m{sep}%Y{time}"
    for sep in ("-", "/", ".")
    for time in (*(f" {t}" for t in _TIMES), "")
)
MONTH_FIRST_FORMATS: tuple[str, ...] = tuple(
    f.replace("%d", "%@").replace("%m", "%d").replace("%@", "%m") for f in DAY_FIRST_FORMATS
)
_CONTRACT = tuple(c.name for c in INPUT_COLUMNS)
_LINE = "__line"


@dataclass(frozen=True)
class ReadOptions:
    """How the data home reads every delivery (the ``[source]`` settings; flags of ``clv import``).

    Parameters
    ----------
    column_map
        Renames ``source name -> contract name``.
    delimiter
        CSV field separator (one character; ``\\t`` or ``tab`` for tabs).
    decimal_comma
        Numbers are written ``1.234,56`` (comma decimals, dot or space thousands).
    encoding
        Text encoding of CSV files (``utf8``, ``latin-1``, ``cp1252``, ...).
    date_format
        strftime format of ``occurred_at`` (e.g. ``%d-%m-%Y %H:%M``), or ``unix`` / ``%s`` for
        epoch seconds; empty: ISO-8601.
    day_first
        Dates are written day first (``31/12/2010 10:03``, ``31.12.2010``, ``31-12-2010``).
    amount
        Expression of delivered columns giving ``amount``, e.g. ``Quantity * UnitPrice``.
    order_id
        Delivered column naming the order of each line: lines become one transaction per order.
    naive_timezone
        Timezone of timestamps without an offset (to find an order's earliest line).
    timezone
        The pipeline's timezone: the calendar days a refund delivered with its order is told
        apart by.
    """

    column_map: Mapping[str, str] = field(default_factory=dict)
    delimiter: str = ","
    decimal_comma: bool = False
    encoding: str = "utf8"
    date_format: str = ""
    day_first: bool = False
    amount: str = ""
    order_id: str = ""
    naive_timezone: str = "UTC"
    timezone: str = "UTC"

    @property
    def separator(self) -> str:
        text = {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(self.delimiter, self.delimiter)
        if len(text) != 1:
            raise InputError(
                f"delimiter {self.delimiter!r} must be one character (e.g. ';', '|' or '\\t')"
            )
        return text

    def mapped(self, column_map: Mapping[str, str] | None) -> ReadOptions:
        """These options with ``column_map``'s renames added (they win over the saved ones)."""
        if not column_map:
            return self
        return replace(self, column_map={**self.column_map, **column_map})

    def date_formats(self) -> tuple[str, ...]:
        """Formats tried before ISO-8601 (none by default)."""
        if self.date_format:
            fmt = "%s" if self.date_format.lower() in {"unix", "epoch", "%s"} else self.date_format
            return (fmt,)
        return DAY_FIRST_FORMATS if self.day_first else ()


# --------------------------------------------------------------------------- reading


def read_delivery(path: Path, options: ReadOptions) -> pl.DataFrame:
    """Read a delivered CSV or parquet file as it is: every column, original names (trimmed).

    Raises :class:`InputError` naming the file, the problem and the option that fixes it.
    """
    suffix = path.suffix.lower()
    try:
        if suffix in {".csv", ".txt", ".tsv"}:
            frame = _read_csv(path, options)
        elif suffix == ".parquet":
            frame = pl.read_parquet(path)
        else:
            raise InputError(f"{path}: unsupported file type {suffix!r} (use .csv or .parquet)")
    except InputError:
        raise
    except Exception as exc:  # polars/arrow raise many types; the person needs file + reason
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"{path}: cannot read as {suffix[1:]}: {first}{_csv_hint(path, options)}"
        ) from exc
    return frame.rename(_clean_names(frame.columns))


def _read_csv(path: Path, options: ReadOptions) -> pl.DataFrame:
    encoding = options.encoding.lower().replace("_", "-")
    if encoding in {"utf8", "utf-8", "utf-8-sig", "utf8-sig"}:
        source: Path | io.BytesIO = path
        try:
            with path.open("rb") as handle:
                handle.read(1 << 20).decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < (1 << 20) - 4:
                raise InputError(
                    f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#x} at offset "
                    f"{exc.start}); set the file's encoding, e.g. --encoding latin-1 or "
                    "--encoding cp1252"
                ) from None
    else:
        try:
            text = path.read_bytes().decode(options.encoding)
        except LookupError:
            raise InputError(
                f"{path}: unknown encoding {options.encoding!r} (e.g. utf8, latin-1, cp1252)"
            ) from None
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not {options.encoding} text: {exc}") from None
        source = io.BytesIO(text.encode("utf-8"))
    return pl.read_csv(
        source,
        infer_schema=False,
        separator=options.separator,
        encoding="utf8",
        truncate_ragged_lines=False,
    )


def _csv_hint(path: Path, options: ReadOptions) -> str:
    """' (the header has 9 ';': use --delimiter ';')' when another separator is likely."""
    if path.suffix.lower() == ".parquet":
        return ""
    try:
        with path.open("rb") as handle:
            header = handle.readline().decode("utf-8", errors="replace")
    except OSError:
        return ""
    counts = {sep: header.count(sep) for sep in (";", "\t", "|", ",") if sep != options.separator}
    sep, count = max(counts.items(), key=lambda item: item[1])
    if count and count >= header.count(options.separator):
        shown = "\\t" if sep == "\t" else sep
        return f" (the header has {count} {shown!r}: use --delimiter '{shown}')"
    return ""


def _clean_names(columns: Sequence[str]) -> dict[str, str]:
    return {c: c.strip().lstrip("\ufeff").strip() for c in columns}


# --------------------------------------------------------------------------- shaping


def to_raw(
    frame: pl.DataFrame, options: ReadOptions, *, source: str, source_file: str | None = None
) -> pl.DataFrame:
    """``frame`` as delivered -> ``raw_transactions`` rows (contract columns as strings,
    ``_source_file``, ``_source_row``, ``_row_digest``)."""
    shaped = shape_rows(frame, options, source=source)
    return conform(
        shaped.with_columns(pl.lit(source_file or source).alias("_source_file")), RAW_TRANSACTIONS
    )


def shape_rows(frame: pl.DataFrame, options: ReadOptions, *, source: str) -> pl.DataFrame:
    """Apply the read options (module docstring, steps 2-6) to a delivered frame.

    Returns the contract columns (strings; absent optional ones null) plus ``_source_row`` (the
    row in ``frame``, an order's first line) and ``_row_digest``.
    """
    lines = shape_lines(frame, options, source=source)
    if options.order_id:
        return aggregate_orders(order_parts(lines, options), options)
    return lines.rename({_LINE: "_source_row"})


def shape_lines(frame: pl.DataFrame, options: ReadOptions, *, source: str) -> pl.DataFrame:
    """Steps 2-5 of the module docstring: one row per delivered row (``__line`` = its number)."""
    frame = frame.rename(_clean_names(frame.columns))
    renames = _renames(frame.columns, options, source=source)
    check_types(frame.rename(renames), source=source, epoch=options.date_formats() == ("%s",))
    text = to_strings(frame)
    shaped = text.with_columns(
        pl.struct(pl.all()).hash(seed=0).alias("_row_digest"),
        pl.int_range(pl.len(), dtype=pl.Int64).alias(_LINE),
    )
    if options.amount:
        amount = _amount_expression(options.amount, text, options, source=source)
        shaped = shaped.with_columns(amount.alias("__amount"))
    if (
        options.order_id
        and "transaction_id" in shaped.columns
        and options.order_id != "transaction_id"
    ):
        shaped = shaped.drop("transaction_id")  # the line id; the order id takes its place
    shaped = shaped.rename(renames)
    if options.amount:
        shaped = shaped.drop("amount", strict=False).rename({"__amount": "amount"})
    _check_required(shaped.columns, options, source=source)
    if options.decimal_comma and not options.amount:
        shaped = shaped.with_columns(_decimal_text(pl.col("amount")).alias("amount"))
    if options.decimal_comma and "quantity" in shaped.columns:
        shaped = shaped.with_columns(_decimal_text(pl.col("quantity")).alias("quantity"))
    if options.date_formats():
        shaped = shaped.with_columns(_iso_text(pl.col("occurred_at"), options.date_formats()))
    shaped = shaped.select(
        *(
            pl.col(c) if c in shaped.columns else pl.lit(None, pl.String).alias(c)
            for c in _CONTRACT
        ),
        pl.col(_LINE),
        pl.col("_row_digest"),
    )
    return shaped


def _renames(columns: Sequence[str], options: ReadOptions, *, source: str) -> dict[str, str]:
    """The renames to apply, after checking every mapping matches a column."""
    mapping = dict(options.column_map)
    if options.order_id:
        if options.order_id not in columns and "transaction_id" not in columns:
            raise InputError(
                f"{source}: --order-id {options.order_id}: {_no_column(options.order_id, columns)}"
            )
        taken = [
            old
            for old, new in mapping.items()
            if new == "transaction_id" and old != options.order_id
        ]
        if taken:
            raise InputError(
                f"{source}: both --order-id {options.order_id} and --column {taken[0]}="
                "transaction_id name the transaction id; keep one"
            )
        if options.order_id in columns:
            mapping[options.order_id] = "transaction_id"
    if options.amount:
        taken = [old for old, new in mapping.items() if new == "amount"]
        if taken:
            raise InputError(
                f"{source}: both --amount {options.amount!r} and --column {taken[0]}=amount give "
                "the amount; keep one"
            )
    renames = {}
    for old, new in mapping.items():
        if old in columns:
            renames[old] = new
        elif new not in columns:  # a file already renamed (an older import) is fine
            raise InputError(
                f"{source}: the column mapping {old}={new} matches no column: "
                f"{_no_column(old, columns)}"
            )
    clash = [new for new in renames.values() if new in columns and new not in renames]
    if clash:
        raise InputError(
            f"{source}: renaming would duplicate column(s) {', '.join(clash)} (the file already "
            "has them; map only one column to each contract name)"
        )
    return renames


def _no_column(name: str, columns: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(columns), n=1, cutoff=0.5)
    lowered = [c for c in columns if c.lower() == name.lower()]
    near = lowered or close
    hint = f"did you mean {near[0]!r}? " if near else ""
    shown = ", ".join(columns[:15]) + (" ..." if len(columns) > 15 else "")
    return f"no column {name!r} in the file ({hint}columns: {shown}){_delimiter_hint(columns)}"


def _delimiter_hint(columns: Sequence[str]) -> str:
    """' (the header looks separated by ';': use --delimiter ';')' for a one-column read."""
    plain = [c for c in columns if not c.startswith("_")]
    if len(plain) != 1:
        return ""
    for sep, shown in ((";", ";"), ("\t", "\\t"), ("|", "|")):
        if sep in plain[0]:
            return f" (the header looks separated by {shown!r}: use --delimiter '{shown}')"
    return ""


def _check_required(columns: Sequence[str], options: ReadOptions, *, source: str) -> None:
    missing = [c for c in REQUIRED_INPUT if c not in columns]
    if not missing:
        return
    found = ", ".join(c for c in columns if not c.startswith("_")) or "(none)"
    hint = _delimiter_hint(columns)
    fixes = {
        "amount": "--column SRC=amount or --amount 'Quantity * UnitPrice'",
        "transaction_id": "--column SRC=transaction_id, or --order-id SRC for order lines",
    }
    fix = "; ".join(fixes.get(c, f"--column SRC={c}") for c in missing)
    raise InputError(
        f"{source}: missing required column(s) {', '.join(missing)}; found: {found}{hint}. Map them with {fix}."
    )


def check_types(frame: pl.DataFrame, *, source: str, epoch: bool = False) -> None:
    """Fail on schema drift: a contract column whose type cannot hold its values.

    Integer ``occurred_at`` values are accepted only as epoch seconds (``date_format = unix``).
    """
    numeric = lambda d: d.is_numeric() or isinstance(d, pl.Decimal)  # noqa: E731
    accepted = {
        "transaction_id": lambda d: isinstance(d, _SCALAR) or d.is_integer(),
        "customer_id": lambda d: isinstance(d, _SCALAR) or d.is_integer(),
        "occurred_at": lambda d: (
            isinstance(d, (*_SCALAR, pl.Datetime, pl.Date)) or (epoch and d.is_numeric())
        ),
        "amount": lambda d: isinstance(d, _SCALAR) or numeric(d),
        "quantity": lambda d: isinstance(d, _SCALAR) or numeric(d),
    }
    for name, ok in accepted.items():
        if name in frame.columns and not ok(frame.schema[name]) and frame.schema[name] != pl.Null:
            raise InputError(
                f"{source}: schema drift: column {name} has type {frame.schema[name]}, which the "
                "contract does not accept (see docs/data_contract.md)"
                + ("; epoch seconds: set --date-format unix" if name == "occurred_at" else "")
            )


def to_strings(frame: pl.DataFrame) -> pl.DataFrame:
    """Cast every column to String; timestamps become ISO-8601 (with offset when tz-aware)."""
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.Datetime):
            fmt = _ISO_AWARE if dtype.time_zone else _ISO_NAIVE
            exprs.append(col.dt.to_string(fmt).alias(name))
        elif dtype == pl.String:
            exprs.append(col)
        elif isinstance(dtype, pl.List | pl.Struct | pl.Array | pl.Object):
            exprs.append(pl.lit(None, pl.String).alias(name))
        else:
            exprs.append(col.cast(pl.String).alias(name))
    return frame.select(exprs)


def _decimal_text(text: pl.Expr) -> pl.Expr:
    """``1.234,56`` -> ``1234.56`` (dots, spaces and apostrophes as thousands separators)."""
    return (
        text.str.strip_chars()
        .str.replace_all(r"[.\s\u00a0\u202f']", "")
        .str.replace(",", ".", literal=True)
    )


def _number(text: pl.Expr, decimal_comma: bool) -> pl.Expr:
    cleaned = _decimal_text(text) if decimal_comma else text.str.strip_chars()
    return cleaned.cast(pl.Float64, strict=False)


def _amount_expression(
    expression: str, text: pl.DataFrame, options: ReadOptions, *, source: str
) -> pl.Series:
    """``amount`` from an expression of delivered columns, as exact decimal text.

    A row where a referenced value is present but not a number gets that value as its amount
    (so validation quarantines it as "amount not a number" and shows it).
    """
    try:
        expr = pl.sql_expr(expression)
        names = expr.meta.root_names()
    except Exception as exc:  # polars' SQL parser raises several types
        raise InputError(f"--amount {expression!r} is not a valid expression: {exc}") from None
    for name in names:
        if name not in text.columns:
            raise InputError(f"{source}: --amount {expression!r}: {_no_column(name, text.columns)}")
    numbers = text.select(_number(pl.col(n), options.decimal_comma).alias(n) for n in names)
    try:
        value = numbers.select(expr.cast(pl.Float64).alias("v")).to_series()
    except Exception as exc:
        raise InputError(f"{source}: --amount {expression!r} cannot be computed: {exc}") from None
    bad = pl.lit(None, pl.String)
    for name in reversed(names):
        present = pl.col(name).str.strip_chars().str.len_chars() > 0
        unparsed = present & _number(pl.col(name), options.decimal_comma).is_null()
        bad = pl.when(unparsed).then(pl.lit(f"{name}=") + pl.col(name)).otherwise(bad)
    finite = value.is_finite().fill_null(False)
    exact = _plain(pl.lit(value.set(~finite, None).cast(MONEY)).cast(pl.String))
    return text.select(pl.coalesce(bad, exact)).to_series()


def _plain(decimal_text: pl.Expr) -> pl.Expr:
    """``15.300000000`` -> ``15.3``, ``10.000000000`` -> ``10``."""
    return (
        pl.when(decimal_text.str.contains(".", literal=True))
        .then(decimal_text.str.strip_chars_end("0").str.strip_chars_end("."))
        .otherwise(decimal_text)
    )


def _iso_text(text: pl.Expr, formats: Sequence[str]) -> pl.Expr:
    """Values in one of ``formats`` rewritten as ISO-8601 text; others kept as delivered."""
    stripped = text.str.strip_chars()
    parsed = []
    for fmt in formats:
        if fmt == "%s":
            seconds = stripped.cast(pl.Float64, strict=False)
            stamp = pl.from_epoch(
                (seconds * 1_000_000).round(0).cast(pl.Int64, strict=False), time_unit="us"
            )
            parsed.append(stamp.dt.to_string(_ISO_NAIVE) + "+00:00")
        elif "%z" in fmt or "%:z" in fmt or "%#z" in fmt:
            stamp = stripped.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC")
            parsed.append(stamp.dt.to_string(_ISO_AWARE))
        else:
            stamp = stripped.str.to_datetime(fmt, strict=False, time_unit="us")
            parsed.append(stamp.dt.to_string(_ISO_NAIVE))
    return pl.coalesce([*parsed, text]).alias("occurred_at")


def guess_date_format(values: Sequence[str | None]) -> str | None:
    """The option that reads every value (``--day-first`` or ``--date-format ...``), or None.

    Up to 2,000 distinct values spread over ``values`` are tried with the day-first and the
    month-first formats; when both read all of them, both are named (the sample has no day
    after the 12th).
    """
    distinct = pl.Series("v", values, dtype=pl.String).drop_nulls().unique(maintain_order=True)
    if not len(distinct):
        return None
    step = max(1, len(distinct) // 2000)
    frame = distinct.gather_every(step).to_frame()

    def reading_all(formats: Sequence[str]) -> str | None:
        for fmt in formats:
            iso = frame.select(_iso_text(pl.col("v"), (fmt,)).alias("iso")).to_series()
            if parse_timestamps(iso).is_not_null().all():
                return fmt
        return None

    day_first, month_first = reading_all(DAY_FIRST_FORMATS), reading_all(MONTH_FIRST_FORMATS)
    if day_first and month_first:
        return (
            f"--day-first (or --date-format '{month_first}' if months come first: the values "
            "seen have no day after the 12th)"
        )
    if day_first:
        return "--day-first"
    if month_first:
        return f"--date-format '{month_first}'"
    if reading_all(("%s",)):
        return "--date-format unix"
    return None


# --------------------------------------------------------------------------- order lines


def order_parts(lines: pl.DataFrame, options: ReadOptions) -> pl.DataFrame:
    """Order lines with their order's part: ``__part`` is null for the order itself, or the day
    of a later day's lines that add up to a negative total (a refund delivered with its order).

    Adds ``__ts`` (UTC instant), ``__day`` (its date in ``options.timezone``), ``__amount``
    (exact) and ``__qty``; the order id (``transaction_id``) is trimmed.
    """
    stamps = parse_timestamps(
        lines.get_column("occurred_at"), naive_timezone=options.naive_timezone
    )
    lines = lines.with_columns(
        pl.col("transaction_id").str.strip_chars(),
        stamps.alias("__ts"),
        pl.col("amount")
        .str.strip_chars()
        .cast(pl.Float64, strict=False)
        .cast(MONEY)
        .alias("__amount"),
        pl.col("quantity").str.strip_chars().cast(pl.Float64, strict=False).alias("__qty"),
    ).with_columns(pl.col("__ts").dt.convert_time_zone(options.timezone).dt.date().alias("__day"))
    order = pl.col("transaction_id")
    later = pl.col("__day") > pl.col("__day").min().over(order)
    refunding = pl.col("__amount").sum().over(order, "__day") < 0
    return lines.with_columns(
        pl.when(later & refunding & order.is_not_null()).then(pl.col("__day")).alias("__part")
    )


def aggregate_orders(lines: pl.DataFrame, options: ReadOptions) -> pl.DataFrame:
    """One row per order part (see :func:`order_parts`): exact sums, earliest line, first values.

    Lines without an amount (an export that carries the total on an order's first line only) add
    nothing; a line whose amount (or quantity) is present but not a number gives its order that
    value, so the whole order is quarantined with it; an order without any amount gets none
    ("amount missing"). An order (part) with a negative total is a refund of its own order id
    (``refund_of``).
    """
    present = lambda c: pl.col(c).str.strip_chars().str.len_chars().fill_null(0) > 0  # noqa: E731
    no_id, keyed = lines.filter(~present("transaction_id")), lines.filter(present("transaction_id"))
    bad_amount = pl.col("amount").filter(pl.col("__amount").is_null() & present("amount")).first()
    bad_qty = pl.col("quantity").filter(pl.col("__qty").is_null() & present("quantity")).first()
    amount_sum = pl.when(pl.col("__amount").is_not_null().any()).then(pl.col("__amount").sum())
    qty_sum = pl.when(pl.col("__qty").is_not_null().any()).then(pl.col("__qty").sum())
    first = lambda c: pl.col(c).filter(pl.col(c).is_not_null()).first()  # noqa: E731
    taken = {"transaction_id", "amount", "quantity", "occurred_at"}
    orders = (
        keyed.group_by("transaction_id", "__part", maintain_order=True)
        .agg(
            pl.coalesce(bad_amount, _plain(amount_sum.cast(pl.String))).alias("amount"),
            pl.coalesce(bad_qty, qty_sum.cast(pl.String).str.replace(r"\.0+$", "")).alias(
                "quantity"
            ),
            pl.coalesce(
                pl.col("occurred_at").sort_by("__ts", nulls_last=True).first(),
                pl.col("occurred_at").first(),
            ).alias("occurred_at"),
            *(first(c) for c in _CONTRACT if c not in taken),
            pl.col(_LINE).min(),
            pl.col("_row_digest").sort().implode().hash(seed=0).alias("_row_digest"),
        )
        .with_columns(
            pl.when(
                pl.col("refund_of").is_null()
                & (pl.col("amount").cast(pl.Float64, strict=False) < 0)
            )
            .then(pl.col("transaction_id"))
            .otherwise(pl.col("refund_of"))
            .alias("refund_of")
        )
    )
    columns = [*_CONTRACT, _LINE, "_row_digest"]
    return (
        pl.concat([orders.select(columns), no_id.select(columns)], how="vertical")
        .sort(_LINE)
        .rename({_LINE: "_source_row"})
    )
