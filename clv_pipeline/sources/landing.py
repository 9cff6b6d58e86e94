"""The landing folder: import historical exports split by event date, and read one day back.

``import_files`` is idempotent: the rows of each source file go, as delivered (every column,
original names, as strings), to ``landing/transactions/date=D/import-<digest>.parquet``, where the
digest covers the file's bytes. Importing the same file again first removes what its previous
import wrote (it may have split the rows differently, e.g. with another ``--date-format``), so the
landing folder never holds a file's rows twice. Reading a day back applies the data home's read
options (:mod:`clv_pipeline.sources.shape`), like every other source. Overlapping rows from
*different* files are removed later: identical rows as re-deliveries, others by the
``transaction_id`` checks of validation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import polars as pl

from clv_pipeline.errors import InputError
from clv_pipeline.parquet import IO_WORKERS, map_in_threads, write_parquet_atomic
from clv_pipeline.parse import BAD_TIMESTAMP_REASON, event_date, parse_timestamps
from clv_pipeline.paths import Layout, data_files
from clv_pipeline.schema import RAW_TRANSACTIONS, conform
from clv_pipeline.sources.shape import (
    ReadOptions,
    aggregate_orders,
    guess_date_format,
    order_parts,
    read_delivery,
    shape_lines,
    to_raw,
    to_strings,
)

NO_DATE = "occurred_at missing"
BAD_DATE = BAD_TIMESTAMP_REASON


def undated_reason(stamp: pl.Expr) -> pl.Expr:
    """Why a row whose ``stamp`` gave no event date has no day: missing, or unreadable."""
    present = stamp.str.strip_chars().str.len_chars().fill_null(0) > 0
    return pl.when(present).then(pl.lit(BAD_DATE)).otherwise(pl.lit(NO_DATE)).alias("reason")


@dataclass
class ImportReport:
    """What ``clv import`` did: lines read, transactions they make, days, what did not land."""

    files: int = 0
    rows: int = 0  # lines read
    transactions: int = 0  # after --order-id: orders
    days: set[date] = field(default_factory=set)
    unparseable_rows: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # lines that did not land, per reason
    examples: dict[str, list[str]] = field(default_factory=dict)
    date_hints: list[str] = field(default_factory=list)  # how to read the dates that failed
    hints: list[str] = field(default_factory=list)  # other advice (order lines, ...)
    written: list[Path] = field(default_factory=list)

    @property
    def first_day(self) -> date | None:
        return min(self.days) if self.days else None

    @property
    def last_day(self) -> date | None:
        return max(self.days) if self.days else None

    @property
    def landed(self) -> int:
        return self.rows - self.unparseable_rows


def file_digest(path: Path) -> str:
    """Content hash of a delivered file (names its landing files)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _options(
    options: ReadOptions | None, column_map: Mapping[str, str] | None, naive_timezone: str | None
) -> ReadOptions:
    options = (options or ReadOptions()).mapped(column_map)
    if naive_timezone:
        options = replace(options, naive_timezone=naive_timezone)
    return options


def import_files(
    paths: Iterable[Path],
    layout: Layout,
    *,
    options: ReadOptions | None = None,
    column_map: Mapping[str, str] | None = None,
    timezone: str = "UTC",
    naive_timezone: str | None = None,
    on_file: Callable[[Path, int], None] | None = None,
) -> ImportReport:
    """Split each file by event date (in ``timezone``) into the landing folder.

    The event date of a row is the date of its ``occurred_at`` read with ``options``; with
    ``order_id``, every line of an order goes to the day of the order's earliest line. Rows
    without a date (missing or unparseable ``occurred_at``) are written to
    ``quarantine/import/<file>-<digest>.parquet`` with a reason, counted per reason with examples.
    """
    report = ImportReport()
    options = _options(options, column_map, naive_timezone)
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        frame = read_delivery(path, options)
        shaped, days = _shape_with_days(frame, options, source=str(path), timezone=timezone)
        digest = file_digest(path)
        for old in layout.landing.glob(f"date=*/import-{digest}.parquet"):
            old.unlink()
        lines = to_strings(frame).with_columns(days.alias("__day"))
        undated = lines.filter(pl.col("__day").is_null()).drop("__day")
        target = layout.quarantine / "import" / f"{path.stem}-{digest}.parquet"
        if undated.height:
            _record_undated(report, undated, options, path=path, target=target)
        else:
            target.unlink(missing_ok=True)
        parts: list[tuple[Path, pl.DataFrame]] = []
        for (day,), part in lines.filter(pl.col("__day").is_not_null()).group_by(
            "__day", maintain_order=True
        ):
            assert isinstance(day, date)  # noqa: S101 - group key type narrowing
            parts.append((layout.landing_day(day) / f"import-{digest}.parquet", part.drop("__day")))
            report.days.add(day)
        report.written += map_in_threads(
            lambda item: write_parquet_atomic(item[1], item[0]), parts, workers=IO_WORKERS
        )
        hint = _order_line_hint(shaped, options, path=path)
        if hint:
            report.hints.append(hint)
        report.files += 1
        report.rows += frame.height
        report.transactions += shaped.height
        if on_file is not None:
            on_file(path, frame.height)
    if report.days:
        record_import_timezone(layout, timezone)
    return report


