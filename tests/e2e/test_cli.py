"""The `clv` CLI end to end in a temp CLV_HOME: import, run, status, demo, clear failures."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from clv_pipeline import cli
from clv_pipeline.cli import app
from clv_pipeline.demo import generate_history
from clv_pipeline.paths import Layout
from clv_pipeline.publish.warehouse import read_published, scan_published

runner = CliRunner()
AS_OF = date(2024, 2, 20)


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """A CSV export with the source system's own column names, running past AS_OF."""
    frame = generate_history(n_customers=300, days=40, end=date(2024, 2, 25), seed=3)
    path = tmp_path / "orders.csv"
    frame.rename({"occurred_at": "order_ts", "customer_id": "cust"}).write_csv(path)
    return path


def test_import_run_status(home: Path, export: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.console, "width", 200)
    layout = Layout(home)
    maps = ["--column", "order_ts=occurred_at", "--column", "cust=customer_id"]
    result = runner.invoke(app, ["import", str(export), *maps, "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert "into 40 day(s) 2024-01-17 .. 2024-02-25" in result.output
    result = runner.invoke(app, ["run", "--date", AS_OF.isoformat(), "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert f"ok partition {AS_OF}" in result.output
    features = read_published(layout, "customer_features", AS_OF)
    assert features is not None and features.height > 100
    assert features.get_column("last_purchase_at").max().date() <= AS_OF  # type: ignore[union-attr]
    assert layout.published_days("customer_clv", "as_of") == [AS_OF]
    validated = scan_published(layout, "validated_transactions").collect()
    assert validated.get_column("event_date").max() == AS_OF  # later landing days untouched
    status = runner.invoke(app, ["status", "--home", str(home)])
    assert status.exit_code == 0, status.output
    assert "raw_transactions" in status.output and "2024-02-21..2024-02-25" in status.output

    # importing the same file again and rerunning never double counts
    clv_before = layout.partition_file("customer_clv", "as_of", AS_OF).read_bytes()
    assert runner.invoke(app, ["import", str(export), *maps, "--home", str(home)]).exit_code == 0
    assert (
        runner.invoke(app, ["run", "--date", AS_OF.isoformat(), "--home", str(home)]).exit_code == 0
    )
    again = scan_published(layout, "validated_transactions").collect()
    assert again.height == validated.height
    assert layout.partition_file("customer_clv", "as_of", AS_OF).read_bytes() == clv_before


def test_run_rejects_bad_dates(home: Path) -> None:
    result = runner.invoke(app, ["run", "--date", "2024-02-30", "--home", str(home)])
    assert result.exit_code == 1 and "is not a date" in result.output
    future = (date.today() + timedelta(days=3)).isoformat()
    result = runner.invoke(app, ["run", "--date", future, "--home", str(home)])
    assert result.exit_code == 1 and "is not a partition" in result.output


def test_failed_run_exits_nonzero_naming_the_file(home: Path, tmp_path: Path) -> None:
    layout = Layout(home)
    bad = layout.landing_day(AS_OF) / "drop.csv"
    bad.parent.mkdir(parents=True)
    bad.write_text("id;customer;when;amount\n1;a;2024-02-20;5\n")
    result = runner.invoke(app, ["run", "--date", AS_OF.isoformat(), "--home", str(home)])
    assert result.exit_code == 1
    assert "drop.csv: missing required column" in result.output
    assert "failed" in result.output and layout.published_days("customer_features", "as_of") == []


def test_import_missing_file_is_clear(home: Path) -> None:
    result = runner.invoke(app, ["import", "/nonexistent/x.csv", "--home", str(home)])
    assert result.exit_code == 1 and "no such file" in result.output


def test_demo_small(home: Path) -> None:
    result = runner.invoke(app, ["demo", "--customers", "300", "--days", "20", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert "Top segments" in result.output and "customer_clv_latest" in result.output
    yesterday = Layout(home).published_days("customer_clv", "as_of")
    assert len(yesterday) == 1
    frame = pl.read_parquet(Layout(home).partition_file("customer_segments", "as_of", yesterday[0]))
    assert frame.height > 0
