"""DuckDB catalog and the commit point of a snapshot date.

``warehouse/clv.duckdb`` holds, for every published table, a view over all its parquet partitions,
and for snapshot (``as_of``) tables a ``<table>_latest`` view. A snapshot date becomes visible to
these views only once *every* snapshot table of that date is published and ``mark_complete`` has
recorded it in ``clv_snapshots`` (one DuckDB transaction), so BI never sees a half-published day.
``warehouse/_manifest.json`` mirrors the complete dates for readers that scan parquet directly.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from clv_pipeline.errors import PublishError
from clv_pipeline.faults import failpoint
from clv_pipeline.paths import PART_FILE, Layout
from clv_pipeline.publish.files import fsync_dir
from clv_pipeline.schema import SNAPSHOT_TABLES, TABLES

MANIFEST = "_manifest.json"


def connect(
    layout: Layout, *, read_only: bool = False, attempts: int = 20
) -> duckdb.DuckDBPyConnection:
    """Open the catalog, retrying while another process holds its lock."""
    layout.warehouse.mkdir(parents=True, exist_ok=True)
    last: Exception | None = None
    for _ in range(attempts):
        try:
            return duckdb.connect(str(layout.catalog), read_only=read_only)
        except duckdb.IOException as exc:  # locked by another process
            last = exc
            time.sleep(0.25)
    raise PublishError(
        f"cannot open {layout.catalog}: {last}. Another process (a BI tool?) holds it; the parquet "
        "tables are published, run `clv catalog` once it is released."
    )


def _glob(layout: Layout, table: str) -> str:
    key = TABLES[table].partition_key
    return str(layout.table_dir(table) / f"{key}=*" / PART_FILE).replace("'", "''")


def mark_complete(layout: Layout, day: date) -> list[date]:
    """Record ``day`` as a complete snapshot and refresh every view; returns the complete dates."""
    missing = [t for t in SNAPSHOT_TABLES if not layout.partition_file(t, "as_of", day).exists()]
    if missing:
        raise PublishError(f"snapshot {day} is incomplete, not committing: missing {missing}")
    with connect(layout) as con:
        con.execute("BEGIN TRANSACTION")
        con.execute(
            "CREATE TABLE IF NOT EXISTS clv_snapshots (as_of DATE PRIMARY KEY, completed_at TIMESTAMPTZ)"
        )
        con.execute("DELETE FROM clv_snapshots WHERE as_of = ?", [day])
        con.execute("INSERT INTO clv_snapshots VALUES (?, ?)", [day, datetime.now(UTC)])
        _create_views(con, layout)
        failpoint("catalog:before_commit")
        con.execute("COMMIT")
        failpoint("catalog:after_commit")
        dates = [
            row[0] for row in con.execute("SELECT as_of FROM clv_snapshots ORDER BY 1").fetchall()
        ]
    write_manifest(layout, dates)
    return dates


def refresh_views(layout: Layout) -> None:
    """Re-create the views (e.g. after moving the data home); keeps recorded snapshots."""
    with connect(layout) as con:
        con.execute("BEGIN TRANSACTION")
        con.execute(
            "CREATE TABLE IF NOT EXISTS clv_snapshots (as_of DATE PRIMARY KEY, completed_at TIMESTAMPTZ)"
        )
        _create_views(con, layout)
        con.execute("COMMIT")


def _create_views(con: duckdb.DuckDBPyConnection, layout: Layout) -> None:
    for name, table in TABLES.items():
        if not layout.published_days(name, table.partition_key):
            continue
        source = f"read_parquet('{_glob(layout, name)}', hive_partitioning = false, union_by_name = true)"
        if name in SNAPSHOT_TABLES:
            con.execute(
                f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {source} "  # noqa: S608 - names are ours
                "WHERE as_of IN (SELECT as_of FROM clv_snapshots)"
            )
            con.execute(
                f"CREATE OR REPLACE VIEW {name}_latest AS SELECT * FROM {name} "  # noqa: S608
                "WHERE as_of = (SELECT max(as_of) FROM clv_snapshots)"
            )
        else:
            con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {source}")  # noqa: S608


def write_manifest(layout: Layout, dates: list[date]) -> Path:
    """Atomically write ``warehouse/_manifest.json`` with the complete snapshot dates."""
    target = layout.warehouse / MANIFEST
    payload = {
        "complete_as_of": [d.isoformat() for d in dates],
        "latest_as_of": dates[-1].isoformat() if dates else None,
        "tables": {t: f"{t}/as_of=YYYY-MM-DD/{PART_FILE}" for t in SNAPSHOT_TABLES},
    }
    tmp = target.parent / f".{MANIFEST}.{uuid.uuid4().hex}"
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, target)
    fsync_dir(target.parent)
    return target


def complete_dates(layout: Layout) -> list[date]:
    """Snapshot dates recorded as complete (from the manifest; empty when none)."""
    path = layout.warehouse / MANIFEST
    if not path.exists():
        return []
    return [date.fromisoformat(d) for d in json.loads(path.read_text())["complete_as_of"]]
