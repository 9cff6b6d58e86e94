"""Read one delivered file (CSV or parquet) into the raw, all-strings representation."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import polars as pl

from clv_pipeline.errors import InputError
from clv_pipeline.schema import INPUT_COLUMNS, REQUIRED_INPUT

_ISO_AWARE = "%Y-%m-%dT%H:%M:%S%.f%:z"
_ISO_NAIVE = "%Y-%m-%dT%H:%M:%S%.f"


def read_delivered_file(path: Path, *, column_map: Mapping[str, str] | None = None) -> pl.DataFrame:
    """Read ``path`` with every value as a string, renamed to the contract's column names.

    Raises :class:`InputError` naming the file when it cannot be read or lacks a required column.
    """
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pl.read_csv(
                path, infer_schema=False, encoding="utf8", truncate_ragged_lines=False
            )
        elif suffix == ".parquet":
            frame = pl.read_parquet(path)
        else:
            raise InputError(f"{path}: unsupported file type {suffix!r} (use .csv or .parquet)")
    except InputError:
        raise
    except Exception as exc:  # polars/arrow raise many types; the person needs file + reason
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: cannot read as {suffix[1:]}: {first}") from exc
    frame = rename_columns(frame, column_map or {}, source=str(path))
    check_types(frame, source=str(path))
    return to_strings(frame)


_SCALAR = (pl.String, pl.Categorical, pl.Enum)


def check_types(frame: pl.DataFrame, *, source: str) -> None:
    """Fail on schema drift: a contract column whose type cannot hold its values."""
    numeric = lambda d: d.is_numeric() or isinstance(d, pl.Decimal)  # noqa: E731
    accepted = {
        "transaction_id": lambda d: isinstance(d, _SCALAR) or d.is_integer(),
        "customer_id": lambda d: isinstance(d, _SCALAR) or d.is_integer(),
        "occurred_at": lambda d: isinstance(d, (*_SCALAR, pl.Datetime, pl.Date)),
        "amount": lambda d: isinstance(d, _SCALAR) or numeric(d),
        "quantity": lambda d: isinstance(d, _SCALAR) or numeric(d),
    }
    for name, ok in accepted.items():
        if name in frame.columns and not ok(frame.schema[name]) and frame.schema[name] != pl.Null:
            raise InputError(
                f"{source}: schema drift: column {name} has type {frame.schema[name]}, which the "
                "contract does not accept (see docs/data_contract.md)"
            )


def rename_columns(
    frame: pl.DataFrame, column_map: Mapping[str, str], *, source: str
) -> pl.DataFrame:
    """Apply ``column_map`` and check the required contract columns are present."""
    renames = {old: new for old, new in column_map.items() if old in frame.columns}
    clash = [new for old, new in renames.items() if new in frame.columns and new not in renames]
    if clash:
        raise InputError(f"{source}: renaming would duplicate column(s) {clash}")
    frame = frame.rename(renames)
    stripped = {c: c.strip().lstrip("\ufeff") for c in frame.columns}
    frame = frame.rename({k: v for k, v in stripped.items() if k != v})
    missing = [c for c in REQUIRED_INPUT if c not in frame.columns]
    if missing:
        found = ", ".join(frame.columns[:12]) or "(none)"
        hint = ""
        if len(frame.columns) == 1 and any(sep in frame.columns[0] for sep in ";|\t"):
            hint = " (the file looks like it uses another delimiter than ',')"
        raise InputError(
            f"{source}: missing required column(s) {', '.join(missing)}; found: {found}{hint}. "
            "Map names with --column source_name=contract_name."
        )
    return frame


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


def select_contract(frame: pl.DataFrame) -> pl.DataFrame:
    """Keep the contract's columns (missing optional ones as null strings), in contract order."""
    return frame.select(
        pl.col(c.name) if c.name in frame.columns else pl.lit(None, pl.String).alias(c.name)
        for c in INPUT_COLUMNS
    )