IMPORT_STATE = "_import.json"  # in the landing folder: the timezone imports split days in


def record_import_timezone(layout: Layout, timezone: str) -> None:
    """Remember the timezone ``clv import`` split the history into days with."""
    target = layout.landing / IMPORT_STATE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"timezone": timezone}) + "\n")


def check_import_timezone(layout: Layout, timezone: str) -> None:
    """Fail when the landing days were imported in another timezone than the partitions'
    (``CLV_TIMEZONE`` / ``timezone`` changed on an existing home): every row would be "not on
    the partition day", and no rerun can fix it; a re-import splits the history again."""
    path = layout.landing / IMPORT_STATE
    try:
        recorded = json.loads(path.read_text()).get("timezone")
    except (OSError, ValueError):
        return
    if recorded and recorded != timezone:
        raise InputError(
            f"the timezone changed: the landing days under {layout.landing} were imported with "
            f"timezone {recorded}, the partitions now use {timezone} (timezone / CLV_TIMEZONE), "
            f"so their rows would not be on the partition day; a rerun cannot fix that. Either "
            f"re-import the exports with the new timezone: `clv import FILE... --home "
            f"{layout.home}` (it splits the days again), then `clv rerun --failed --home "
            f"{layout.home}`; or go back to CLV_TIMEZONE={recorded}"
        )


def _shape_with_days(
    frame: pl.DataFrame, options: ReadOptions, *, source: str, timezone: str
) -> tuple[pl.DataFrame, pl.Series]:
    """The delivery shaped (as :func:`shape_rows`) and the event date of every delivered line:
    the lines of an order (part) share the day of its earliest line."""
    options = replace(options, timezone=timezone)
    lines = shape_lines(frame, options, source=source)
    if not options.order_id:
        stamps = parse_timestamps(
            lines.get_column("occurred_at"), naive_timezone=options.naive_timezone
        )
        days = stamps.to_frame("ts").select(event_date("ts", timezone=timezone)).to_series()
        return lines.rename({"__line": "_source_row"}), days.alias("day")
    parts = order_parts(lines, options)
    keyed = pl.col("transaction_id").str.len_chars().fill_null(0) > 0
    days = parts.select(
        pl.when(keyed)
        .then(pl.col("__day").min().over("transaction_id", "__part"))
        .otherwise(pl.col("__day"))
        .alias("day")
    ).to_series()
    return aggregate_orders(parts, options), days


