"""Every published table is byte-identical across independent runs, a full recompute and a kill +
``rerun --failed`` (issue 18, item 4).

Two data homes import the same generated history, the second with the export's rows shuffled,
and run the same two days. In the first, the last day's run is SIGKILLed while it publishes
``backtest_deciles`` and ``rerun_failed`` completes the day (its ``customer_state`` merged
incrementally); the second recomputes the last day's state in full (``clv run
--full-recompute``). Every snapshot table file of every day must be the same bytes in both. The
event-date tables hold the same rows; their lineage column names each home's own landing file, so
those files differ by design.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from clv_pipeline.config import ClvConfig, load_config, save_settings
from clv_pipeline.demo import generate_history
from clv_pipeline.paths import Layout
from clv_pipeline.runs import operations
from clv_pipeline.runs.instance import get_instance
from clv_pipeline.schema import TABLES
from clv_pipeline.sources.landing import import_files

END = date(2024, 5, 20)
HISTORY_DAYS = 20
DAYS = [END - timedelta(days=1), END]  # the first run also ingests every earlier landing day
SETTINGS = {
    "start_date": END - timedelta(days=HISTORY_DAYS - 1),
    "scale.backtest_holdout_days": 7,  # deciles of both models on 20 days of history
    "models.min_customers": 20,
    "models.min_repeat_customers": 5,
}
LINEAGE = ("_source_file", "_source_row", "_row_digest")

Files = dict[tuple[str, date, str], bytes]  # (table, day, "pipeline" | "readers") -> bytes


def _config(home: Path, **overrides: object) -> ClvConfig:
    return load_config(home, environ={}, overrides=overrides)


def _new_home(home: Path, export: Path) -> ClvConfig:
    import_files([export], Layout(home))
    save_settings(home, SETTINGS)
    return _config(home)


def _files(home: Path) -> Files:
    """The bytes of every table file of every day, found through the layout: the pipeline's own
    file and the one readers glob (the same path for event-date tables)."""
    layout = Layout(home)
    out = {}
    for name, table in TABLES.items():
        key = table.partition_key
        for day in layout.published_days(name, key):
            out[name, day, "pipeline"] = layout.partition_file(name, key, day).read_bytes()
            public = layout.public_file(name, key, day)
            if public != layout.partition_file(name, key, day) and public.exists():
                out[name, day, "readers"] = public.read_bytes()
    return out


def _differing(expected: Files, actual: Files) -> list[str]:
    """``table day kind`` of every file that differs or is on one side only."""
    keys = sorted(set(expected) | set(actual))
    return [" ".join(map(str, key)) for key in keys if expected.get(key) != actual.get(key)]


def _state_mode(home: Path) -> str:
    """How the latest ``customer_state`` was built (its materialization's ``mode``)."""
    instance = get_instance(_config(home))
    event = instance.get_latest_materialization_event(dg.AssetKey("customer_state"))
    assert event is not None and event.asset_materialization is not None
    return str(event.asset_materialization.metadata["mode"].value)


@dataclass
class Homes:
    killed: Path  # the export as generated; the last day killed, then ``rerun_failed``
    shuffled: Path  # the export's rows in another order; the last day's state recomputed in full
    kill: subprocess.CompletedProcess[bytes]
    deciles_after_kill: list[date]
    rerun: list[operations.RerunStep]


def _kill_the_run(home: Path, day: date) -> subprocess.Popen[bytes]:
    """``clv run --date day`` in another process, SIGKILLed as it publishes backtest_deciles."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLV_", "DAGSTER_HOME"))}
    env |= {"CLV_HOME": str(home), "CLV_FAILPOINT": "publish:backtest_deciles:staged"}
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "clv_pipeline.cli", "run", "--date", day.isoformat()],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homes]:
    with pytest.MonkeyPatch.context() as env:
        env.delenv("DAGSTER_HOME", raising=False)  # each home's own Dagster instance
        yield _build_homes(tmp_path_factory.mktemp("identical"))


def _build_homes(root: Path) -> Homes:
    history = generate_history(n_customers=300, days=HISTORY_DAYS, end=END, seed=18)
    killed, shuffled = root / "killed", root / "shuffled"
    history.write_parquet(root / "given.parquet")
    history.sample(fraction=1.0, shuffle=True, seed=4).write_parquet(root / "shuffled.parquet")
    operations.run_partition(_new_home(killed, root / "given.parquet"), DAYS[0])
    operations.run_partition(_new_home(shuffled, root / "shuffled.parquet"), DAYS[0])
    process = _kill_the_run(killed, END)  # meanwhile, the full recompute in the other home
    operations.run_partition(_config(shuffled, **{"scale.state_rebuild": "full"}), END)
    stdout, stderr = process.communicate(timeout=300)
    kill = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    after_kill = Layout(killed).published_days("backtest_deciles", "as_of")
    rerun = operations.rerun_failed(_config(killed)) if kill.returncode == -9 else []
    return Homes(killed, shuffled, kill, after_kill, rerun)


def test_a_killed_run_is_completed_by_rerun_failed(homes: Homes) -> None:
    assert homes.kill.returncode == -9, homes.kill.stderr.decode()[-2000:]
    assert homes.deciles_after_kill == DAYS[:1]  # the killed day was left incomplete
    assert [(step.what, step.ok) for step in homes.rerun] == [(f"snapshot {END}", True)]
    assert _state_mode(homes.killed) == "incremental"


def test_every_table_is_the_same_bytes_in_both_homes(homes: Homes) -> None:
    """After the kill + rerun in one home and the full recompute in the other."""
    assert _state_mode(homes.shuffled) == "full"
    killed, shuffled = _files(homes.killed), _files(homes.shuffled)
    snapshot = {k: v for k, v in killed.items() if TABLES[k[0]].partition_key == "as_of"}
    names = {n for n, t in TABLES.items() if t.partition_key == "as_of"}
    kinds = ("pipeline", "readers")
    assert sorted(snapshot) == sorted((n, d, k) for n in names for d in DAYS for k in kinds)
    deciles = pl.read_parquet(snapshot["backtest_deciles", END, "pipeline"])
    assert deciles["model"].n_unique() == 3, "both models and the baseline have deciles"
    assert _differing(snapshot, {k: v for k, v in shuffled.items() if k in snapshot}) == []
    # the event-date tables hold the same rows; lineage names each home's own landing file
    events = {k for k in killed if k not in snapshot}
    assert events == {k for k in shuffled if k not in snapshot}
    for key in events:
        a, b = (
            pl.read_parquet(files[key]).drop(LINEAGE, strict=False).sort("transaction_id")
            for files in (killed, shuffled)
        )
        assert_frame_equal(a, b, check_exact=True)
