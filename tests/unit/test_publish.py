"""Write-audit-publish: atomic replace, failed audits keep the old snapshot, DuckDB commit point."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clv_pipeline.errors import PublishError
from clv_pipeline.paths import Layout
from clv_pipeline.publish import catalog
from clv_pipeline.publish.audit import audit_table, has_duplicates
from clv_pipeline.publish.warehouse import publish_table, read_published
from clv_pipeline.schema import SNAPSHOT_TABLES, TABLES

DAY = date(2024, 5, 1)


def _segments(n: int, day: date = DAY) -> pl.DataFrame:
    return _rows("customer_segments", n, day)


def _rows(name: str, n: int, day: date = DAY) -> pl.DataFrame:
    """n valid rows of a snapshot table (every column filled from its type)."""
    table = TABLES[name]
    values: dict[str, pl.Series] = {}
    for column in table.columns:
        dtype = column.dtype
        if column.name == "customer_id":
            data: list[object] = [f"c{i}" for i in range(n)]
        elif dtype == pl.Date:
            data = [day] * n
        elif dtype == pl.String:
            data = ["x"] * n
        elif dtype == pl.Boolean:
            data = [False] * n
        elif isinstance(dtype, pl.Datetime):
            data = [None] * n
        else:
            data = [1] * n
        values[column.name] = pl.Series(column.name, data, dtype=dtype)
    return pl.DataFrame(values)


def test_publish_replaces_atomically_and_leaves_no_temp_files(layout: Layout) -> None:
    first = publish_table(layout, "customer_segments", _segments(3), day=DAY)
    assert first.rows == 3 and first.path == layout.partition_file(
        "customer_segments", "as_of", DAY
    )
    second = publish_table(layout, "customer_segments", _segments(5), day=DAY)
    assert read_published(layout, "customer_segments", DAY).height == 5  # type: ignore[union-attr]
    assert second.path == first.path
    leftovers = [
        p for p in layout.warehouse.rglob("*") if p.is_file() and p.name != "part-0.parquet"
    ]
    assert leftovers == []
    assert "| customer_id |" in second.preview


def test_publish_removes_its_partitions_leftovers_only(layout: Layout) -> None:
    """A staged file of the same partition left by a killed run is removed; a file of another
    partition (in flight in another run, which holds that partition's lock) is left alone."""
    folder = layout.staging / "customer_segments"
    folder.mkdir(parents=True)
    mine = folder / "as_of=2024-05-01.0123abcd.parquet"
    other = folder / "as_of=2024-05-02.4567ef01.parquet"
    for path in (mine, other):
        path.write_bytes(b"partial")
    publish_table(layout, "customer_segments", _segments(3), day=DAY)
    assert not mine.exists()
    assert other.read_bytes() == b"partial"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: pl.concat([f, f.head(1)]), "customer_id not unique"),
        (lambda f: f.with_columns(pl.lit(date(2024, 4, 30)).alias("as_of")), "as_of must be"),
        (
            lambda f: f.with_columns(pl.lit(None, pl.String).alias("rfm_segment")),
            "rfm_segment has nulls",
        ),
        (lambda f: f.drop("rfm_segment"), "lacks columns"),
    ],
)
def test_failed_audit_keeps_previous_snapshot(
    layout: Layout, mutate: Callable[[pl.DataFrame], pl.DataFrame], message: str
) -> None:
    publish_table(layout, "customer_segments", _segments(3), day=DAY)
    before = layout.partition_file("customer_segments", "as_of", DAY).read_bytes()
    with pytest.raises(PublishError, match=message):
        publish_table(layout, "customer_segments", mutate(_segments(4)), day=DAY)
    assert layout.partition_file("customer_segments", "as_of", DAY).read_bytes() == before
    assert not any(layout.staging.rglob("*.parquet"))


def test_nan_is_never_published(layout: Layout) -> None:
    frame = _segments(2).with_columns(pl.Series("predicted_clv", [1.0, float("nan")]))
    with pytest.raises(PublishError, match="predicted_clv has NaN"):
        publish_table(layout, "customer_segments", frame, day=DAY)


def test_write_failure_is_a_clear_error(layout: Layout) -> None:
    if os.geteuid() == 0:
        target_dir = layout.partition_file("customer_segments", "as_of", DAY).parent
        target_dir.mkdir(parents=True)
        (target_dir / "part-0.parquet").mkdir()  # a directory where the file must go: rename fails
    else:  # pragma: no cover - non-root: a read-only folder
        layout.warehouse.mkdir(parents=True)
        layout.warehouse.chmod(0o500)
    with pytest.raises(PublishError, match="could not write|previous snapshot kept"):
        publish_table(layout, "customer_segments", _segments(2), day=DAY)


def _publish_snapshot(layout: Layout, day: date, n: int) -> None:
    for name in SNAPSHOT_TABLES:
        frame = pl.DataFrame(schema=TABLES[name].schema)
        if name == "customer_segments":
            frame = _segments(n, day)
        elif name == "kpis":
            frame = _rows("kpis", 1, day)
        publish_table(layout, name, frame, day=day)


def test_views_only_show_complete_snapshots(layout: Layout) -> None:
    _publish_snapshot(layout, DAY, 2)
    assert catalog.mark_complete(layout, DAY) == [DAY]
    # the next day is half published: segments only
    nxt = date(2024, 5, 2)
    publish_table(layout, "customer_segments", _segments(7, nxt), day=nxt)
    with pytest.raises(PublishError, match="incomplete"):
        catalog.mark_complete(layout, nxt)
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        assert con.execute(
            "SELECT count(*), max(as_of) FROM customer_segments_latest"
        ).fetchone() == (2, DAY)
        assert con.execute("SELECT count(*) FROM customer_segments").fetchone() == (2,)
    assert catalog.complete_dates(layout) == [DAY]
    _publish_snapshot(layout, nxt, 7)
    catalog.mark_complete(layout, nxt)
    with duckdb.connect(str(layout.catalog), read_only=True) as con:
        assert con.execute(
            "SELECT count(*), max(as_of) FROM customer_segments_latest"
        ).fetchone() == (7, nxt)
        assert con.execute("SELECT count(*) FROM customer_segments").fetchone() == (9,)
    assert catalog.complete_dates(layout) == [DAY, nxt]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d", "e"])), max_size=12),
    st.booleans(),
)
def test_has_duplicates_agrees_with_is_duplicated(values: list[str | None], ordered: bool) -> None:
    """The uniqueness audit (sorted adjacent values) says what polars' is_duplicated says."""
    series = pl.Series("customer_id", values, dtype=pl.String)
    if ordered:
        series = series.sort()
    assert has_duplicates(series) == bool(series.is_duplicated().any())
    ints = pl.Series("n", [None if v is None else ord(v) for v in values], dtype=pl.Int64)
    assert has_duplicates(ints) == bool(ints.is_duplicated().any())


def test_duplicate_customer_is_refused_in_a_sorted_table() -> None:
    day = date(2024, 1, 31)
    table = TABLES["customer_features"]
    ids = pl.Series("customer_id", ["a", "b", "b", "c"])
    assert has_duplicates(ids) and has_duplicates(ids.reverse())
    assert not has_duplicates(ids.unique().sort())
    frame = pl.DataFrame(schema=table.schema)
    assert audit_table(frame, table, day=day)["unique_customer_id"] == []
