"""The `clv` CLI end to end in a temp CLV_HOME: import, run, status, demo, clear failures."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from typer.testing import CliRunner

from clv_pipeline import cli
from clv_pipeline.cli import app
from clv_pipeline.config import load_config
from clv_pipeline.defs import build_defs
from clv_pipeline.defs.partitions import build_partitions
from clv_pipeline.demo import generate_history
from clv_pipeline.features.state import read_provenance
from clv_pipeline.paths import Layout
from clv_pipeline.publish.warehouse import read_published, scan_published
from clv_pipeline.runs.instance import get_instance

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
    # landed days after AS_OF are not built yet: missing, exit code 2 (docs/operations.md)
    assert status.exit_code == 2, status.output
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
    # the data home's partitions are exactly the demo's 20 days, whoever loads its definitions
    defs = build_defs(load_config(home, environ={}))
    partitions = defs.resolve_job_def("clv_daily_job").partitions_def
    assert isinstance(partitions, dg.DailyPartitionsDefinition)
    keys = partitions.get_partition_keys()
    assert len(keys) == 20 and keys[-1] == yesterday[0].isoformat()
    frame = pl.read_parquet(Layout(home).partition_file("customer_segments", "as_of", yesterday[0]))
    assert frame.height > 0
    _readme_query_works(home)


def _readme_query_works(home: Path) -> None:
    """The README's catalog query, as written, runs with the `duckdb` command setup installs."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    (line,) = [ln for ln in readme.splitlines() if ln.startswith("duckdb -readonly ")]
    duckdb_cli = Path(sys.executable).parent / "duckdb"
    assert duckdb_cli.exists(), "make setup installs the DuckDB command (duckdb-cli)"
    command = line.replace("$CLV_HOME", str(home)).replace("duckdb ", f"{duckdb_cli} ", 1)
    done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60)  # noqa: S602 - the README's own line
    assert done.returncode == 0, done.stderr
    assert "predicted_clv" in done.stdout and "customer_id" in done.stdout


