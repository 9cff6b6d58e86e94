"""Failure drill (issue 21, items 3 and 5): every failure of a `clv` command ends in one line
naming the path, the cause in plain words and the fix, with the full traceback in a log file; the
hints name what fixes the failure for the command that ran."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from clv_pipeline import cli, parquet
from clv_pipeline.cli import app
from clv_pipeline.paths import Layout
from clv_pipeline.publish import warehouse
from clv_pipeline.runs import operations
from tests.conftest import D, land_demo_history

runner = CliRunner()
DAY = D("2024-02-20")


@pytest.fixture
def landed(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small data home: 30 customers over 6 landed days ending DAY, partitions on those days."""
    monkeypatch.setattr(cli.err, "width", 400)
    land_demo_history(Layout(home), tmp_path, n_customers=30, days=6, end=DAY, seed=4)
    init = ["init", "--start-date", "2024-02-15", "--end-date", str(DAY), "--home", str(home)]
    assert runner.invoke(app, init).exit_code == 0
    return home


def _run(home: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["run", "--date", str(DAY), "--home", str(home)])
    return result.exit_code, result.output


def _last_line(output: str) -> str:
    return output.strip().splitlines()[-1]


def _no_traceback(output: str) -> None:
    assert "Traceback" not in output and "Stack Trace" not in output
    assert "dagster - ERROR" not in output


def _log_named(line: str) -> Path:
    path = Path(line.split("details: ", 1)[1].split()[0].rstrip(";."))
    assert path.is_file()
    return path


def test_full_disk_in_a_step_names_the_path_and_the_log(
    landed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(frame: pl.DataFrame, path: Path, metadata: dict[str, str] | None = None) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(parquet, "write_parquet", full)
    monkeypatch.setattr(warehouse, "write_parquet", full)
    code, output = _run(landed)
    assert code == 1
    line = _last_line(output)
    assert line.startswith("error: ") and "disk full: " + str(landed) in line, line
    assert "df -h" in line and "clv run --date" in line, line
    assert _log_named(line).is_relative_to(landed / "logs")
    _no_traceback(output)


def test_full_data_home_storage_is_one_line_with_an_alert(
    landed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dagster's SQLite storage on a full disk: `disk I/O error`, once a 127-line traceback."""

    def storage_full(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(operations, "execute", storage_full)
    code, output = _run(landed)
    assert code == 1
    line = _last_line(output)
    assert "disk full" in line and str(landed / "dagster") in line, line
    log = _log_named(line)
    assert "sqlite3.OperationalError: disk I/O error" in log.read_text()  # the traceback is kept
    assert "alert: " in line
    alert = Path(line.split("alert: ", 1)[1].strip())
    if alert.is_file():  # the fallback file (the alert module may have sent it elsewhere)
        record = json.loads(alert.read_text().splitlines()[-1])
        assert "disk full" in record.get("error", record.get("text", ""))
    _no_traceback(output)


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.EACCES, "no permission to write"),
        (errno.EROFS, "read-only file system, cannot write"),
    ],
)
def test_unwritable_target_says_so(
    landed: Path, monkeypatch: pytest.MonkeyPatch, code: int, words: str
) -> None:
    """chmod cannot stop root (the CI user), so the refusal is injected where files are written."""

    def refused(frame: pl.DataFrame, path: Path, metadata: dict[str, str] | None = None) -> None:
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(parquet, "write_parquet", refused)
    monkeypatch.setattr(warehouse, "write_parquet", refused)
    exit_code, output = _run(landed)
    line = _last_line(output)
    assert exit_code == 1 and f"{words}: {landed}" in line, line
    _no_traceback(output)


def test_bad_parquet_in_the_target_day_is_said_once(landed: Path) -> None:
    bad = Layout(landed).landing_day(DAY) / "bad.parquet"
    bad.write_text("garbage")
    code, output = _run(landed)
    assert code == 1
    assert output.count("cannot read as parquet") == 1, output
    assert "bad.parquet" in output and "details: " in _last_line(output)
    _no_traceback(output)
    assert "Stack Trace" in _log_named(_last_line(output)).read_text()  # Dagster's, in the log


def test_missing_column_during_run_points_to_the_column_map(landed: Path) -> None:
    drop = Layout(landed).landing_day(DAY) / "drop.csv"
    drop.write_text("id,cust,when,amount\n1,a,2024-02-20T10:00:00Z,5\n")
    code, output = _run(landed)
    said = " ".join(output.split())
    assert code == 1 and "missing required column" in said
    assert "source.column_map" in said and "clv init --column SRC=transaction_id" in said
    assert "Map them with --column" not in said
    _no_traceback(output)


def test_timezone_switch_says_to_reimport(landed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLV_TIMEZONE", "America/New_York")
    code, output = _run(landed)
    said = " ".join(output.split())
    assert code == 1 and "timezone changed" in said, said
    assert "imported with timezone UTC" in said and f"clv import FILE... --home {landed}" in said
    _no_traceback(output)
