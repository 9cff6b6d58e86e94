"""A failing day in a catch-up run never blocks the others; `clv status` shows each failed
partition once with its own error; `clv rerun --failed` leaves nothing failed and nothing stale.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clv_pipeline import cli
from clv_pipeline.config import ClvConfig, load_config
from clv_pipeline.paths import Layout
from clv_pipeline.publish.catalog import complete_dates
from clv_pipeline.runs import operations
from clv_pipeline.runs.instance import get_instance
from clv_pipeline.runs.status import (
    ERROR_CHARS,
    AssetStatus,
    Failure,
    group_failures,
    partition_status,
)
from tests.conftest import land_demo_history

END = date(2024, 4, 10)
BAD = END - timedelta(days=3)
runner = CliRunner()


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data home with 8 landed days and nothing ingested."""
    root = tmp_path_factory.mktemp("seed")
    home = root / "home"
    land_demo_history(Layout(home), root, n_customers=150, days=8, end=END, seed=21)
    return home


@pytest.fixture
def config(seed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ClvConfig:
    home = tmp_path / "home"
    shutil.copytree(seed, home)
    monkeypatch.setenv("CLV_HOME", str(home))
    monkeypatch.setattr(cli.console, "width", 200)
    return load_config(home, environ={})


def _garbage(layout: Layout, day: date, rows: int = 40) -> Path:
    """A file whose amounts do not parse: more bad rows than the day may have."""
    path = layout.landing_day(day) / "zz-garbage.csv"
    path.write_text(
        "transaction_id,customer_id,occurred_at,amount\n"
        + "".join(f"bad{i},c{i},{day}T10:00:00Z,n/a\n" for i in range(rows))
    )
    return path


def _broken(layout: Layout, day: date) -> Path:
    """A file without the required columns (a late delivery for an ingested day)."""
    path = layout.landing_day(day) / "zz-broken.csv"
    path.write_text("id;customer\n1;2\n")
    return path


def _status(config: ClvConfig) -> dict[str, AssetStatus]:
    return {r.asset: r for r in partition_status(config, get_instance(config))}


def _failure_lines(output: str) -> list[str]:
    """The lines between "Failed: ..." and "Rerun them ...": one per failure group."""
    start, end = output.index("Failed: "), output.index("Rebuild them with")
    return output[start:end].splitlines()[1:]


def test_a_failing_catch_up_day_leaves_the_others_published_and_rerun_completes(
    config: ClvConfig,
) -> None:
    layout = config.layout
    landed = layout.landing_days()
    garbage = _garbage(layout, BAD)
    result = runner.invoke(cli.app, ["run", "--date", str(END)])
    assert result.exit_code == 1
    said = " ".join(result.output.split())
    assert f"failed validated_transactions: {BAD}: " in said
    assert "(the other 7 day(s) of this step were published)" in said
    # every good day is published and recorded as materialized for its own partition
    assert layout.published_days("validated_transactions", "date") == [
        d for d in landed if d != BAD
    ]
    rows = _status(config)
    validated = rows["validated_transactions"]
    assert validated.failed == [BAD] and validated.missing == []
    assert validated.materialized == len(landed) - 1 and validated.latest == END
    assert rows["raw_transactions"].failed == [] and rows["raw_transactions"].materialized == 8
    failure = validated.errors[BAD]
    assert "failed validation" in failure.error and len(failure.error) <= ERROR_CHARS
    assert "\n" not in failure.error and "All rejected rows" in failure.text
    # the snapshot of END was not built: its history has a hole
    assert not layout.partition_file("customer_state", "as_of", END).exists()
    assert rows["customer_state"].errors[END].error == (
        "not run: validated_transactions failed in this run"
    )

    shown = runner.invoke(cli.app, ["status"])
    assert shown.exit_code == 1, shown.output
    lines = _failure_lines(shown.output)
    assert len(lines) == 2, shown.output  # the failed day, and END's snapshot assets in one line
    assert lines[0].startswith(f"validated_transactions {BAD} run {failure.run_id}: ")
    assert len(lines[0].split(": ", 1)[1]) <= ERROR_CHARS
    assert lines[1].startswith(f"16 assets (backtest_calibration, backtest_deciles, …) {END} run")
    good = [str(d) for d in landed if d not in (BAD, END)]
    assert not [line for line in lines if any(day in line for day in good)]
    verbose = runner.invoke(cli.app, ["status", "--verbose"])
    assert verbose.exit_code == 1 and "All rejected rows" in verbose.output

    garbage.unlink()
    rerun = runner.invoke(cli.app, ["rerun", "--failed"])
    assert rerun.exit_code == 0, rerun.output
    assert f"ingest {BAD}..{BAD}" in rerun.output and f"snapshot {END}" in rerun.output
    rows = _status(config)
    assert all(r.failed == [] and r.stale == [] for r in rows.values()), rows
    assert layout.partition_file("customer_clv", "as_of", END).exists()
    assert complete_dates(layout) == [END]
    assert runner.invoke(cli.app, ["status"]).exit_code == 0


def test_same_error_on_consecutive_days_is_one_line_and_rerun_refreshes_newer_snapshots(
    config: ClvConfig,
) -> None:
    layout = config.layout
    published = END - timedelta(days=2)
    operations.run_partition(config, published)
    first, second = END - timedelta(days=5), END - timedelta(days=4)  # before `published`
    broken = [_broken(layout, first), _broken(layout, second)]
    with pytest.raises(operations.RunFailed) as failure:
        operations.run_partition(config, END)
    assert f"2 of 4 day(s) failed to load: {first}, {second}" in str(failure.value)
    rows = _status(config)
    raw = rows["raw_transactions"]
    assert raw.failed == [first, second] and raw.materialized == 8 - 2
    assert all("zz-broken.csv: missing required column" in raw.errors[d].error for d in raw.failed)
    (group,) = [g for g in group_failures(rows.values()) if g.assets == ("raw_transactions",)]
    assert (group.first, group.last) == (first, second)
    assert "date=<date>/zz-broken.csv" in group.error
    shown = runner.invoke(cli.app, ["status"])
    assert shown.exit_code == 1
    assert any(
        line.startswith(f"raw_transactions {first}..{second} run ")
        for line in _failure_lines(shown.output)
    ), shown.output

    for path in broken:
        path.unlink()
    steps = operations.rerun_failed(config)
    assert [s.what for s in steps] == [
        f"ingest {first}..{END}",
        f"snapshot {published}",  # it read the re-ingested days: rebuilt, never left stale
        f"snapshot {END}",
    ]
    assert all(s.ok for s in steps), steps
    rows = _status(config)
    assert all(r.failed == [] and r.stale == [] for r in rows.values()), rows
    assert complete_dates(layout) == [published, END]


def test_hundreds_of_failed_days_stay_a_few_lines() -> None:
    days = [date(2023, 1, 1) + timedelta(days=i) for i in range(330)]
    same = "…/date=DAY/x.csv: missing required column(s) amount"
    errors = {
        d: Failure("run-1", same.replace("DAY", str(d)), same.replace("DAY", str(d))) for d in days
    }
    errors[days[100]] = Failure("run-1", "its own problem", "its own problem")
    rows = [
        AssetStatus("raw_transactions", failed=days, errors=errors),
        AssetStatus("validated_transactions", failed=days, errors=dict(errors)),
    ]
    groups = group_failures(rows)
    assert [(g.first, g.last, len(g.dates)) for g in groups] == [
        (days[0], days[-1], 329),
        (days[100], days[100], 1),
    ]
    assert all(g.assets == ("raw_transactions", "validated_transactions") for g in groups)
    assert groups[0].error == "…/date=<date>/x.csv: missing required column(s) amount"
    assert groups[0].days == "329 days: 2023-01-01..2023-04-10, 2023-04-12..2023-11-26"
    assert groups[1].error == "its own problem"


def test_failed_days_with_the_same_problem_and_other_counts_are_one_line() -> None:
    """A real export where guest orders fail 145 days, each with its own row counts."""
    days = [date(2010, 12, 1) + timedelta(days=2 * i) for i in range(145)]
    texts = {
        d: f"{d}: {i + 10} of {i + 100} rows ({(i + 10) / (i + 100):.1%}) failed validation, "
        f"more than both CLV_MAX_BAD_ROW_SHARE=5% and CLV_MAX_BAD_ROWS=10; customer_id "
        f"missing x{i + 10}"
        for i, d in enumerate(days)
    }
    errors = {d: Failure("run-9", text, text) for d, text in texts.items()}
    (group,) = group_failures([AssetStatus("validated_transactions", failed=days, errors=errors)])
    assert group.varies and len(group.dates) == 145
    assert group.error.startswith("e.g. 2010-12-01: 10 of 100 rows (10.0%)")
    assert len(group.error) <= 200
    assert group.days.startswith("145 days: 2010-12-01, 2010-12-03, 2010-12-05, 2010-12-07 (+141")
