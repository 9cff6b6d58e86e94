"""Issue 20, item 6 end to end: a snapshot built before a backfill compares with the day before
once the backfill (or any run) publishes it.

Build D first (it compares with nothing), then backfill D-2: D is rebuilt and compares with D-2
(2 days earlier, labelled so); then run D-1: D is rebuilt again and compares with the day before.
Every rebuild goes through the snapshot job (stage, audit, commit), and a rerun of D afterwards
gives the same bytes.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from clv_pipeline import cli
from clv_pipeline.config import ClvConfig, load_config
from clv_pipeline.paths import Layout
from clv_pipeline.publish.catalog import committed_file, complete_dates
from clv_pipeline.runs import operations
from tests.conftest import land_demo_history

END = date(2024, 5, 31)


@pytest.fixture
def config(layout: Layout, tmp_path: Path) -> ClvConfig:
    land_demo_history(layout, tmp_path, n_customers=200, days=40, end=END, seed=7)
    return load_config(layout.home)


def _committed(layout: Layout, table: str, day: date) -> pl.DataFrame:
    path = committed_file(layout, table, day)
    assert path is not None, (table, day)
    return pl.read_parquet(path)


def _comparison(layout: Layout, day: date) -> tuple[object, object, set[object], set[object]]:
    kpis = _committed(layout, "kpis", day).row(0, named=True)
    migration = _committed(layout, "segment_migration", day)
    return (
        kpis["previous_as_of"],
        kpis["days_since_previous"],
        set(migration["previous_as_of"]),
        set(migration["days_since_previous"]),
    )


def _all_from_none(layout: Layout, day: date) -> bool:
    migration = _committed(layout, "segment_migration", day)
    return set(migration["from_value"]) == {"none"}


def test_a_backfill_brings_the_later_snapshot_up_to_date(
    config: ClvConfig, layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = END
    operations.run_partition(config, d)
    assert _comparison(layout, d) == (None, None, {None}, {None})
    assert _all_from_none(layout, d)
    assert operations.outdated_comparisons(config) == []

    # backfill D-2: D compared with nothing, now with D-2, two days earlier
    results = operations.backfill(config, d - timedelta(days=2), d - timedelta(days=2))
    assert [(r.day, r.ok) for r in results] == [(d - timedelta(days=2), True), (d, True)]
    assert complete_dates(layout) == [d - timedelta(days=2), d]
    two = d - timedelta(days=2)
    assert _comparison(layout, d) == (two, 2, {two}, {2})
    assert not _all_from_none(layout, d)
    kpis = _committed(layout, "kpis", d)
    assert kpis["customers_change"][0] is not None
    # the report's cards and `clv report` say the change spans two days
    report = (layout.warehouse / "reports" / f"as_of={d}" / "report.html").read_text()
    assert f"vs {two} (2 days earlier)" in report
    monkeypatch.setattr(cli.console, "width", 200)
    shown = CliRunner().invoke(cli.app, ["report", "--date", str(d)])
    assert shown.exit_code == 0, shown.output
    assert f"vs {two} (2 days earlier)" in shown.output
    assert "changes span 2 days" in shown.output

    # any run of a day in between: D compares with the day before
    operations.run_partition(config, d - timedelta(days=1))
    one = d - timedelta(days=1)
    assert _comparison(layout, d) == (one, 1, {one}, {1})
    assert _comparison(layout, one) == (two, 1, {two}, {1})
    assert operations.outdated_comparisons(config) == []
    migration = _committed(layout, "segment_migration", d)
    customers = _committed(layout, "customer_segments", d).height
    staying = migration.filter(
        (pl.col("dimension") == "value_tier") & (pl.col("from_value") != "none")
    )
    assert staying["customers"].sum() > 0.5 * customers  # yesterday's customers are matched
    # the views readers query serve the rebuilt files
    public = pl.read_parquet(layout.public_file("kpis", "as_of", d))
    assert public["previous_as_of"][0] == one

    # nothing outdated: a rerun of D gives the same bytes, no extra rebuild
    before = {t: committed_file(layout, t, d) for t in ("kpis", "segment_migration")}
    contents = {t: p.read_bytes() for t, p in before.items() if p is not None}
    operations.run_partition(config, d)
    after = {t: committed_file(layout, t, d) for t in ("kpis", "segment_migration")}
    assert {t: p.read_bytes() for t, p in after.items() if p is not None} == contents
