"""DuckDB catalog, the parquet folders readers glob, and the commit point of a snapshot date.

Steps write and audit snapshot tables under ``warehouse/.work/`` (invisible to readers). When every
snapshot table of D is there, ``mark_complete`` commits D:

1. hard-links each file to an immutable version ``warehouse/.versions/<table>/as_of=D/<id>.parquet``;
2. records them in ``warehouse/_manifest.json`` (the list of complete dates and their files, the
   source of truth) — **the commit point**;
3. makes D visible to glob readers, all tables together: removes the ``_SUCCESS`` markers of D,
   links each version to ``warehouse/<table>/snapshot=D/part-0.parquet`` (``os.replace``), then
   writes ``_SUCCESS`` in each of D's folders;
4. swaps in a new ``clv.duckdb``, whose views read exactly the recorded versions.

A day a run is still computing, or a run failed on, never appears in the folders readers glob.

**Lock-free.** The run never opens ``clv.duckdb`` itself: every commit writes a *new* catalog
(tables ``clv_snapshots`` and ``clv_snapshot_files``, and the views over exactly the recorded
files) into ``warehouse/.staging/``, then swaps it in with ``os.replace``. A BI tool or a DuckDB
shell holding the previous file open, read-only or read-write, keeps working on the previous
snapshot and never blocks a run; sessions opened after the swap see the new one. A reader of the
views therefore sees the previous complete snapshot or the new one, never a half-published or
mixed day, even while a date is rerun.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from clv_pipeline.errors import PublishError
from clv_pipeline.faults import failpoint
from clv_pipeline.parquet import fsync_dir, read_footer
from clv_pipeline.paths import PART_FILE, PUBLIC_KEY, SUCCESS_FILE, Layout
from clv_pipeline.schema import SNAPSHOT_TABLES, TABLES

MANIFEST = "_manifest.json"
#: On-disk format of a new catalog: readable by every DuckDB from 1.1 on (the `duckdb` command,
#: BI drivers bundling an older DuckDB), not only by the library version that wrote it.
STORAGE_VERSION = "v1.1.0"
CATALOG_PREFIX = "catalog-"  # new catalogs are built as warehouse/.staging/catalog-<id>.duckdb
_DDL = (
    "CREATE TABLE IF NOT EXISTS clv_snapshots (as_of DATE PRIMARY KEY, completed_at TIMESTAMPTZ)",
    "CREATE TABLE IF NOT EXISTS clv_snapshot_files "
    "(table_name VARCHAR, as_of DATE, path VARCHAR, PRIMARY KEY (table_name, as_of))",
)


def _build_catalog(
    layout: Layout, files: list[tuple[date, str, str]], done: dict[date, str]
) -> Path:
    """A new catalog file in ``warehouse/.staging/`` with the snapshot tables and the views."""
    layout.staging.mkdir(parents=True, exist_ok=True)
    for stale in layout.staging.glob(f"{CATALOG_PREFIX}*"):  # left by a killed commit
        stale.unlink(missing_ok=True)
    target = layout.staging / f"{CATALOG_PREFIX}{uuid.uuid4().hex}.duckdb"
    con = duckdb.connect(str(target), config={"storage_compatibility_version": STORAGE_VERSION})
    try:
        for statement in _DDL:
            con.execute(statement)
        con.executemany(
            "INSERT INTO clv_snapshots VALUES (?, ?)",
            [
                [day, datetime.fromisoformat(done[day]) if done.get(day) else None]
                for day in sorted({d for d, _, _ in files})
            ],
        )
        con.executemany(
            "INSERT INTO clv_snapshot_files VALUES (?, ?, ?)",
            [[table, as_of, path] for as_of, table, path in files],
        )
        _create_views(con, layout, files)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return target


def _swap_in(layout: Layout, built: Path) -> None:
    """Replace ``clv.duckdb`` by ``built`` (readers of the old file keep their snapshot)."""
    os.replace(built, layout.catalog)
    fsync_dir(layout.catalog.parent)


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
        _link(source, target.parent / f".{target.name}.{uuid.uuid4().hex}", target)
        fsync_dir(target.parent)
    return target


def mark_complete(layout: Layout, day: date) -> list[date]:
    """Commit ``day``: freeze its files, record them in the manifest, show them in the folders
    readers glob, swap in a new catalog."""
    missing = [t for t in SNAPSHOT_TABLES if not layout.partition_file(t, "as_of", day).exists()]
    if missing:
        raise PublishError(f"snapshot {day} is incomplete, not committing: missing {missing}")
    frozen = {table: _freeze(layout, table, day) for table in SNAPSHOT_TABLES}
    files, done = read_manifest(layout)
    files = sorted(
        [f for f in files if f[0] != day] + [(day, table, str(p)) for table, p in frozen.items()]
    )
    done[day] = datetime.now(UTC).isoformat()
    try:
        built = _build_catalog(layout, files, done)
    except (OSError, duckdb.Error) as exc:
        raise PublishError(
            f"snapshot {day} was not committed: the new DuckDB catalog could not be written in "
            f"{layout.staging} ({_cause(exc)}); the manifest, the snapshot folders and "
            f"{layout.catalog} still show the previous complete snapshot. Fix that, then "
            f"`clv run --date {day} --home {layout.home}`"
        ) from exc
    failpoint("catalog:before_commit")
    dates = write_manifest(layout, files, done)  # the commit point
    failpoint("catalog:after_manifest")
    _show_day(layout, day, frozen)
    try:
        _swap_in(layout, built)
    except OSError as exc:
        raise PublishError(
            f"snapshot {day} is committed (warehouse/{MANIFEST} and the snapshot={day} folders "
            f"show it), but the DuckDB catalog {layout.catalog} could not be replaced "
            f"({_cause(exc)}): its views still show the previous snapshot. Fix that, then "
            f"`clv catalog --home {layout.home}`"
        ) from exc
    failpoint("catalog:after_commit")
    _prune_versions(layout, day, keep={str(p) for p in frozen.values()})
    return dates


def _cause(exc: BaseException) -> str:
    """The cause in plain words: disk full, no permission, read-only, else the error's line."""
    code = getattr(exc, "errno", None)
    if code == errno.ENOSPC:
        return "disk full"
    if code in (errno.EACCES, errno.EPERM):
        return "no permission to write there"
    if code == errno.EROFS:
        return "read-only file system"
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _show_day(layout: Layout, day: date, versions: dict[str, Path]) -> None:
    """Make the committed ``versions`` of ``day`` the files glob readers see, all tables together:
    no table of ``day`` has its ``_SUCCESS`` marker while any of them is being replaced."""
    folders = {table: layout.public_file(table, "as_of", day).parent for table in versions}
    for folder in folders.values():
        (folder / SUCCESS_FILE).unlink(missing_ok=True)
    for table, version in versions.items():
        target = layout.public_file(table, "as_of", day)
        if target.exists() and os.path.samefile(target, version):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        _link(version, target.parent / f".{PART_FILE}.{uuid.uuid4().hex}", target)
        failpoint(f"commit:{table}:shown")
    for folder in folders.values():
        (folder / SUCCESS_FILE).touch()
        fsync_dir(folder)


