"""Write-audit-publish for warehouse tables.

1. conform the frame to the contract and audit it (schema, nulls, NaN/inf, table invariants);
2. write it under ``warehouse/.staging/`` (same filesystem), fsync, read the footer back;
3. ``os.replace`` it onto the pipeline's file (``Layout.partition_file``): for event-date tables
   the folder readers glob, ``warehouse/<table>/date=D/part-0.parquet``; for snapshot tables
   ``warehouse/.work/<table>/as_of=D/part-0.parquet``, which later steps read and readers never
   see until the commit point (``catalog.mark_complete``) shows the whole day.

Any failure before step 3 deletes the staged file and raises :class:`PublishError`, leaving the
previously published file untouched.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from clv_pipeline.errors import PublishError
from clv_pipeline.faults import failpoint
from clv_pipeline.parquet import (
    DIGEST_KEY,
    content_digest,
    fsync_dir,
    read_footer,
    write_parquet,
)
from clv_pipeline.paths import Layout
from clv_pipeline.publish.audit import audit_table
from clv_pipeline.schema import TABLES, conform, with_added_columns

DIGESTED_TABLES = frozenset({"validated_transactions"})  # inputs of the incremental state


@dataclass(frozen=True)
class Published:
    table: str
    day: date
    path: Path
    rows: int
    preview: str
    checks: dict[str, list[str]] = field(default_factory=dict)

    public: Path | None = None  # where readers find it once the day is committed

    def metadata(self) -> dict[str, Any]:
        """Dagster materialization metadata: row count, the path readers read, a markdown
        preview."""
        return {"rows": self.rows, "path": str(self.public or self.path), "preview": self.preview}


def publish_table(
    layout: Layout,
    table_name: str,
    frame: pl.DataFrame,
    *,
    day: date,
    file_metadata: dict[str, str] | None = None,
) -> Published:
    """Stage, audit and atomically publish partition ``day`` of ``table_name``.

    ``file_metadata`` is stored in the parquet footer, so it is replaced atomically with the data.
    """
    table = TABLES[table_name]
    try:
        frame = conform(frame, table)
    except (ValueError, pl.exceptions.PolarsError) as exc:
        raise PublishError(
            f"{table_name} {day}: output does not match the contract: {exc}"
        ) from exc
    if table_name in DIGESTED_TABLES:
        file_metadata = {**(file_metadata or {}), DIGEST_KEY: content_digest(frame)}
    checks = audit_table(frame, table, day=day)
    problems = [p for found in checks.values() for p in found if p != "not run"]
    if problems:
        raise PublishError(
            f"{table_name} {day}: audit failed, previous snapshot kept: " + "; ".join(problems),
            table=table_name,
            checks=checks,
        )
    target = layout.partition_file(table_name, table.partition_key, day)
    staged = layout.staging / table_name / f"{target.parent.name}.{uuid.uuid4().hex}.parquet"
    _sweep_staging(staged.parent, target.parent.name)
    try:
        write_parquet(frame, staged, file_metadata)
        written = read_footer(staged)
        if written.num_rows != frame.height:
            raise PublishError(
                f"{table_name} {day}: staged file has {written.num_rows} rows, expected {frame.height}"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        failpoint(f"publish:{table_name}:staged")
        os.replace(staged, target)
        fsync_dir(target.parent)
        failpoint(f"publish:{table_name}:replaced")
    except OSError as exc:
        raise PublishError(
            f"{table_name} {day}: could not write {target} ({exc.strerror or exc}); "
            "previous snapshot kept"
        ) from exc
    finally:
        staged.unlink(missing_ok=True)
    return Published(
        table_name,
        day,
        target,
        frame.height,
        preview_markdown(frame),
        checks,
        layout.public_file(table_name, table.partition_key, day),
    )


def _sweep_staging(folder: Path, partition: str) -> None:
    """Create a table's staging folder and remove the files of ``partition`` that a run killed
    mid-publish left in it (runs hold the partition's lock, so none is being written; other
    partitions' files may be in flight in other runs and are left alone). One listing of the
    folder, which holds only files in flight: ``Path.glob`` cost ~0.7 ms a publish."""
    folder.mkdir(parents=True, exist_ok=True)
    prefix = f"{partition}."
    for name in os.listdir(folder):
        if name.startswith(prefix) and name.endswith(".parquet"):
            (folder / name).unlink(missing_ok=True)


def preview_markdown(frame: pl.DataFrame, rows: int = 5) -> str:
    """First rows as a markdown table (for the Dagster UI)."""
    head = frame.head(rows)
    if head.is_empty():
        return "(no rows)"
    cells = [[_cell(v) for v in row] for row in head.iter_rows()]
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * head.width]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def scan_published(
    layout: Layout,
    table_name: str,
    *,
    upto: date | None = None,
    since: date | None = None,
    days: Collection[date] | None = None,
) -> pl.LazyFrame:
    """Lazy scan over the published partitions of a table: all, ``since <= date <= upto``, or
    only ``days`` (files outside are never opened)."""
    table = TABLES[table_name]
    files = [
        layout.partition_file(table_name, table.partition_key, d)
        for d in layout.published_days(table_name, table.partition_key)
        if (upto is None or d <= upto)
        and (since is None or d >= since)
        and (days is None or d in days)
    ]
    if not files:
        return pl.LazyFrame(schema=table.schema)
    # partitions published before a column was added read it as null
    return pl.scan_parquet(
        files, schema=table.schema, missing_columns="insert", extra_columns="ignore"
    )


def read_published(
    layout: Layout, table_name: str, day: date, columns: Sequence[str] | None = None
) -> pl.DataFrame | None:
    """One published partition, or None when it does not exist.

    ``columns``: only these (the others are not read: at 10M customers a whole per-customer
    table is gigabytes). A contract column the file predates reads as nulls either way; a name
    outside the contract and the file is left out, as a whole read would not have it.
    """
    table = TABLES[table_name]
    path = layout.partition_file(table_name, table.partition_key, day)
    if not path.exists():
        return None
    if columns is None:
        return with_added_columns(pl.read_parquet(path), table)
    present = set(pq.read_schema(path).names)
    frame = pl.read_parquet(path, columns=[c for c in columns if c in present])
    return with_added_columns(frame, table, only=columns)
