"""DuckDB catalog and the commit point of a snapshot date.

``warehouse/clv.duckdb`` holds, for every published table, a view over its partitions, and for
snapshot (``as_of``) tables a ``<table>_latest`` view. Snapshot views never read the live
``as_of=D/part-0.parquet`` files: when every snapshot table of D is published, ``mark_complete``
hard-links each file to an immutable version ``warehouse/.versions/<table>/as_of=D/<id>.parquet``
and, in one DuckDB transaction, records those paths in ``clv_snapshot_files`` and re-creates the
views over exactly those files. A reader of the views therefore sees the previous complete
snapshot or the new one, never a half-published or mixed day, even while a date is rerun.
``warehouse/_manifest.json`` lists the complete dates and their files for readers that scan
parquet directly.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from clv_pipeline.errors import PublishError
from clv_pipeline.faults import failpoint
from clv_pipeline.parquet import fsync_dir
from clv_pipeline.paths import PART_FILE, Layout
from clv_pipeline.schema import SNAPSHOT_TABLES, TABLES

MANIFEST = "_manifest.json"
#: On-disk format of a new catalog: readable by every DuckDB from 1.1 on (the `duckdb` command,
#: BI drivers bundling an older DuckDB), not only by the library version that wrote it.
STORAGE_VERSION = "v1.1.0"
_DDL = (
    "CREATE TABLE IF NOT EXISTS clv_snapshots (as_of DATE PRIMARY KEY, completed_at TIMESTAMPTZ)",
    "CREATE TABLE IF NOT EXISTS clv_snapshot_files "
    "(table_name VARCHAR, as_of DATE, path VARCHAR, PRIMARY KEY (table_name, as_of))",
)


def connect(
    layout: Layout, *, read_only: bool = False, attempts: int = 20
) -> duckdb.DuckDBPyConnection:
    """Open the catalog, retrying while another process holds its lock."""
    layout.warehouse.mkdir(parents=True, exist_ok=True)
    last: Exception | None = None
    for _ in range(attempts):
        try:
            return duckdb.connect(
                str(layout.catalog),
                read_only=read_only,
                config={"storage_compatibility_version": STORAGE_VERSION},
            )
        except duckdb.IOException as exc:  # locked by another process
            last = exc
            time.sleep(0.25)
    raise PublishError(
        f"cannot open {layout.catalog}: {last}. Another process (a BI tool?) holds it; the parquet "
        "tables are published, run `clv catalog` once it is released."
    )


def _freeze(layout: Layout, table: str, day: date) -> Path:
    """Hard-link the published file of (table, day) to an immutable version path."""
    source = layout.partition_file(table, "as_of", day)
    stat = source.stat()
    target = (
        layout.warehouse
        / ".versions"
        / table
        / f"as_of={day.isoformat()}"
        / f"{stat.st_mtime_ns}-{stat.st_size}-{stat.st_ino}.parquet"
    )
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}"
        try:
            os.link(source, tmp)
        except OSError:  # no hard links here (some network filesystems): copy instead
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
        fsync_dir(target.parent)
    return target


def mark_complete(layout: Layout, day: date) -> list[date]:
    """Commit ``day``: freeze its files, switch the views in one transaction; complete dates."""
    missing = [t for t in SNAPSHOT_TABLES if not layout.partition_file(t, "as_of", day).exists()]
    if missing:
        raise PublishError(f"snapshot {day} is incomplete, not committing: missing {missing}")
    frozen = {table: _freeze(layout, table, day) for table in SNAPSHOT_TABLES}
    with connect(layout) as con:
        con.execute("BEGIN TRANSACTION")
        for statement in _DDL:
            con.execute(statement)
        con.execute("DELETE FROM clv_snapshots WHERE as_of = ?", [day])
        con.execute("INSERT INTO clv_snapshots VALUES (?, ?)", [day, datetime.now(UTC)])
        con.execute("DELETE FROM clv_snapshot_files WHERE as_of = ?", [day])
        con.executemany(
            "INSERT INTO clv_snapshot_files VALUES (?, ?, ?)",
            [[table, day, str(path)] for table, path in frozen.items()],
        )
        _create_views(con, layout)
        failpoint("catalog:before_commit")
        con.execute("COMMIT")
        failpoint("catalog:after_commit")
        files = con.execute(
            "SELECT as_of, table_name, path FROM clv_snapshot_files ORDER BY 1, 2"
        ).fetchall()
    _prune_versions(layout, day, keep={str(p) for p in frozen.values()})
    return write_manifest(layout, files)


def refresh_views(layout: Layout) -> None:
    """Re-create the views (e.g. after upgrading); keeps the recorded snapshots."""
    with connect(layout) as con:
        con.execute("BEGIN TRANSACTION")
        for statement in _DDL:
            con.execute(statement)
        _create_views(con, layout)
        con.execute("COMMIT")


def _files_sql(paths: Sequence[str]) -> str:
    quoted = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
    return f"read_parquet([{quoted}], union_by_name = true)"


def _create_views(con: duckdb.DuckDBPyConnection, layout: Layout) -> None:
    rows = con.execute(
        "SELECT table_name, as_of, path FROM clv_snapshot_files ORDER BY as_of"
    ).fetchall()
    for name, table in TABLES.items():
        if name in SNAPSHOT_TABLES:
            paths = [(as_of, path) for t, as_of, path in rows if t == name]
            if not paths:
                continue
            latest = max(as_of for as_of, _ in paths)
            every = _files_sql([p for _, p in paths])
            newest = _files_sql([p for as_of, p in paths if as_of == latest])
            con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {every}")  # noqa: S608 - paths are ours
            con.execute(f"CREATE OR REPLACE VIEW {name}_latest AS SELECT * FROM {newest}")  # noqa: S608
        elif layout.published_days(name, table.partition_key):
            glob = str(layout.table_dir(name) / f"{table.partition_key}=*" / PART_FILE)
            source = f"read_parquet('{glob.replace(chr(39), chr(39) * 2)}', union_by_name = true)"
            con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {source}")  # noqa: S608


def _prune_versions(layout: Layout, day: date, *, keep: set[str]) -> None:
    """Remove superseded versions of ``day`` (open readers keep their file until they close it)."""
    for table in SNAPSHOT_TABLES:
        folder = layout.warehouse / ".versions" / table / f"as_of={day.isoformat()}"
        for path in folder.glob("*.parquet"):
            if str(path) not in keep:
                path.unlink(missing_ok=True)


def write_manifest(layout: Layout, files: list[tuple[date, str, str]]) -> list[date]:
    """Atomically write ``warehouse/_manifest.json``; returns the complete dates."""
    target = layout.warehouse / MANIFEST
    dates = sorted({as_of for as_of, _, _ in files})
    payload = {
        "complete_as_of": [d.isoformat() for d in dates],
        "latest_as_of": dates[-1].isoformat() if dates else None,
        "files": {
            d.isoformat(): {table: path for as_of, table, path in files if as_of == d}
            for d in dates
        },
    }
    tmp = target.parent / f".{MANIFEST}.{uuid.uuid4().hex}"
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, target)
    fsync_dir(target.parent)
    return dates


def complete_dates(layout: Layout) -> list[date]:
    """Snapshot dates recorded as complete (from the manifest; empty when none)."""
    path = layout.warehouse / MANIFEST
    if not path.exists():
        return []
    return [date.fromisoformat(d) for d in json.loads(path.read_text())["complete_as_of"]]