def _link(source: Path, tmp: Path, target: Path) -> None:
    """``target`` becomes ``source``'s bytes atomically (a hard link, or a copy where the
    filesystem has none), via ``tmp`` in the target's folder."""
    try:
        os.link(source, tmp)
    except OSError:  # no hard links here (some network filesystems): copy instead
        shutil.copyfile(source, tmp)
    try:
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def sync_public(layout: Layout) -> int:
    """Make the folders readers glob match the manifest: every committed day shown with its
    committed files (after a commit killed between the manifest and the last link), no day that
    is not committed. Returns the number of partitions changed."""
    files, _ = read_manifest(layout)
    committed: dict[date, dict[str, Path]] = {}
    for day, table, path in files:
        if Path(path).exists():
            committed.setdefault(day, {})[table] = Path(path)
    changed = 0
    for day, versions in committed.items():
        folders = [layout.public_file(t, "as_of", day).parent for t in versions]
        shown = all(
            (f / SUCCESS_FILE).exists()
            and (f / PART_FILE).exists()
            and os.path.samefile(f / PART_FILE, v)
            for f, v in zip(folders, versions.values(), strict=True)
        )
        if not shown:
            _show_day(layout, day, versions)
            changed += 1
    for table in SNAPSHOT_TABLES:
        root = layout.table_dir(table)
        for folder in root.glob(f"{PUBLIC_KEY}=*") if root.is_dir() else []:
            try:
                day = date.fromisoformat(folder.name.split("=", 1)[1])
            except ValueError:
                continue
            if table not in committed.get(day, {}):
                shutil.rmtree(folder)
                changed += 1
    return changed


def upgrade_warehouse(layout: Layout) -> int:
    """Move snapshot tables of the layout before 0.9 (``warehouse/<table>/as_of=D/``, read by
    pyarrow and pandas as a string key that conflicts with the ``as_of`` column) to the pipeline's
    ``.work/`` folder, then show the committed days as ``snapshot=D``. Idempotent and cheap when
    there is nothing to move; returns the number of partitions moved."""
    moved = 0
    for table in SNAPSHOT_TABLES:
        root = layout.table_dir(table)
        old = sorted(root.glob("as_of=*")) if root.is_dir() else []
        for folder in old:
            target = layout.work / table / folder.name
            target.parent.mkdir(parents=True, exist_ok=True)
            # shard steps may upgrade at the same time: a folder another process moved is done
            if target.exists():  # both layouts hold the day: the pipeline's copy is newer
                shutil.rmtree(folder, ignore_errors=True)
            else:
                try:
                    os.replace(folder, target)
                except FileNotFoundError:
                    continue
            moved += 1
    if moved:
        fsync_dir(layout.work)
        sync_public(layout)
    return moved


