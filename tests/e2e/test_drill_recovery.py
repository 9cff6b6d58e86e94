"""On-call drill: each failure's own command, followed literally after fixing the cause, leaves
the warehouse equal to an untouched control home built without the fault.

Bad file in the target day and in an earlier day caught by the catch-up, a killed run (SIGKILL
midway: an orphan the next `clv` command marks failed), concurrent commands; `clv status` exit
codes (docs/operations.md, "Exit codes").
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from clv_pipeline import cli
from clv_pipeline.config import load_config, save_settings
from clv_pipeline.locks import Holder, lock_path, partition_lock, read_holder
from clv_pipeline.paths import Layout
from clv_pipeline.publish.catalog import complete_dates
from clv_pipeline.runs import operations
from clv_pipeline.runs.execute import WAREHOUSE_LOCK
from clv_pipeline.runs.recovery import WAREHOUSE_LOCK as RECOVERY_LOCK
from clv_pipeline.runs.status import (
    EXIT_FAILED,
    EXIT_MISSING,
    EXIT_OK,
    EXIT_RUNNING,
    AssetStatus,
    exit_code,
)
from tests.conftest import land_demo_history

END = date(2024, 4, 10)
BEFORE = END - timedelta(days=1)
BAD = END - timedelta(days=3)
runner = CliRunner()


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 landed days ending END (a closed history: END is the latest scheduled day)."""
    root = tmp_path_factory.mktemp("drill-seed")
    home = root / "home"
    land_demo_history(Layout(home), root, n_customers=150, days=8, end=END, seed=21)
    save_settings(home, {"start_date": END - timedelta(days=7), "end_date": END})
    return home


def _copy(seed: Path, target: Path) -> Path:
    shutil.copytree(seed, target)
    return target