def test_import_of_a_1997_history_sets_the_partitions(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No env var: `clv import` records the history's days in clv.toml, `clv run` uses them.

    Customers whose only orders cost nothing (free items, vouchers) are kept: a zero-amount
    order is a purchase-day with zero revenue."""
    monkeypatch.setattr(cli.console, "width", 200)
    export = tmp_path / "cdnow-like.csv"
    history = generate_history(n_customers=150, days=546, end=date(1998, 6, 30), seed=5)
    free = pl.DataFrame(
        {
            "transaction_id": ["free-1", "free-2", "free-3"],
            "customer_id": ["free-a", "free-a", "free-b"],
            "occurred_at": ["1997-03-01T10:00:00Z", "1997-05-01T10:00:00Z", "1997-02-01T09:00:00Z"],
            "amount": [0.0, 0.0, 0.0],
        }
    )
    pl.concat(
        [history.with_columns(pl.col(pl.Datetime).dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ")), free],
        how="diagonal_relaxed",
    ).write_csv(export)
    monkeypatch.delenv("CLV_HOME")  # only --home says where the data home is
    result = runner.invoke(app, ["import", str(export), "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert "Partitions now start on 1997-01-01" in result.output
    assert "Partitions end on 1998-06-30" in result.output
    config = load_config(home, environ={})
    assert (config.start_date, config.end_date) == (date(1997, 1, 1), date(1998, 6, 30))
    assert config.origin("start_date") == "clv.toml"
    keys = build_partitions(config).get_partition_keys()
    assert (keys[0], keys[-1], len(keys)) == ("1997-01-01", "1998-06-30", 546)
    result = runner.invoke(app, ["run", "--date", "1997-09-30", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert Layout(home).published_days("customer_clv", "as_of") == [date(1997, 9, 30)]
    features = pl.read_parquet(
        Layout(home).partition_file("customer_features", "as_of", date(1997, 9, 30))
    ).filter(pl.col("customer_id").str.starts_with("free-"))
    assert features.select("customer_id", "frequency", "recency", "T", "total_revenue").rows() == [
        ("free-a", 1, 61, 213, 0.0),  # 1997-03-01 and 05-01; T from 03-01 to 09-30
        ("free-b", 0, 0, 241, 0.0),
    ]
    result = runner.invoke(app, ["run", "--date", "1998-07-01", "--home", str(home)])
    assert result.exit_code == 1
    said = " ".join(result.output.split())  # unwrap the console's line breaks
    assert "end_date, from clv.toml" in said and "clv init --end-date 1998-07-01" in said
    shown = runner.invoke(app, ["config", "--home", str(home)])
    assert shown.exit_code == 0 and "1997-01-01" in shown.output and "clv.toml" in shown.output


def test_init_and_config_show_where_each_setting_comes_from(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.console, "width", 200)
    result = runner.invoke(
        app,
        [
            "init",
            "--start-date",
            "2023-01-01",
            "--timezone",
            "Europe/Berlin",
            "--column",
            "order_ts=occurred_at",
            "--set",
            "models.horizon_days=730",
            "--set",
            "validation.currencies=EUR,USD",
            "--home",
            str(home),
        ],
    )
    assert result.exit_code == 0, result.output
    text = (home / "clv.toml").read_text()
    assert "start_date = 2023-01-01" in text and "[models]" in text and "horizon_days" in text
    monkeypatch.setenv("CLV_HORIZON_DAYS", "90")
    shown = runner.invoke(app, ["config", "--home", str(home)])
    assert shown.exit_code == 0, shown.output
    lines = {line.split()[1]: line for line in shown.output.splitlines() if line.count("│") > 3}
    assert "clv.toml" in lines["timezone"] and "Europe/Berlin" in lines["timezone"]
    assert (
        "env CLV_HORIZON_DAYS" in lines["models.horizon_days"]
        and "90" in lines["models.horizon_days"]
    )
    assert "EUR,USD" in lines["validation.currencies"]
    assert "default" in lines["models.penalizer"]
    bad = runner.invoke(app, ["init", "--set", "models.gross_margin=2", "--home", str(home)])
    assert bad.exit_code == 1 and "gross_margin" in bad.output
    assert "gross_margin" not in (home / "clv.toml").read_text()


def test_flags_never_write_the_environment(home: Path, export: Path) -> None:
    before = dict(os.environ)
    maps = ["--column", "order_ts=occurred_at", "--column", "cust=customer_id"]
    assert runner.invoke(app, ["import", str(export), *maps, "--home", str(home)]).exit_code == 0
    day_before = (AS_OF - timedelta(days=1)).isoformat()
    assert runner.invoke(app, ["run", "--date", day_before, "--home", str(home)]).exit_code == 0
    result = runner.invoke(
        app, ["run", "--date", AS_OF.isoformat(), "--full-recompute", "--home", str(home)]
    )
    assert result.exit_code == 0, result.output
    assert dict(os.environ) == before
    # incremental would have started from the day before's state; the flag recomputed in full
    instance = get_instance(load_config(home, environ={}))
    event = instance.get_latest_materialization_event(dg.AssetKey("customer_state"))
    assert event is not None and event.asset_materialization is not None
    assert event.asset_materialization.partition == AS_OF.isoformat()
    assert event.asset_materialization.metadata["mode"].value == "full"
    assert read_provenance(Layout(home).partition_file("customer_state", "as_of", AS_OF))
    # the import saved the mapping: `clv validate` reads the export without --column
    check = runner.invoke(app, ["validate", str(export), "--home", str(home)])
    assert "missing required column" not in check.output


def test_partition_bounds_follow_every_import(home: Path, tmp_path: Path) -> None:
    history = generate_history(n_customers=80, days=546, end=date(1998, 6, 30), seed=6)
    early, late = tmp_path / "1997.csv", tmp_path / "1998.csv"
    history.filter(pl.col("occurred_at").dt.year() == 1997).write_csv(early)
    history.filter(pl.col("occurred_at").dt.year() == 1998).write_csv(late)
    days = history.get_column("occurred_at").dt.date()
    first_1998 = days.filter(days.dt.year() == 1998).min()
    first = runner.invoke(app, ["import", str(late), "--home", str(home)])
    assert first.exit_code == 0 and f"Partitions now start on {first_1998}" in first.output
    second = runner.invoke(app, ["import", str(early), "--home", str(home)])
    assert second.exit_code == 0 and f"Partitions now start on {days.min()}" in second.output
    again = runner.invoke(app, ["import", str(late), "--home", str(home)])
    assert again.exit_code == 0 and "Partitions now start" not in again.output
    config = load_config(home, environ={})
    assert (config.start_date, config.end_date) == (days.min(), days.max())


ORDER_LINES = (
    "InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID\n"
    "536365,85123A,6,01-12-2010 08:26,2.55,17850\n"
    "536365,71053,6,01-12-2010 08:26,3.39,17850\n"
    "536366,22633,6,13-12-2010 08:28,1.85,17850\n"
    "536367,22633,2,13-12-2010 09:28,1.85,\n"
    "C536379,D,-1,14-12-2010 09:41,27.5,14527\n"
)
UCI_MAPS = ["-c", "CustomerID=customer_id", "-c", "InvoiceDate=occurred_at"]


def test_import_without_the_date_option_fails_with_counts_examples_and_the_fix(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.err, "width", 400)
    path = tmp_path / "online_retail.csv"
    path.write_text(ORDER_LINES)
    lines = ["--order-id", "InvoiceNo", "--amount", "Quantity * UnitPrice", *UCI_MAPS]
    result = runner.invoke(app, ["import", str(path), *lines, "--home", str(home)])
    assert result.exit_code == 1
    said = " ".join(result.output.split())
    assert "5 row(s): occurred_at not a timestamp or date in the expected format" in said
    assert "e.g. InvoiceDate='01-12-2010 08:26', InvoiceDate='13-12-2010 08:28'" in said
    assert "parse with --day-first" in said and "no row landed" in said
    assert not (home / "clv.toml").exists() and Layout(home).landing_days() == []
    # `clv validate` takes the same options and never files an unreadable row under a day
    result = runner.invoke(app, ["validate", str(path), *lines, "--home", str(home)])
    assert result.exit_code == 1 and "(no day)" in result.output
    assert "2010-" not in result.output.split("rows per day")[1].split("(no day)")[0]
    # with --day-first: orders land on their days, the options are saved for later deliveries
    result = runner.invoke(app, ["import", str(path), *lines, "--day-first", "--home", str(home)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "Imported 5 of 5 rows (4 orders by InvoiceNo)" in said
    assert "into 3 day(s) 2010-12-01 .. 2010-12-14" in said
    source = load_config(home, environ={}).source
    assert (source.order_id, source.amount, source.day_first) == (
        "InvoiceNo",
        "Quantity * UnitPrice",
        True,
    )
    result = runner.invoke(app, ["validate", str(path), "--home", str(home)])  # saved options
    assert "(no day)" not in result.output and "2010-12-13" in result.output


def test_order_lines_without_order_id_get_the_hint(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "lines.csv"
    path.write_text(ORDER_LINES.replace("-12-2010", "-12-2010").replace("01-12-2010", "13-12-2010"))
    maps = [*UCI_MAPS, "-c", "InvoiceNo=transaction_id", "-c", "UnitPrice=amount", "--day-first"]
    result = runner.invoke(app, ["import", str(path), *maps, "--home", str(home)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "1 transaction ids repeat with different values (2 rows)" in said
    assert "--order-id" in said
    result = runner.invoke(
        app, ["import", str(path), "-c", "CustomerId=customer_id", "--home", str(home)]
    )
    said = " ".join(result.output.split())
    assert result.exit_code == 1
    assert "mapping CustomerId=customer_id matches no column" in said and "'CustomerID'" in said
