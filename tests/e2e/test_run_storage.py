"""The data home's Dagster storage: Dagster's SQLite files, with the event log's connections kept
open between writes (clv_pipeline/runs/storage.py)."""

import logging
import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.events.log import EventLogEntry

from clv_pipeline.config import load_config
from clv_pipeline.runs.instance import get_instance, instance_home
from clv_pipeline.runs.storage import (
    CHECKPOINT_SECONDS,
    OPEN_DATABASES,
    ClvSqliteStorage,
    PooledSqliteEventLogStorage,
)

PARTITIONS = dg.DailyPartitionsDefinition("2024-01-01", end_date="2024-03-01")
DAYS = PARTITIONS.get_partition_keys()


@dg.asset(partitions_def=PARTITIONS)
def days_asset(context: dg.AssetExecutionContext) -> None:
    """Records every other day as a materialization, as a catch-up does."""
    for day in DAYS:
        if day != context.partition_key:
            context.log_event(
                dg.AssetMaterialization(context.asset_key, partition=day, metadata={"rows": 1})
            )


def _materialized(instance: dg.DagsterInstance) -> set[str]:
    return set(instance.get_materialized_partitions(days_asset.key))


@pytest.fixture
def connects() -> Iterator[list[str]]:
    """The SQLite database files connected to, one entry per connection opened."""
    opened: list[str] = []

    def record(connection: sqlite3.Connection, _record: object) -> None:
        opened.append(connection.execute("PRAGMA database_list").fetchone()[2])

    sa.event.listen(sa.Engine, "connect", record)
    yield opened
    sa.event.remove(sa.Engine, "connect", record)


def test_events_are_written_through_connections_kept_open(home: Path, connects: list[str]) -> None:
    with get_instance(load_config(home, environ={})) as instance:
        storage = instance._event_storage  # noqa: SLF001 - the storage is what is under test
        assert isinstance(instance.get_ref().storage, ClvSqliteStorage)
        assert isinstance(storage, PooledSqliteEventLogStorage)
        connects.clear()
        result = dg.materialize([days_asset], instance=instance, partition_key=DAYS[-1])
        assert result.success
        assert _materialized(instance) == set(DAYS)
        index = [path for path in connects if path.endswith("index.db")]
        # Dagster's own storage opens a connection per write (two per recorded day here); ours
        # keeps one, plus Dagster's one-off check of a table, on a connection of its own
        assert len(index) <= 2, f"{len(index)} connections to the index for {len(DAYS)} events"
        run = [path for path in connects if path.endswith(f"{result.run_id}.db")]
        assert len(run) == 1
        with sqlite3.connect(Path(index[0])) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        connects.clear()  # a second run: the index's connection is kept, Dagster's table
        second = dg.materialize([days_asset], instance=instance, partition_key=DAYS[0])
        assert not [path for path in connects if path.endswith("index.db")]  # checks remembered
        event_log = [path for path in connects if Path(path).parent.name == "runs"]
        assert [Path(path).name for path in event_log] == [f"{second.run_id}.db"]
        # the kept connections write with synchronous=NORMAL (1), the run's new database too
        for shard in ("index", result.run_id):
            with storage._engines[shard].connect() as conn:  # noqa: SLF001
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1, shard


def test_the_files_are_dagsters_own(home: Path) -> None:
    """Dagster's default storage (the UI, the daemon) reads and writes the same files while
    ours holds its connections open."""
    config = load_config(home, environ={})
    with get_instance(config) as ours:
        first = dg.materialize([days_asset], instance=ours, partition_key=DAYS[0])
        with dg.DagsterInstance.from_config(str(instance_home(config))) as plain:
            assert type(plain.get_ref().storage).__name__ == "DagsterSqliteStorage"
            assert _materialized(plain) == set(DAYS)
            assert plain.get_run_by_id(first.run_id) is not None
            second = dg.materialize([days_asset], instance=plain, partition_key=DAYS[1])
        records = ours.fetch_materializations(days_asset.key, limit=1000).records
        assert {r.run_id for r in records} == {first.run_id, second.run_id}
        assert len(records) == 2 * len(DAYS)


def test_at_most_a_few_databases_stay_open(home: Path) -> None:
    with get_instance(load_config(home, environ={})) as instance:
        storage = instance._event_storage  # noqa: SLF001
        for day in DAYS[: OPEN_DATABASES + 3]:  # a database per run, plus the index
            dg.materialize([days_asset], instance=instance, partition_key=day)
        assert len(storage._engines) == OPEN_DATABASES  # noqa: SLF001
        storage.wipe()  # deletes the runs' files: their connections are closed first
        assert set(storage._engines) <= {"index"}  # noqa: SLF001 - emptied by the wipe
        assert not _materialized(instance)
        dg.materialize([days_asset], instance=instance, partition_key=DAYS[0])
        assert _materialized(instance) == set(DAYS)