@pytest.fixture(scope="module")
def control(seed: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """END built once, without any fault."""
    home = _copy(seed, tmp_path_factory.mktemp("control") / "home")
    operations.run_partition(load_config(home, environ={}), END)
    return home


@pytest.fixture(scope="module")
def control_after_before(seed: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BEFORE then END built, without any fault."""
    home = _copy(seed, tmp_path_factory.mktemp("control2") / "home")
    config = load_config(home, environ={})
    operations.run_partition(config, BEFORE)
    operations.run_partition(config, END)
    return home


@pytest.fixture
def home(seed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = _copy(seed, tmp_path / "home")
    for name in [n for n in os.environ if n.startswith("CLV_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("CLV_HOME", str(target))
    monkeypatch.setattr(cli.console, "width", 250)
    monkeypatch.setattr(cli.err, "width", 250)
    return target


def _garbage(home: Path, day: date) -> Path:
    """A file whose amounts do not parse: the day fails validation."""
    path = Layout(home).landing_day(day) / "zz-garbage.csv"
    path.write_text(
        "transaction_id,customer_id,occurred_at,amount\n"
        + "".join(f"bad{i},c{i},{day}T10:00:00Z,n/a\n" for i in range(40))
    )
    return path


def _day_tables(home: Path, day: date) -> dict[str, pl.DataFrame]:
    """Every published table of ``day`` (snapshot and ingest partitions), by relative path."""
    warehouse = Layout(home).warehouse
    found = {}
    for path in sorted(warehouse.glob(f"*/*={day}/*.parquet")):
        if ".staging" not in path.parts:
            found[str(path.relative_to(warehouse))] = pl.read_parquet(path)
    return found


def _assert_same_day(home: Path, control: Path, day: date) -> None:
    ours, theirs = _day_tables(home, day), _day_tables(control, day)
    assert ours.keys() == theirs.keys() and ours
    for name, frame in theirs.items():
        assert_frame_equal(ours[name], frame, check_exact=False, rel_tol=1e-9), name
    assert complete_dates(Layout(home)) == complete_dates(Layout(control))


def _last_alert(home: Path) -> dict[str, str]:
    lines = (Layout(home).alerts / "alerts.jsonl").read_text().splitlines()
    return json.loads(lines[-1])


def _follow(command: str) -> int:
    """Run a `clv ...` command as written in a message (its first command, comments aside)."""
    words = shlex.split(command.split("#", 1)[0])
    assert words[0] == "clv", command
    result = runner.invoke(cli.app, words[1:])
    assert result.exit_code == 0, result.output
    return result.exit_code


def _run_command(home: Path, day: date) -> str:
    return f"clv run --date {day} --home {shlex.quote(str(home))}"


def test_bad_file_in_the_target_day(home: Path, control: Path) -> None:
    garbage = _garbage(home, END)
    failed = runner.invoke(cli.app, ["run", "--date", str(END), "--home", str(home)])
    assert failed.exit_code == 1
    said = " ".join(failed.output.split())
    fix = _run_command(home, END)
    assert f"then `{fix}`" in said, said
    alert = _last_alert(home)
    assert fix in alert["rerun_command"]
    garbage.unlink()
    _follow(alert["rerun_command"].split("# or:", 1)[-1])
    _assert_same_day(home, control, END)
    assert runner.invoke(cli.app, ["status"]).exit_code == EXIT_OK


def test_bad_file_in_an_earlier_day_caught_by_the_catch_up(
    home: Path, control_after_before: Path
) -> None:
    config = load_config(home, environ={})
    operations.run_partition(config, BEFORE)
    garbage = _garbage(home, BAD)  # a late, bad delivery for a day already ingested
    failed = runner.invoke(cli.app, ["run", "--date", str(END)])
    assert failed.exit_code == 1
    fix = _run_command(home, END)
    said = " ".join(failed.output.split())
    assert f"then `{fix}`" in said, said
    alert = _last_alert(home)
    assert fix in alert["rerun_command"], alert
    status = runner.invoke(cli.app, ["status"])
    assert status.exit_code == EXIT_FAILED
    garbage.unlink()
    # `clv rerun --failed` re-ingests the failed day once and builds the target day, plus the
    # snapshot that read the re-ingested day; never one snapshot per historical day
    rerun = runner.invoke(cli.app, ["rerun", "--failed"])
    assert rerun.exit_code == 0, rerun.output
    steps = operations.rerun_failed(config)
    assert steps == []  # nothing left to do
    assert f"snapshot {END}" in rerun.output
    assert not [d for d in range(2, 8) if f"snapshot {END - timedelta(days=d)}" in rerun.output]
    _assert_same_day(home, control_after_before, END)
    assert runner.invoke(cli.app, ["status"]).exit_code == EXIT_OK


def test_the_alert_of_a_catch_up_failure_rebuilds_the_day_when_followed(
    home: Path, control_after_before: Path
) -> None:
    config = load_config(home, environ={})
    operations.run_partition(config, BEFORE)
    garbage = _garbage(home, BAD)
    with pytest.raises(operations.RunFailed) as failure:
        operations.run_partition(config, END)
    assert failure.value.command == _run_command(home, END)
    garbage.unlink()
    _follow(failure.value.command)
    _assert_same_day(home, control_after_before, END)


def test_a_killed_run_is_marked_failed_and_rerun_failed_builds_the_day(
    home: Path, control: Path
) -> None:
    env = {**os.environ, "CLV_HOME": str(home), "CLV_FAILPOINT": "publish:customer_clv:staged"}
    env.pop("DAGSTER_HOME", None)
    killed = subprocess.run(
        [sys.executable, "-m", "clv_pipeline.cli", "run", "--date", str(END)],
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    holder = read_holder(Layout(home), WAREHOUSE_LOCK)
    assert holder is not None
    assert holder.alive() is False  # a stale lock: its process is gone

    status = runner.invoke(cli.app, ["status"])
    assert status.exit_code == EXIT_FAILED, status.output
    said = " ".join(status.output.split())
    assert f"process {holder.pid} on {socket.gethostname()}" in said and "died" in said
    assert f"rerun with: {_run_command(home, END)}" in said
    assert read_holder(Layout(home), WAREHOUSE_LOCK) is None  # the stale lock was released
    alert = _last_alert(home)
    assert "died" in alert["error"] and _run_command(home, END) in alert["rerun_command"]

    rerun = runner.invoke(cli.app, ["rerun", "--failed"])
    assert rerun.exit_code == 0, rerun.output
    assert "no failed partitions" not in rerun.output
    _assert_same_day(home, control, END)
    assert runner.invoke(cli.app, ["status"]).exit_code == EXIT_OK


def test_a_run_killed_before_it_was_recorded_leaves_the_day_to_rerun_failed(
    home: Path, control: Path
) -> None:
    """A stale lock without a run (killed at its start): the latest day is still a target."""
    path = lock_path(Layout(home), WAREHOUSE_LOCK)
    path.parent.mkdir(parents=True, exist_ok=True)
    dead = Holder(2**22 + 12345, socket.gethostname(), "clv run --date 2024-04-10", "x")
    path.write_text(json.dumps(dead.__dict__))
    status = runner.invoke(cli.app, ["status"])
    assert status.exit_code == EXIT_MISSING, status.output
    assert f"Not built: {END}" in " ".join(status.output.split())
    assert read_holder(Layout(home), WAREHOUSE_LOCK) is None
    rerun = runner.invoke(cli.app, ["rerun", "--failed"])
    assert rerun.exit_code == 0, rerun.output
    _assert_same_day(home, control, END)


def test_a_second_command_while_the_lock_is_held_is_refused_with_the_holder(home: Path) -> None:
    layout = Layout(home)
    with partition_lock(layout, WAREHOUSE_LOCK):
        holder = read_holder(layout, WAREHOUSE_LOCK)
        assert holder is not None and holder.pid == os.getpid() and holder.alive()
        second = runner.invoke(cli.app, ["run", "--date", str(END)])
        assert second.exit_code == 1
        said = " ".join(second.output.split())
        assert "locked by another clv run" in said and f"pid {os.getpid()}" in said
        assert socket.gethostname() in said and "nothing was changed" in said
        status = runner.invoke(cli.app, ["status"])
        assert status.exit_code == EXIT_RUNNING, status.output
        assert f"In progress: pid {os.getpid()}" in status.output
    assert read_holder(layout, WAREHOUSE_LOCK) is None  # released: no holder recorded
    assert not complete_dates(layout)


def test_status_exit_codes() -> None:
    ok = AssetStatus("kpis")
    failed = AssetStatus("kpis", failed=[END])
    missing = AssetStatus("raw_transactions", missing=[END])
    stale = AssetStatus("kpis", stale=[END])
    assert exit_code([ok], running=False, unbuilt=[]) == EXIT_OK == 0
    assert exit_code([ok, failed, missing], running=True, unbuilt=[END]) == EXIT_FAILED == 1
    assert exit_code([missing], running=False, unbuilt=[]) == EXIT_MISSING == 2
    assert exit_code([stale], running=False, unbuilt=[]) == EXIT_MISSING
    assert exit_code([ok], running=False, unbuilt=[END]) == EXIT_MISSING
    assert exit_code([missing], running=True, unbuilt=[END]) == EXIT_RUNNING == 3
    assert WAREHOUSE_LOCK == RECOVERY_LOCK


def test_status_of_a_home_never_run_is_missing(home: Path) -> None:
    status = runner.invoke(cli.app, ["status"])
    assert status.exit_code == EXIT_MISSING, status.output
