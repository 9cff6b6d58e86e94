"""Layout of the data home (``CLV_HOME``): where landing, warehouse, quarantine and Dagster live.

Everything is derived from one root so a test can point the whole pipeline at a temp dir.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

DEFAULT_HOME = Path("data")
PART_FILE = "part-0.parquet"
SUCCESS_FILE = "_SUCCESS"  # per committed partition folder of a snapshot table (Hadoop convention)
#: Folder key of the committed snapshot partitions that readers see. It is deliberately not
#: ``as_of``: the files hold a typed ``as_of`` column, and pyarrow and pandas infer a hive key as a
#: string, which would conflict with it. Readers filter on ``as_of``; ``snapshot`` prunes folders.
PUBLIC_KEY = "snapshot"


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """Return the data home: the argument, else ``$CLV_HOME``, else ``./data`` (absolute)."""
    chosen = home if home not in (None, "") else os.environ.get("CLV_HOME") or DEFAULT_HOME
    return Path(chosen).expanduser().resolve()


@dataclass(frozen=True)
class Layout:
    """Paths under one data home.

    ``landing/transactions/date=YYYY-MM-DD/*.parquet|*.csv``: raw drops, one folder per event date.
    ``warehouse/<table>/date=YYYY-MM-DD/part-0.parquet``: event-date tables (raw, validated).
    ``warehouse/<table>/snapshot=YYYY-MM-DD/part-0.parquet`` + ``_SUCCESS``: committed snapshot
    tables, the folders BI reads; a day appears there only at its commit point.
    ``warehouse/.work/<table>/as_of=YYYY-MM-DD/part-0.parquet``: the pipeline's own audited copy of
    each snapshot table (written by a step, read by later steps, invisible to readers).
    ``warehouse/.versions/``: immutable committed versions (the catalog's views read them).
    ``warehouse/clv.duckdb``: DuckDB catalog of views. ``quarantine/``: rejected rows with a reason.
    ``dagster/``: the Dagster instance (``DAGSTER_HOME``: SQLite run/event/schedule storage, logs).
    ``clv.toml``: the data home's settings. ``alerts/``: failed-run alerts.
    """

    home: Path

    @property
    def landing(self) -> Path:
        return self.home / "landing" / "transactions"

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse"

    @property
    def staging(self) -> Path:
        """Where tables are written and audited before the atomic rename (same filesystem)."""
        return self.warehouse / ".staging"

    @property
    def quarantine(self) -> Path:
        return self.home / "quarantine"

    @property
    def dagster(self) -> Path:
        return self.home / "dagster"

    @property
    def alerts(self) -> Path:
        return self.home / "alerts"

    @property
    def settings(self) -> Path:
        """The data home's settings file (see :mod:`clv_pipeline.config`)."""
        return self.home / "clv.toml"

    @property
    def catalog(self) -> Path:
        return self.warehouse / "clv.duckdb"

    def landing_day(self, day: date) -> Path:
        return self.landing / f"date={day.isoformat()}"

    @property
    def work(self) -> Path:
        """The pipeline's copies of the snapshot tables (hidden from glob readers)."""
        return self.warehouse / ".work"

    def table_dir(self, table: str) -> Path:
        """The folder readers glob: ``warehouse/<table>``."""
        return self.warehouse / table

    def _root(self, table: str, key: str) -> Path:
        return self.work / table if key == "as_of" else self.table_dir(table)

    def partition_file(self, table: str, key: str, day: date) -> Path:
        """The pipeline's file of (table, day): what a step writes and later steps read. For a
        snapshot table (key ``as_of``) it is under ``.work/`` until the commit publishes it."""
        return self._root(table, key) / f"{key}={day.isoformat()}" / PART_FILE

    def public_file(self, table: str, key: str, day: date) -> Path:
        """Where readers find (table, day): ``snapshot=D`` for snapshot tables, else the
        pipeline's file itself."""
        if key != "as_of":
            return self.partition_file(table, key, day)
        return self.table_dir(table) / f"{PUBLIC_KEY}={day.isoformat()}" / PART_FILE

    def quarantine_file(self, table: str, day: date) -> Path:
        return self.quarantine / table / f"date={day.isoformat()}" / PART_FILE

    def landing_days(self) -> list[date]:
        """Event dates that have a landing folder with at least one data file, sorted."""
        days = []
        if self.landing.is_dir():
            for child in self.landing.iterdir():
                if child.is_dir() and child.name.startswith("date=") and data_files(child):
                    try:
                        days.append(date.fromisoformat(child.name[5:]))
                    except ValueError:
                        continue
        return sorted(days)

    def landing_mtime(self, day: date) -> float:
        """Modification time of the newest data file delivered for ``day`` (0 when none)."""
        folder = self.landing_day(day)
        files = data_files(folder) if folder.is_dir() else []
        return max((p.stat().st_mtime for p in files), default=0.0)

    def published_days(self, table: str, key: str) -> list[date]:
        """Partition dates of ``table`` that have a (pipeline) file, sorted."""
        out = []
        root = self._root(table, key)
        if root.is_dir():
            for child in root.glob(f"{key}=*/{PART_FILE}"):
                try:
                    out.append(date.fromisoformat(child.parent.name.split("=", 1)[1]))
                except ValueError:
                    continue
        return sorted(out)


def data_files(folder: Path) -> list[Path]:
    """Visible ``*.parquet`` / ``*.csv`` files of a landing folder, sorted by name (deterministic)."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and not p.name.startswith((".", "_"))
        and p.suffix.lower() in {".parquet", ".csv"}
    )
