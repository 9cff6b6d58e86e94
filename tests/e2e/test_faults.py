"""Fault injection: SIGKILL the run at many points, then rerun.

After every kill, each published table of the day is byte-identical to the old or the new
snapshot, the DuckDB views still open and show one complete snapshot (all old or all new, never
mixed), and a plain rerun produces files byte-identical to an unkilled run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from clv_pipeline.config import load_config
from clv_pipeline.demo import generate_history
from clv_pipeline.paths import SUCCESS_FILE, Layout
from clv_pipeline.runs import operations
from clv_pipeline.schema import SNAPSHOT_TABLES
from clv_pipeline.sources.landing import import_files

DAY = date(2024, 3, 31)
KILL_POINTS = [
    "run:start",
    "validate:start",
    "publish:validated_transactions:staged",
    "publish:customer_clv:staged",
    "publish:customer_segments:replaced",
    "catalog:before_commit",
    "catalog:after_manifest",
    "commit:customer_segments:shown",
    "catalog:after_commit",
]
TABLES = ["validated_transactions", *SNAPSHOT_TABLES]
LATE = "transaction_id,customer_id,occurred_at,amount\nlate-1,C9999999,2024-03-31T08:00:00Z,250\n"


def _file(layout: Layout, table: str) -> Path:
    return layout.partition_file(
        table, "date" if table == "validated_transactions" else "as_of", DAY
    )


def _snapshot(layout: Layout) -> dict[str, bytes]:
    return {t: _file(layout, t).read_bytes() for t in TABLES}


def _shown(layout: Layout) -> dict[str, bytes]:
    """The files of DAY that glob readers see, when every table of DAY has its ``_SUCCESS``."""
    public = {t: layout.public_file(t, "as_of", DAY) for t in SNAPSHOT_TABLES}
    if not all((p.parent / SUCCESS_FILE).exists() for p in public.values()):
        return {}
    return {t: p.read_bytes() for t, p in public.items()}


def _run(home: Path) -> None:
    operations.run_partition(load_config(home), DAY)


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """'base': DAY published from the first delivery, then a late file landed; 'reference':
    the same after an unkilled rerun."""
    root = tmp_path_factory.mktemp("faults")
    base = root / "base"
    export = root / "history.parquet"
    generate_history(n_customers=200, days=21, end=DAY, seed=21).write_parquet(export)
    import_files([export], Layout(base))
    _run(base)
    (Layout(base).landing_day(DAY) / "late.csv").write_text(LATE)
    reference = root / "reference"
    shutil.copytree(base, reference)
    _run(reference)
    return {"base": base, "reference": reference}


def _view_rows(layout: Layout) -> dict[str, int]:
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        return {
            t: con.execute(f"SELECT count(*) FROM {t}_latest").fetchone()[0]  # type: ignore[index]  # noqa: S608
            for t in ("customer_features", "customer_clv", "customer_churn", "customer_segments")
        }


@pytest.mark.parametrize("point", KILL_POINTS)
def test_kill_then_rerun(
    point: str, states: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    shutil.copytree(states["base"], home)
    layout = Layout(home)
    old, new = _snapshot(Layout(states["base"])), _snapshot(Layout(states["reference"]))
    assert old["customer_clv"] != new["customer_clv"]  # the late file changes the day
    old_views, new_views = (
        _view_rows(Layout(states["base"])),
        _view_rows(Layout(states["reference"])),
    )
    env = {
        **os.environ,
        "CLV_HOME": str(home),
        "CLV_FAILPOINT": point,
    }
    env.pop("DAGSTER_HOME", None)
    killed = subprocess.run(
        [sys.executable, "-m", "clv_pipeline.cli", "run", "--date", DAY.isoformat()],
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    for table in TABLES:
        current = _file(layout, table).read_bytes()
        assert current in (old[table], new[table]), f"{table} is neither old nor new after {point}"
    assert _view_rows(layout) in (old_views, new_views), "DuckDB views show a mixed snapshot"
    shown, snapshot_tables = _shown(layout), set(SNAPSHOT_TABLES)
    assert shown in (
        {},
        {t: b for t, b in old.items() if t in snapshot_tables},
        {t: b for t, b in new.items() if t in snapshot_tables},
    ), f"readers of the snapshot=D folders see a mixed day after {point}"
    assert not list(layout.warehouse.rglob("*.tmp"))
    _run(home)
    assert _snapshot(layout) == new
    assert not list(layout.staging.rglob("*.parquet"))
    assert _view_rows(layout) == new_views
    assert _shown(layout) == {t: b for t, b in new.items() if t in SNAPSHOT_TABLES}
    manifest = pl.read_json(layout.warehouse / "_manifest.json")
    assert manifest["latest_as_of"][0] == DAY.isoformat()
