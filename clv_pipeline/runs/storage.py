"""Dagster's SQLite storage with the event log's databases kept open between writes.

Dagster's :class:`~dagster._core.storage.event_log.SqliteEventLogStorage` opens a new SQLAlchemy
engine and a new SQLite connection for every write and closes them after it. Its databases are
in WAL mode, and closing the last connection of a WAL database checkpoints it, so every event
costs two opens, two checkpoints and two closes (the run's database and the cross-run index):
about 12-13 ms of mostly Python on this project's 2-core bench machine. A first run that catches
up two years records ~1,460 day partitions (raw and validated) on a thread beside the day files'
work (bench/README_pipeline.md: the newcomer's ingest steps ~2.4 s faster with this class).

:class:`PooledSqliteEventLogStorage` keeps one engine per database (the index and the few most
recent runs) with its one connection open, and writes with ``synchronous=NORMAL``, SQLite's
setting for WAL databases (a commit is not synced to disk until the next checkpoint: a power cut
may lose the last events, never the database). After a use of a run's database it checkpoints
that database (passive), as Dagster's close did: the UI follows a running run by watching the
run's ``.db`` file, not its WAL. The checkpoints are at most 0.2 s apart per database, the last
writes of a burst checkpointed by a timer (a first run's ~1,460 caught-up days: a checkpoint
after each cost as much as the writes). About 4.5 ms an event instead of 12-13, before the
checkpoints were spaced. Everything else, the files, their schema and what other processes (the
UI, the daemon) read, is Dagster's own.

:func:`clv_pipeline.runs.instance.get_instance` uses :class:`ClvSqliteStorage` in place of
Dagster's default SQLite storage for a data home's own instance.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from dagster._serdes import ConfigurableClassData
from sqlalchemy.pool import StaticPool

OPEN_DATABASES = 4  # the index and the latest runs' databases (a run writes to its own only)
CHECKPOINT_SECONDS = 0.2  # a run's database file lags its events by at most this much


def _pragmas(connection: Any, _record: Any) -> None:
    """``synchronous=NORMAL`` on a WAL database (Dagster creates them in WAL mode); a database in
    another journal mode keeps SQLite's default (FULL), the safe setting there."""
    cursor = connection.cursor()
    try:
        if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
            cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """:class:`SqliteEventLogStorage` with each database's connection kept open (module
    docstring). Dagster's own lock already serialises every use of a connection in a process."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, sa.Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        self._engines_lock = threading.Lock()
        self._tables: set[str] = set()
        self._checkpointed: dict[str, float] = {}  # shard -> monotonic time of the last one
        self._pending: dict[str, threading.Timer] = {}  # shard -> its trailing checkpoint
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> sa.Engine:
        with self._engines_lock:
            if self._engines_pid != os.getpid():
                # a forked child: the parent's connections are the parent's, never close them
                # (nor are its checkpoint timers: the child has no such threads)
                self._engines, self._engines_pid = OrderedDict(), os.getpid()
                self._pending = {}
            engine = self._engines.get(shard)
            if engine is None:
                engine = sa.create_engine(
                    self.conn_string_for_shard(shard),
                    poolclass=StaticPool,
                    connect_args={
                        "timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
                        "check_same_thread": False,  # used by one thread at a time (_db_lock)
                    },
                )
                sa.event.listen(engine, "connect", _pragmas)
                self._engines[shard] = engine
                while len(self._engines) > OPEN_DATABASES:
                    closed, old = self._engines.popitem(last=False)
                    old.dispose()  # closing the last connection checkpoints: no timer needed
                    self._forget_checkpoints(closed)
            self._engines.move_to_end(shard)
            return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[sa.Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)  # a new database is switched to WAL here, after connecting
                self._initialized_dbs.add(shard)
                with engine.connect() as conn:
                    _pragmas(conn.connection.dbapi_connection, None)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn
                if shard != INDEX_SHARD_NAME:
                    self._checkpoint_soon(shard, conn)

    def _checkpoint_soon(self, shard: str, conn: sa.Connection) -> None:
        """The UI follows a running run by watching its database file (Dagster's watchdog on
        ``<run_id>.db``): move the new events from the WAL into it, as Dagster's own close of
        the connection did. At most every :data:`CHECKPOINT_SECONDS` per database, the last
        writes of a burst by a timer: a first run records ~1,460 caught-up days, and a
        checkpoint (two fsyncs) after each cost about as much as writing the events. Called
        holding ``_db_lock``."""
        now = time.monotonic()
        if now - self._checkpointed.get(shard, -math.inf) >= CHECKPOINT_SECONDS:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            self._checkpointed[shard] = time.monotonic()
            return
        if shard not in self._pending:
            timer = threading.Timer(CHECKPOINT_SECONDS, self._checkpoint_later, args=(shard,))
            timer.daemon = True  # an exiting process closes its connections: that checkpoints
            self._pending[shard] = timer
            timer.start()

    def _forget_checkpoints(self, shard: str) -> None:
        """Drop a closed database's checkpoint time and timer (a long-lived process opens one
        database per run; only the open ones keep an entry)."""
        self._checkpointed.pop(shard, None)
        timer = self._pending.pop(shard, None)
        if timer is not None:
            timer.cancel()

    def _checkpoint_later(self, shard: str) -> None:
        with self._db_lock:
            self._pending.pop(shard, None)
            with self._engines_lock:
                engine = self._engines.get(shard) if self._engines_pid == os.getpid() else None
            if engine is None:
                return  # closed since: the close checkpointed it
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            self._checkpointed[shard] = time.monotonic()

    def has_table(self, table_name: str) -> bool:
        """Dagster's check, on a connection of its own (it runs inside writes holding the
        index's), remembered once the table is there: Dagster asks before each asset check
        and asset event (a first run's catch-up: hundreds of connections). A table is never
        dropped, so only a missing one is asked again (another process may migrate)."""
        if table_name not in self._tables and super().has_table(table_name):
            self._tables.add(table_name)
        return table_name in self._tables

    def close_databases(self) -> None:
        """Close every kept connection (the next write opens them again)."""
        with self._db_lock, self._engines_lock:
            if self._engines_pid == os.getpid():
                for engine in self._engines.values():
                    engine.dispose()  # closing the last connection checkpoints
                for shard in list(self._engines):
                    self._forget_checkpoints(shard)
            self._engines = OrderedDict()

    def wipe(self) -> None:
        self.close_databases()  # the run databases' files are deleted
        super().wipe()

    def dispose(self) -> None:
        self.close_databases()
        super().dispose()


class ClvSqliteStorage(DagsterSqliteStorage):
    """Dagster's default SQLite storage (runs, event log, schedules under one folder) with the
    event log of :class:`PooledSqliteEventLogStorage`."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(base_dir, inst_data)
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData, config_value: dict[str, Any]
    ) -> ClvSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)


#: Dagster's own default storage, which :func:`storage_data` replaces.
DAGSTER_SQLITE = ("dagster._core.storage.sqlite_storage", "DagsterSqliteStorage")


def storage_data(data: ConfigurableClassData | None) -> ConfigurableClassData | None:
    """``data`` with :class:`ClvSqliteStorage` in place of Dagster's default SQLite storage, the
    same folder; any other storage (PostgreSQL, a team's own) as it is."""
    if data is None or (data.module_name, data.class_name) != DAGSTER_SQLITE:
        return data
    return ConfigurableClassData(__name__, ClvSqliteStorage.__name__, data.config_yaml)
