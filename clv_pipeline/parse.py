"""Parsing of the contract's string columns into types (pure polars expressions; a leaf module).

Used by ``sources`` (event date of imported rows) and ``validation`` (typing every column).
"""

from __future__ import annotations

import polars as pl

#: Quarantine reason of an ``occurred_at`` that is present but cannot be read.
BAD_TIMESTAMP_REASON = (
    "occurred_at not a timestamp or date in the expected format (ISO-8601, or set date_format "
    "/ day_first)"
)

_AWARE_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%:z",
    "%Y-%m-%d %H:%M:%S%.f%:z",
    "%Y-%m-%dT%H:%M:%S%:z",
    "%Y-%m-%d %H:%M:%S%:z",
    "%Y-%m-%dT%H:%M%:z",
)
_NAIVE_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
)


def parse_timestamp(column: str, *, naive_timezone: str = "UTC") -> pl.Expr:
    """ISO-8601 strings (offset, ``Z``, naive or date-only) -> ``Datetime("us", "UTC")``.

    Values with an offset are converted to UTC; naive values are read in ``naive_timezone``
    (ambiguous / non-existent local times resolve to the earliest / null). Unparseable -> null.
    """
    text = pl.col(column).str.strip_chars().str.replace(r"(?i)z$", "+00:00")
    aware = [
        text.str.to_datetime(fmt, time_zone="UTC", strict=False, time_unit="us")
        for fmt in _AWARE_FORMATS
    ]
    naive = [text.str.to_datetime(fmt, strict=False, time_unit="us") for fmt in _NAIVE_FORMATS] + [
        text.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us"))
    ]
    local = pl.coalesce(naive).dt.replace_time_zone(
        naive_timezone, ambiguous="earliest", non_existent="null"
    )
    return pl.coalesce([*aware, local.dt.convert_time_zone("UTC")]).alias(column)


def parse_timestamps(values: pl.Series, *, naive_timezone: str = "UTC") -> pl.Series:
    """Eager, fast :func:`parse_timestamp`: the format most common in a sample is tried on every
    row first; only rows it cannot parse go through the full list of formats (same results)."""
    frame = values.alias("v").to_frame()
    text = pl.col("v").str.strip_chars()
    sample = frame.filter(text.str.len_chars() > 0).head(1000)
    best, best_hits = None, 0
    for fmt in (*_AWARE_FORMATS, *_NAIVE_FORMATS):
        aware = fmt in _AWARE_FORMATS
        hits = sample.select(
            _one_format(text, fmt, aware, naive_timezone).is_not_null().sum()
        ).item()
        if hits > best_hits:
            best, best_hits = fmt, hits
    if best is None:
        return (
            frame.select(parse_timestamp("v", naive_timezone=naive_timezone))
            .to_series()
            .alias(values.name)
        )
    first = frame.select(
        _one_format(text, best, best in _AWARE_FORMATS, naive_timezone)
    ).to_series()
    missing = (first.is_null() & values.is_not_null()).arg_true()
    if len(missing):
        rest = (
            frame[missing].select(parse_timestamp("v", naive_timezone=naive_timezone)).to_series()
        )
        first = first.scatter(missing, rest)
    return first.alias(values.name)


def _one_format(text: pl.Expr, fmt: str, aware: bool, naive_timezone: str) -> pl.Expr:
    if aware:
        return text.str.replace(r"(?i)z$", "+00:00").str.to_datetime(
            fmt, time_zone="UTC", strict=False, time_unit="us"
        )
    return (
        text.str.to_datetime(fmt, strict=False, time_unit="us")
        .dt.replace_time_zone(naive_timezone, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC")
    )


def event_date(column: str, *, timezone: str) -> pl.Expr:
    """Calendar date of a UTC timestamp column in ``timezone``."""
    return pl.col(column).dt.convert_time_zone(timezone).dt.date()


def parse_number(column: str) -> pl.Expr:
    """Decimal strings -> Float64 (``1,234.50`` style thousands separators rejected -> null)."""
    return pl.col(column).str.strip_chars().cast(pl.Float64, strict=False)


def parse_integer(column: str) -> pl.Expr:
    """Integer strings (``3`` or ``3.0``) -> Int64; anything else -> null."""
    number = parse_number(column)
    return pl.when(number == number.round(0)).then(number).cast(pl.Int64, strict=False)


def clean_text(column: str) -> pl.Expr:
    """Trimmed string; empty -> null."""
    text = pl.col(column).str.strip_chars()
    return pl.when(text.str.len_chars() > 0).then(text)