_INHERITED: list[dg.DagsterInstance] = []


def _record_in_child(parent_engines: set[int]) -> None:
    """In a forked child: write through the instance copied from the parent, then check it
    did so through connections of its own."""
    (instance,) = _INHERITED
    dg.materialize([days_asset], instance=instance, partition_key=DAYS[5])
    storage = instance._event_storage  # noqa: SLF001
    mine = {id(engine) for engine in storage._engines.values()}  # noqa: SLF001
    raise SystemExit(0 if mine and not mine & parent_engines else 3)


def test_a_forked_child_opens_its_own_connections(home: Path) -> None:
    with get_instance(load_config(home, environ={})) as instance:
        dg.materialize([days_asset], instance=instance, partition_key=DAYS[0])
        storage = instance._event_storage  # noqa: SLF001
        engines = {id(engine) for engine in storage._engines.values()}  # noqa: SLF001
        assert engines
        _INHERITED[:] = [instance]
        try:
            child = multiprocessing.get_context("fork").Process(
                target=_record_in_child, args=(engines,)
            )
            child.start()
            child.join(120)
        finally:
            _INHERITED.clear()
        assert child.exitcode == 0
        # the parent's connections still work after the child exited
        dg.materialize([days_asset], instance=instance, partition_key=DAYS[6])
        records = instance.fetch_materializations(days_asset.key, limit=1000).records
        assert len(records) == 3 * len(DAYS)


def test_the_ui_sees_a_running_runs_events_as_they_are_written(home: Path) -> None:
    """Dagster's UI follows a running run by watching its database file: each event written
    through a kept-open connection reaches a watcher using Dagster's own storage."""
    config = load_config(home, environ={})
    with get_instance(config) as ours:
        run_id = dg.materialize([days_asset], instance=ours, partition_key=DAYS[0]).run_id
        with dg.DagsterInstance.from_config(str(instance_home(config))) as ui:
            seen: list[str] = []
            arrived = threading.Event()
            cursor = str(ui.get_records_for_run(run_id).cursor)

            def follow(entry: EventLogEntry, _cursor: str) -> None:
                seen.append(entry.user_message)
                arrived.set()

            ui.watch_event_logs(run_id, cursor, follow)
            try:
                for n in range(3):
                    message = f"still running {n}"
                    ours.store_event(
                        EventLogEntry(
                            error_info=None,
                            level=logging.INFO,
                            user_message=message,
                            run_id=run_id,
                            timestamp=time.time(),
                        )
                    )
                    assert arrived.wait(20), f"the watcher never saw {message!r}"
                    arrived.clear()
                    assert seen[-1] == message
            finally:
                ui.end_watch_event_logs(run_id, follow)


def test_a_burst_of_events_is_checkpointed_a_few_times_and_after_its_last_write(
    home: Path,
) -> None:
    """A catch-up's events come in bursts of hundreds: the run's database is checkpointed at
    most every ``CHECKPOINT_SECONDS`` (each costs two fsyncs), and once more after the burst's
    last write, so the database file the UI watches ends up with every event."""
    checkpoints: list[float] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "wal_checkpoint" in statement:
            checkpoints.append(time.monotonic())

    sa.event.listen(sa.Engine, "before_cursor_execute", count)
    try:
        config = load_config(home, environ={})
        with get_instance(config) as instance:
            run_id = dg.materialize([days_asset], instance=instance, partition_key=DAYS[0]).run_id
            checkpoints.clear()
            start = time.monotonic()
            for n in range(200):
                instance.store_event(
                    EventLogEntry(
                        error_info=None,
                        level=logging.INFO,
                        user_message=f"burst {n}",
                        run_id=run_id,
                        timestamp=time.time(),
                    )
                )
            burst = time.monotonic() - start
            during = len(checkpoints)
            assert during <= 2 + burst / CHECKPOINT_SECONDS
            deadline = time.monotonic() + 10
            while len(checkpoints) == during and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(checkpoints) == during + 1  # the trailing one, after the last write
            (database,) = instance_home(config).rglob(f"{run_id}.db")
            # the file itself holds the last event: the WAL's frames were copied into it
            assert b"burst 199" in database.read_bytes()
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", count)
