"""A catch-up validated in several batches (pipeline.validate_days, ``MAX_BATCH_ROWS``) publishes
the files of the same batches validated by separate calls: the re-delivery check sees the ids of
the days published by the batches before (the one just before included), never those of a failed
day."""

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from clv_pipeline import pipeline
from clv_pipeline.config import load_config
from clv_pipeline.errors import DayFailures
from clv_pipeline.paths import Layout
from tests.conftest import tx, write_csv

START = date(2024, 5, 1)
DAYS = [START + timedelta(days=i) for i in range(8)]
ROWS_PER_DAY = 5
# batches of two days: (d0, d1) (d2, d3) (d4, d5) (d6, d7)
BATCH_ROWS = 2 * ROWS_PER_DAY
REDELIVERED = "transaction_id already delivered on an earlier day"


def _land(home: Path) -> None:
    """Five rows a day, with:

    * ``again-1`` on d1 and on d2: re-delivered in the batch right after its first day's, which is
      being published while d2's batch is validated;
    * ``again-2`` on d0 and d7: re-delivered batches later;
    * d3 failing as a whole (three amounts of five unreadable), with its valid row ``lost-1``
      delivered again on d4: d3 is not published, so d4's row is valid.
    """
    layout = Layout(home)
    special = {
        (1, 0): "again-1",
        (2, 0): "again-1",
        (0, 0): "again-2",
        (7, 0): "again-2",
        (3, 0): "lost-1",
        (4, 0): "lost-1",
    }
    for i, day in enumerate(DAYS):
        rows = [
            tx(
                day.isoformat(),
                f"c{(i * 3 + n) % 7}",
                "n/a" if i == 3 and n >= 2 else f"{10 + n}.50",
                special.get((i, n), f"t{i}-{n}"),
                hour=8 + n,
            )
            for n in range(ROWS_PER_DAY)
        ]
        write_csv(layout.landing_day(day) / "export.csv", rows)


def _validate(home: Path, chunks: list[list[date]]) -> dict[str, bytes]:
    # a day fails above half its rows quarantined (one re-delivered row of five does not)
    config = load_config(
        home,
        environ={},
        overrides={"validation.max_bad_row_share": 0.5, "validation.max_bad_rows": 0},
    )
    pipeline.pull_raw_days(config, DAYS)
    failed: set[date] = set()
    for chunk in chunks:
        try:
            pipeline.validate_days(config, chunk)
        except DayFailures as exc:
            failed |= set(exc.failures)
    assert failed == {DAYS[3]}
    layout = Layout(home)
    paths = [
        *layout.table_dir("validated_transactions").rglob("*.parquet"),
        *layout.quarantine.rglob("*.parquet"),
    ]
    return {
        str(path.relative_to(home)): path.read_bytes()
        for path in sorted(paths)
        if ".versions" not in path.parts
    }


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "MAX_BATCH_ROWS", BATCH_ROWS)


@pytest.mark.usefixtures("batches")
def test_overlapped_batches_publish_the_files_of_batches_one_after_the_other(
    tmp_path: Path,
) -> None:
    overlapped, sequential = tmp_path / "overlapped", tmp_path / "sequential"
    for home in (overlapped, sequential):
        _land(home)
    files = _validate(overlapped, [DAYS])
    assert files == _validate(sequential, [DAYS[i : i + 2] for i in range(0, len(DAYS), 2)])
    assert any("quarantine" in name for name in files)

    layout = Layout(overlapped)
    quarantined = pl.read_parquet(layout.quarantine_file("transactions", DAYS[2]))
    assert quarantined.filter(pl.col("transaction_id") == "again-1")["reason"].to_list() == [
        REDELIVERED
    ]
    quarantined = pl.read_parquet(layout.quarantine_file("transactions", DAYS[7]))
    assert REDELIVERED in quarantined.filter(pl.col("transaction_id") == "again-2")["reason"][0]
    valid = pl.read_parquet(layout.partition_file("validated_transactions", "date", DAYS[4]))
    assert "lost-1" in valid["transaction_id"].to_list()  # d3 failed: not an earlier delivery
    assert not layout.partition_file("validated_transactions", "date", DAYS[3]).exists()
