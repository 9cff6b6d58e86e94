"""Shared fixtures: a temp data home and small hand-built frames."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from clv_pipeline.config import ClvConfig
from clv_pipeline.paths import Layout
from clv_pipeline.schema import RAW_TRANSACTIONS


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh CLV_HOME (Dagster's instance inside it); no CLV_* or DAGSTER_HOME from outside."""
    import os

    for name in [n for n in os.environ if n.startswith("CLV_")]:
        monkeypatch.delenv(name)
    root = tmp_path / "home"
    monkeypatch.setenv("CLV_HOME", str(root))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    yield root


@pytest.fixture
def layout(home: Path) -> Layout:
    return Layout(home)


def raw_frame(rows: Sequence[Mapping[str, object]], *, source: str = "a.csv") -> pl.DataFrame:
    """Raw (all-string) rows; missing columns are null, source columns filled in."""
    names = list(dict.fromkeys(k for row in rows for k in row))
    frame = pl.DataFrame(
        [{k: (None if row.get(k) is None else str(row[k])) for k in names} for row in rows],
        schema={k: pl.String for k in names},
    )
    for name, dtype in RAW_TRANSACTIONS.schema.items():
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype).alias(name))
    frame = frame.with_columns(
        pl.lit(source).alias("_source_file"),
        pl.int_range(pl.len(), dtype=pl.Int64).alias("_source_row"),
    )
    return frame.select(RAW_TRANSACTIONS.names)


def tx(
    day: str, customer: str, amount: object, tid: str, *, hour: int = 12, **extra: object
) -> dict[str, object]:
    """One contract row as a CSV export would have it."""
    return {
        "transaction_id": tid,
        "customer_id": customer,
        "occurred_at": f"{day}T{hour:02d}:00:00Z",
        "amount": amount,
        **extra,
    }


def write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows).write_csv(path)
    return path


D = date.fromisoformat


def land_demo_history(
    layout: Layout, folder: Path, *, n_customers: int, days: int, end: date, seed: int
) -> pl.DataFrame:
    """Generate a synthetic history, export it to ``folder`` and import it into landing."""
    from clv_pipeline.demo import generate_history
    from clv_pipeline.sources.landing import import_files

    history = generate_history(n_customers=n_customers, days=days, end=end, seed=seed)
    export = folder / f"history-{seed}.parquet"
    history.write_parquet(export)
    import_files([export], layout)
    return history


def build_through_features(config: ClvConfig, end: date, days: int) -> None:
    """Ingest the ``days`` + 1 landed days up to ``end``, then its state and features (the
    pipeline's steps in order, without Dagster)."""
    from clv_pipeline import pipeline

    span = [end - timedelta(days=i) for i in range(days + 1)][::-1]
    pipeline.pull_raw_days(config, span)
    pipeline.validate_days(config, span)
    pipeline.build_customer_state(config, end)
    pipeline.build_customer_features(config, end)