def _record_undated(
    report: ImportReport,
    undated: pl.DataFrame,
    options: ReadOptions,
    *,
    path: Path,
    target: Path,
) -> None:
    stamp_column = next(
        (
            old
            for old, new in options.column_map.items()
            if new == "occurred_at" and old in undated.columns
        ),
        "occurred_at",
    )
    values = (
        undated.get_column(stamp_column)
        if stamp_column in undated.columns
        else pl.Series([None] * undated.height, dtype=pl.String)
    )
    present = values.str.strip_chars().str.len_chars().fill_null(0) > 0
    reason = values.to_frame("v").select(undated_reason(pl.col("v"))).to_series()
    write_parquet_atomic(
        undated.with_columns(pl.lit(str(path)).alias("_source_file"), reason), target
    )
    report.unparseable_rows += undated.height
    for name, count in reason.value_counts(sort=True).iter_rows():
        report.reasons[name] = report.reasons.get(name, 0) + int(count)
    bad = values.filter(present)
    if len(bad):
        shown = report.examples.setdefault(BAD_DATE, [])
        shown.extend(
            f"{stamp_column}={v!r}" for v in bad.unique(maintain_order=True).head(3 - len(shown))
        )
        guess = guess_date_format(bad.to_list())
        if guess:
            hint = f"{stamp_column} values like {bad[0]!r} parse with {guess}"
        else:
            hint = (
                f"{stamp_column} values like {bad[0]!r} are not ISO-8601: give their format with "
                "--date-format (strftime, e.g. '%d-%m-%Y %H:%M'), or --day-first"
            )
        if hint not in report.date_hints:
            report.date_hints.append(hint)


def _order_line_hint(shaped: pl.DataFrame, options: ReadOptions, *, path: Path) -> str | None:
    """Advice when transaction ids repeat with other values: the file is one row per line."""
    if options.order_id:
        return None
    ids = shaped.get_column("transaction_id").drop_nulls()
    if ids.n_unique() == len(ids):  # the usual case, one pass instead of a group-by
        return None
    repeated = (
        shaped.filter(pl.col("transaction_id").is_not_null())
        .group_by("transaction_id")
        .agg(pl.col("_row_digest").n_unique().alias("versions"), pl.len())
        .filter(pl.col("versions") > 1)
    )
    if repeated.is_empty():
        return None
    rows = int(repeated.get_column("len").sum())
    return (
        f"{path}: {repeated.height:,} transaction ids repeat with different values ({rows:,} "
        "rows): the file looks like order lines (one row per product). Import it with "
        "--order-id <the order column> (and --amount 'Quantity * UnitPrice' when lines carry a "
        "unit price); as it is, those rows will be quarantined as duplicate transaction_id."
    )


def read_delivered_file(
    path: Path, *, column_map: Mapping[str, str] | None = None, options: ReadOptions | None = None
) -> pl.DataFrame:
    """One delivered file as ``raw_transactions`` rows (``_source_file`` = the file name)."""
    options = _options(options, column_map, None)
    return to_raw(read_delivery(path, options), options, source=str(path), source_file=path.name)


def read_landing_day(
    layout: Layout,
    day: date,
    *,
    column_map: Mapping[str, str] | None = None,
    options: ReadOptions | None = None,
) -> pl.DataFrame:
    """All files delivered for ``day`` as raw rows (strings), in file-name order.

    An absent folder gives an empty frame; an unreadable file raises :class:`InputError`.
    """
    folder = layout.landing_day(day)
    frames = []
    if folder.is_dir():
        for path in data_files(folder):
            frames.append(read_delivered_file(path, column_map=column_map, options=options))
    if not frames:
        return pl.DataFrame(schema=RAW_TRANSACTIONS.schema)
    return conform(pl.concat(frames, how="vertical"), RAW_TRANSACTIONS)


def read_marketing_inputs(layout: Layout) -> tuple[pl.LazyFrame | None, pl.LazyFrame | None]:
    """Optional unit-economics inputs from ``landing/customers/`` and ``landing/acquisition_spend/``.

    ``customers``: customer_id, acquisition_channel, acquired_at (date or timestamp);
    ``acquisition_spend``: month (YYYY-MM or any date in the month), channel, spend.
    Each is None when its folder has no file; the customers are not read without spend (CAC
    needs both, and the customers files may serve only ``models.fit_by``). A file missing a
    column raises :class:`InputError`.
    """
    spend = _read_folder(layout.landing.parent / "acquisition_spend", ("month", "channel", "spend"))
    customers = (
        None
        if spend is None
        else _read_folder(
            layout.landing.parent / "customers",
            ("customer_id", ACQUISITION_CHANNEL, "acquired_at"),
            purpose="for unit_economics (CAC per acquisition channel and month, since "
            "acquisition_spend is present)",
        )
    )
    if customers is not None:
        stamps = parse_timestamps(customers.get_column("acquired_at"))
        customers = customers.with_columns(stamps.dt.date().alias("acquired_at"))
    if spend is not None:
        month = pl.col("month").str.strip_chars()
        month = pl.when(month.str.len_chars() == 7).then(month + "-01").otherwise(month)
        spend = spend.with_columns(
            month.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False).alias("month"),
            pl.col("spend").str.strip_chars().cast(pl.Float64, strict=False),
        )
        bad = spend.filter(pl.col("month").is_null() | pl.col("spend").is_null())
        if bad.height:
            raise InputError(
                f"{layout.landing.parent / 'acquisition_spend'}: {bad.height} row(s) with an "
                f"unparseable month or spend, e.g. {bad.head(2).to_dicts()}"
            )
    return (
        customers.lazy() if customers is not None else None,
        spend.lazy() if spend is not None else None,
    )


