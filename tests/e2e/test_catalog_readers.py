"""BI sessions on ``clv.duckdb`` never block a run: a commit swaps in a new catalog file.

A read-only session (a BI tool) and a read-write one (the DuckDB shell's default) are held open in
other processes across a daily run and a rerun; both runs succeed, the sessions keep answering
from the snapshot they opened, and new sessions see the new day.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb

from clv_pipeline.config import load_config
from clv_pipeline.demo import generate_history
from clv_pipeline.paths import Layout
from clv_pipeline.publish.catalog import refresh_views, verify_snapshot
from clv_pipeline.runs import operations
from clv_pipeline.schema import SNAPSHOT_TABLES
from clv_pipeline.sources.landing import import_files

END = date(2024, 5, 20)
SESSION = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "ro")
query = "SELECT max(as_of)::VARCHAR, count(*) FROM customer_clv_latest"
for line in sys.stdin:  # one query per line received, answered on stdout
    print(*con.execute(query).fetchone(), flush=True)
"""


class Session:
    """A DuckDB session in another process, kept open until closed."""

    def __init__(self, catalog: Path, mode: str) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", SESSION, str(catalog), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def latest(self) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("q\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, self.process.stderr.read() if self.process.stderr else "session died"
        return line.split()[0]

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        assert self.process.wait(timeout=30) == 0


def _latest(catalog: Path) -> str:
    with duckdb.connect(str(catalog), read_only=True) as con:
        return str(con.execute("SELECT max(as_of)::VARCHAR FROM customer_clv_latest").fetchone()[0])  # type: ignore[index]


def test_open_sessions_never_block_a_run_and_keep_their_snapshot(tmp_path: Path) -> None:
    home = tmp_path / "home"
    export = tmp_path / "history.parquet"
    generate_history(n_customers=150, days=12, end=END, seed=4).write_parquet(export)
    import_files([export], Layout(home))
    config = load_config(home, environ={}, overrides={"start_date": END - timedelta(days=11)})
    catalog = config.layout.catalog
    before = END - timedelta(days=1)
    operations.run_partition(config, before)
    reader = Session(catalog, "ro")  # a BI tool, read-only
    assert reader.latest() == str(before)
    operations.run_partition(config, END)  # the daily run commits while the reader holds the file
    assert _latest(catalog) == str(END)
    shell = Session(catalog, "rw")  # `duckdb clv.duckdb`: read-write by default
    assert shell.latest() == str(END)
    operations.run_partition(config, END)  # a rerun while both are open
    assert reader.latest() == str(before) and shell.latest() == str(END)
    assert _latest(catalog) == str(END)
    assert verify_snapshot(config.layout, END) == []  # the clv_snapshot check
    missing = verify_snapshot(config.layout, END + timedelta(days=1))
    assert len(missing) == len(SNAPSHOT_TABLES) and "is not in _manifest.json" in missing[0]
    reader.close()
    shell.close()
    assert not list(config.layout.staging.glob("catalog-*"))
    # a moved data home: `clv catalog` writes the catalog again from the manifest
    moved = tmp_path / "moved"
    shutil.move(home, moved)
    refresh_views(Layout(moved))
    assert _latest(Layout(moved).catalog) == str(END)