def verify_snapshot(layout: Layout, day: date) -> list[str]:
    """Problems a new session would meet reading ``day`` through the catalog (empty: none).

    Opens the committed catalog read-only, as a BI tool would, and compares each snapshot
    table's rows of ``day`` in its view with the rows of the committed parquet file.
    """
    files, _ = read_manifest(layout)
    committed = {table: path for as_of, table, path in files if as_of == day}
    problems = []
    try:
        con = duckdb.connect(str(layout.catalog), read_only=True)
    except duckdb.Error as exc:
        return [f"{layout.catalog} does not open read-only: {exc}"]
    try:
        for table in SNAPSHOT_TABLES:
            if table not in committed:
                problems.append(f"{table}: {day} is not in {MANIFEST}")
                continue
            expected = read_footer(committed[table]).num_rows
            try:
                (seen,) = con.execute(
                    f"SELECT count(*) FROM {table} WHERE as_of = ?",  # noqa: S608 - our table names
                    [day],
                ).fetchone() or (None,)
            except duckdb.Error as exc:
                problems.append(f"view {table}: {str(exc).splitlines()[0]}")
                continue
            if seen != expected:
                problems.append(f"view {table}: {seen} rows of {day}, the file has {expected}")
    finally:
        con.close()
    return problems


def refresh_views(layout: Layout) -> None:
    """Write the catalog again from the manifest, and make the folders readers glob match it
    (after upgrading, or a commit that was killed between the manifest and the swap)."""
    upgrade_warehouse(layout)
    sync_public(layout)
    files, done = read_manifest(layout)
    _swap_in(layout, _build_catalog(layout, files, done))


def _files_sql(paths: Sequence[str]) -> str:
    quoted = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
    return f"read_parquet([{quoted}], union_by_name = true)"


def _create_views(
    con: duckdb.DuckDBPyConnection, layout: Layout, files: list[tuple[date, str, str]]
) -> None:
    rows = [(table, as_of, path) for as_of, table, path in sorted(files)]
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
    """Remove superseded versions of ``day``, but the newest superseded one: a session opened on
    the previous catalog (a BI tool, a DuckDB shell) still reads it until it reconnects."""
    for table in SNAPSHOT_TABLES:
        folder = layout.warehouse / ".versions" / table / f"as_of={day.isoformat()}"
        old = sorted(
            (p for p in folder.glob("*.parquet") if str(p) not in keep),
            key=lambda p: int(p.name.split("-", 1)[0]) if p.name.split("-", 1)[0].isdigit() else 0,
        )
        for path in old[:-1]:
            path.unlink(missing_ok=True)


def read_manifest(layout: Layout) -> tuple[list[tuple[date, str, str]], dict[date, str]]:
    """``(as_of, table, path)`` of every committed file, and when each date was committed."""
    path = layout.warehouse / MANIFEST
    if not path.exists():
        return [], {}
    payload = json.loads(path.read_text())
    files = [
        (date.fromisoformat(day), table, _rebased(layout, file))
        for day, tables in payload.get("files", {}).items()
        for table, file in tables.items()
    ]
    done = {date.fromisoformat(d): t for d, t in payload.get("completed_at", {}).items()}
    return sorted(files), done


def _rebased(layout: Layout, path: str) -> str:
    """A recorded version path, moved under this warehouse when the data home was moved."""
    marker = "/.versions/"
    if Path(path).exists() or marker not in path:
        return path
    return str(layout.warehouse / ".versions" / path.split(marker, 1)[1])


def write_manifest(
    layout: Layout, files: list[tuple[date, str, str]], done: dict[date, str] | None = None
) -> list[date]:
    """Atomically write ``warehouse/_manifest.json``; returns the complete dates."""
    target = layout.warehouse / MANIFEST
    dates = sorted({as_of for as_of, _, _ in files})
    payload = {
        "complete_as_of": [d.isoformat() for d in dates],
        "latest_as_of": dates[-1].isoformat() if dates else None,
        "completed_at": {d.isoformat(): (done or {}).get(d) for d in dates},
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


def committed_file(layout: Layout, table: str, day: date) -> Path | None:
    """The committed version of (table, day), None when ``day`` is not committed."""
    files, _ = read_manifest(layout)
    for as_of, name, path in files:
        if as_of == day and name == table and Path(path).exists():
            return Path(path)
    return None


def complete_dates(layout: Layout) -> list[date]:
    """Snapshot dates recorded as complete (from the manifest; empty when none)."""
    path = layout.warehouse / MANIFEST
    if not path.exists():
        return []
    return [date.fromisoformat(d) for d in json.loads(path.read_text())["complete_as_of"]]