FIRST_CHANNEL = "first_channel"  # CLV_FIT_BY: the channel of the customer's first purchase
ACQUISITION_CHANNEL = "acquisition_channel"  # the customers files' channel (unit_economics)


def read_customer_attribute(layout: Layout, column: str) -> pl.DataFrame:
    """``customer_id, group`` from column ``column`` of the ``landing/customers/`` files (the
    ``models.fit_by`` groups). A customer listed more than once takes the row with the earliest
    ``acquired_at`` (when the files have it), then the smallest value.

    Raises
    ------
    InputError
        When there is no customers file, or a file lacks ``column`` (the message lists the
        columns it has and the fix).
    """
    folder = layout.landing.parent / "customers"
    files = data_files(folder) if folder.is_dir() else []
    if not files:
        raise InputError(
            f"CLV_FIT_BY={column}: no customers file in {folder}; add a CSV or parquet file with "
            f"columns customer_id, {column}, or set CLV_FIT_BY={FIRST_CHANNEL} (the channel of "
            "each customer's first purchase) or leave it empty (one fit for everyone)"
        )
    frames = []
    for path in files:
        frame = _read_table_file(path)
        missing = [c for c in ("customer_id", column) if c not in frame.columns]
        if missing:
            raise InputError(
                f"{path}: no column {', '.join(missing)} for CLV_FIT_BY={column}; its columns are "
                f"{', '.join(frame.columns)}. Set CLV_FIT_BY to one of them or to {FIRST_CHANNEL}."
            )
        acquired = (
            parse_timestamps(frame.get_column("acquired_at").cast(pl.String)).dt.date()
            if "acquired_at" in frame.columns
            else pl.Series("acquired_at", [None] * frame.height, pl.Date)
        )
        frames.append(
            frame.select(
                pl.col("customer_id").cast(pl.String),
                pl.col(column).cast(pl.String).alias("group"),
            ).with_columns(acquired.alias("_acquired"))
        )
    return (
        pl.concat(frames)
        .sort("customer_id", "_acquired", "group", nulls_last=True)
        .unique("customer_id", keep="first", maintain_order=True)
        .drop("_acquired")
    )


def _read_table_file(path: Path) -> pl.DataFrame:
    """One customers / spend file as delivered (CSV as strings, or parquet), errors naming it."""
    try:
        return (
            pl.read_csv(path, infer_schema=False)
            if path.suffix.lower() == ".csv"
            else pl.read_parquet(path)
        )
    except Exception as exc:  # polars/arrow raise many types; name the file
        raise InputError(f"{path}: cannot read: {str(exc).splitlines()[0]}") from exc


def _read_folder(
    folder: Path, columns: tuple[str, ...], *, purpose: str = ""
) -> pl.DataFrame | None:
    if not folder.is_dir() or not data_files(folder):
        return None
    frames = []
    for path in data_files(folder):
        frame = _read_table_file(path)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            needed = f" {purpose}" if purpose else ""
            raise InputError(
                f"{path}: missing column(s) {', '.join(missing)} needed{needed}; its columns "
                f"are {', '.join(frame.columns)}. Add them (or rename yours to them)."
            )
        frames.append(frame.select(pl.col(c).cast(pl.String) for c in columns))
    return pl.concat(frames)
