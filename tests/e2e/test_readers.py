"""Every reader reads every published table with its default settings, and sees only whole days.

BI tools and analysts point pyarrow, pandas, polars, DuckDB or Spark at ``warehouse/<table>``.
Each must read every table with a typed ``as_of`` (the folder key is ``snapshot``, never a second,
string-typed ``as_of``), and a day a run has not committed must not be visible at all.
Spark needs the ``spark`` extra and a JDK (``.ci/run`` installs both); without them its test is
skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from clv_pipeline.config import load_config
from clv_pipeline.demo import generate_history
from clv_pipeline.paths import PUBLIC_KEY, SUCCESS_FILE, Layout
from clv_pipeline.publish.catalog import read_manifest, refresh_views
from clv_pipeline.runs import operations
from clv_pipeline.schema import SNAPSHOT_FOLDER_KEY, SNAPSHOT_TABLES, TABLES
from clv_pipeline.sources.landing import import_files

END = date(2024, 5, 20)
COMMITTED = [END - timedelta(days=2), END - timedelta(days=1)]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two committed days, and END computed up to the commit, where the run was killed."""
    root = tmp_path_factory.mktemp("readers")
    home = root / "home"
    export = root / "history.parquet"
    generate_history(n_customers=150, days=14, end=END, seed=8).write_parquet(export)
    import_files([export], Layout(home))
    config = load_config(home, environ={}, overrides={"start_date": END - timedelta(days=13)})
    for day in COMMITTED:
        operations.run_partition(config, day)
    env = {**os.environ, "CLV_HOME": str(home), "CLV_FAILPOINT": "catalog:before_commit"}
    env.pop("DAGSTER_HOME", None)
    killed = subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "clv_pipeline.cli", "run", "--date", END.isoformat()],
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert config.layout.partition_file("customer_clv", "as_of", END).exists()  # computed
    return home


def _committed(layout: Layout, table: str) -> tuple[int, list[date]]:
    """Rows of ``table`` in the committed files, and the as-of dates that have rows."""
    files, _ = read_manifest(layout)
    frame = pl.concat([pl.read_parquet(p) for _, t, p in files if t == table])
    return frame.height, sorted(frame["as_of"].unique())


def _folder(home: Path, table: str) -> str:
    return str(Layout(home).table_dir(table))


def test_only_committed_days_are_in_the_folders_readers_glob(home: Path) -> None:
    assert SNAPSHOT_FOLDER_KEY == PUBLIC_KEY  # the data contract documents the folders
    layout = Layout(home)
    assert _committed(layout, "customer_clv")[1] == COMMITTED
    for table in SNAPSHOT_TABLES:
        folders = sorted(p.name for p in layout.table_dir(table).iterdir())
        assert folders == [f"snapshot={d}" for d in COMMITTED], table
        for day in COMMITTED:
            public = layout.public_file(table, "as_of", day)
            assert (public.parent / SUCCESS_FILE).exists()
            assert public.read_bytes() == layout.partition_file(table, "as_of", day).read_bytes()


@pytest.mark.parametrize("table", list(TABLES))
def test_pyarrow_dataset_hive(home: Path, table: str) -> None:
    data = ds.dataset(_folder(home, table), partitioning="hive").to_table()
    if table in SNAPSHOT_TABLES:
        assert data.schema.field("as_of").type == pa.date32()
        assert (data.num_rows, sorted(set(data.column("as_of").to_pylist()))) == _committed(
            Layout(home), table
        )
    else:
        assert data.num_rows > 0


@pytest.mark.parametrize("table", list(TABLES))
def test_pandas_read_parquet_folder(home: Path, table: str) -> None:
    frame = pd.read_parquet(_folder(home, table))
    if table in SNAPSHOT_TABLES:
        # as_of holds datetime.date values
        assert (len(frame), sorted(set(frame["as_of"]))) == _committed(Layout(home), table)
    else:
        assert len(frame) > 0


@pytest.mark.parametrize("table", list(TABLES))
def test_polars_scan_parquet_hive(home: Path, table: str) -> None:
    frame = pl.scan_parquet(_folder(home, table), hive_partitioning=True).collect()
    if table in SNAPSHOT_TABLES:
        assert frame.schema["as_of"] == pl.Date
        assert (frame.height, sorted(frame["as_of"].unique())) == _committed(Layout(home), table)
        assert frame.schema["snapshot"] == pl.Date
    else:
        assert frame.height > 0


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    pytest.importorskip("pyspark", reason="Spark reader: install the `spark` extra")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark reader: no JDK (java) on PATH")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .appName("clv-readers")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def test_spark_read_parquet_folder(home: Path, spark: object) -> None:
    from pyspark.sql import SparkSession

    assert isinstance(spark, SparkSession)
    for table in TABLES:
        frame = spark.read.parquet(_folder(home, table))
        if table in SNAPSHOT_TABLES:
            types = dict(frame.dtypes)
            assert types["as_of"] == "date", table
            days = sorted(r[0] for r in frame.select("as_of").distinct().collect())
            assert (frame.count(), days) == _committed(Layout(home), table), table
        else:
            assert frame.count() > 0, table


@pytest.mark.parametrize("table", list(TABLES))
def test_duckdb_read_parquet_hive(home: Path, table: str) -> None:
    glob = f"{_folder(home, table)}/*/*.parquet"
    relation = duckdb.sql(f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true)")  # noqa: S608
    if table in SNAPSHOT_TABLES:
        assert dict(zip(relation.columns, relation.types, strict=True))["as_of"] == "DATE"
        days = duckdb.sql(f"SELECT DISTINCT as_of FROM read_parquet('{glob}') ORDER BY 1")  # noqa: S608
        found = (len(relation), [row[0] for row in days.fetchall()])
        assert found == _committed(Layout(home), table)
    else:
        assert len(relation) > 0


def test_upgrading_an_old_layout_moves_as_of_folders_out_of_the_readers_way(
    home: Path, tmp_path: Path
) -> None:
    """A data home written before the ``snapshot=D`` folders: its ``<table>/as_of=D/`` folders
    move to the pipeline's ``.work/``, the committed days appear as ``snapshot=D``."""
    old = tmp_path / "old"
    shutil.copytree(home, old)
    layout = Layout(old)
    expected = {t: layout.partition_file(t, "as_of", END).read_bytes() for t in SNAPSHOT_TABLES}
    for table in SNAPSHOT_TABLES:  # the layout before: the pipeline's files in the table folder
        shutil.rmtree(layout.table_dir(table))
        shutil.move(layout.work / table, layout.table_dir(table))
    refresh_views(layout)  # `clv catalog`; a run does the same first
    for table in SNAPSHOT_TABLES:
        assert layout.partition_file(table, "as_of", END).read_bytes() == expected[table]
        assert sorted(p.name for p in layout.table_dir(table).iterdir()) == [
            f"snapshot={d}" for d in COMMITTED
        ]
    data = ds.dataset(_folder(old, "customer_clv"), partitioning="hive").to_table()
    assert data.schema.field("as_of").type == pa.date32()
    config = load_config(old, environ={}, overrides={"start_date": END - timedelta(days=13)})
    operations.run_partition(config, END)
    assert (
        sorted(p.name for p in layout.table_dir("customer_clv").iterdir())[-1] == f"snapshot={END}"
    )
