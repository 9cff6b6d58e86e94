"""The landing folder: import historical exports split by event date, and read one day back.

``import_files`` is idempotent: each (source file, event date) becomes
``landing/transactions/date=D/import-<digest>.parquet`` where the digest covers the file's bytes
and the column mapping, so importing the same file again rewrites identical files instead of adding
rows. Overlapping rows from *different* files are removed later by deduplication on
``transaction_id``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from clv_pipeline.errors import InputError
from clv_pipeline.parquet import write_parquet_atomic
from clv_pipeline.parse import event_date, parse_timestamps
from clv_pipeline.paths import Layout, data_files
from clv_pipeline.schema import RAW_TRANSACTIONS, conform
from clv_pipeline.sources.files import read_delivered_file, select_contract


@dataclass
class ImportReport:
    files: int = 0
    rows: int = 0
    days: set[date] = field(default_factory=set)
    unparseable_rows: int = 0
    written: list[Path] = field(default_factory=list)

    @property
    def first_day(self) -> date | None:
        return min(self.days) if self.days else None

    @property
    def last_day(self) -> date | None:
        return max(self.days) if self.days else None


def file_digest(path: Path, column_map: Mapping[str, str]) -> str:
    """Content hash of a delivered file plus the column mapping used to read it."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    digest.update(repr(sorted(column_map.items())).encode())
    return digest.hexdigest()[:16]


def import_files(
    paths: Iterable[Path],
    layout: Layout,
    *,
    column_map: Mapping[str, str] | None = None,
    timezone: str = "UTC",
    naive_timezone: str = "UTC",
    on_file: Callable[[Path, int], None] | None = None,
) -> ImportReport:
    """Split each file by event date (in ``timezone``) into the landing folder.

    Rows whose ``occurred_at`` cannot be parsed have no event date: they are written to
    ``quarantine/import/<digest>.parquet`` with a reason, and counted in the report.
    """
    report = ImportReport()
    mapping = dict(column_map or {})
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        frame = read_delivered_file(path, column_map=mapping)
        digest = file_digest(path, mapping)
        stamps = parse_timestamps(frame.get_column("occurred_at"), naive_timezone=naive_timezone)
        days = (
            frame.with_columns(stamps.alias("__ts"))
            .with_columns(event_date("__ts", timezone=timezone).alias("__day"))
            .drop("__ts")
        )
        unparseable = days.filter(pl.col("__day").is_null())
        if unparseable.height:
            target = layout.quarantine / "import" / f"{path.stem}-{digest}.parquet"
            write_parquet_atomic(
                unparseable.drop("__day").with_columns(
                    pl.lit(str(path)).alias("_source_file"),
                    pl.lit("occurred_at missing or not an ISO-8601 timestamp or date").alias(
                        "reason"
                    ),
                ),
                target,
            )
            report.unparseable_rows += unparseable.height
        for (day,), part in days.filter(pl.col("__day").is_not_null()).group_by(
            "__day", maintain_order=True
        ):
            assert isinstance(day, date)  # noqa: S101 - group key type narrowing
            target = layout.landing_day(day) / f"import-{digest}.parquet"
            write_parquet_atomic(part.drop("__day"), target)
            report.days.add(day)
            report.written.append(target)
        report.files += 1
        report.rows += frame.height
        if on_file is not None:
            on_file(path, frame.height)
    return report


def read_landing_day(
    layout: Layout, day: date, *, column_map: Mapping[str, str] | None = None
) -> pl.DataFrame:
    """All files delivered for ``day`` as raw rows (strings), in file-name order.

    An absent folder gives an empty frame; an unreadable file raises :class:`InputError`.
    """
    folder = layout.landing_day(day)
    frames = []
    if folder.is_dir():
        for path in data_files(folder):
            frame = select_contract(read_delivered_file(path, column_map=column_map))
            frames.append(
                frame.with_columns(
                    pl.lit(path.name).alias("_source_file"),
                    pl.int_range(pl.len(), dtype=pl.Int64).alias("_source_row"),
                )
            )
    if not frames:
        return pl.DataFrame(schema=RAW_TRANSACTIONS.schema)
    return conform(pl.concat(frames, how="vertical"), RAW_TRANSACTIONS)


def read_marketing_inputs(layout: Layout) -> tuple[pl.LazyFrame | None, pl.LazyFrame | None]:
    """Optional unit-economics inputs from ``landing/customers/`` and ``landing/acquisition_spend/``.

    ``customers``: customer_id, acquisition_channel, acquired_at (date or timestamp);
    ``acquisition_spend``: month (YYYY-MM or any date in the month), channel, spend.
    Each is None when its folder has no file; a file missing a column raises :class:`InputError`.
    """
    customers = _read_folder(
        layout.landing.parent / "customers", ("customer_id", "acquisition_channel", "acquired_at")
    )
    spend = _read_folder(layout.landing.parent / "acquisition_spend", ("month", "channel", "spend"))
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


def _read_folder(folder: Path, columns: tuple[str, ...]) -> pl.DataFrame | None:
    if not folder.is_dir() or not data_files(folder):
        return None
    frames = []
    for path in data_files(folder):
        try:
            frame = (
                pl.read_csv(path, infer_schema=False)
                if path.suffix.lower() == ".csv"
                else pl.read_parquet(path)
            )
        except Exception as exc:  # polars/arrow raise many types; name the file
            raise InputError(f"{path}: cannot read: {str(exc).splitlines()[0]}") from exc
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
        frames.append(frame.select(pl.col(c).cast(pl.String) for c in columns))
    return pl.concat(frames)
