"""The churn step picks its basis from the day's selected model, diagnostics and backtest."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from clv_pipeline import pipeline
from clv_pipeline.config import load_config
from clv_pipeline.schema import TABLES

DAY = date(2024, 5, 20)


def _write(config: Any, table: str, rows: list[dict[str, Any]]) -> None:
    schema = TABLES[table].schema
    frame = pl.DataFrame([{c: row.get(c) for c in schema} for row in rows], schema=schema)
    path = config.layout.partition_file(table, "as_of", DAY)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path)


def _params(config: Any, selected: str) -> None:
    rows = [
        {
            "as_of": DAY,
            "model": m,
            "param": "r",
            "value": 1.0,
            "n_customers": 10,
            "n_repeat_customers": 5,
            "converged": True,
            "selected": m in (selected, "gamma_gamma"),
        }
        for m in ("bgnbd", "pareto_nbd", "gamma_gamma")
    ]
    _write(config, "model_params", rows)


def _diagnostics(config: Any, degenerate: str | None) -> None:
    _write(
        config,
        "model_diagnostics",
        [
            {
                "as_of": DAY,
                "model": m,
                "check": "dropout_degenerate",
                "status": "warn" if m == degenerate else "ok",
                "message": "x",
            }
            for m in ("bgnbd", "pareto_nbd")
        ],
    )


def _backtest(config: Any, auc: float) -> None:
    _write(
        config,
        "model_backtest",
        [
            {
                "as_of": DAY,
                "calibration_end": DAY,
                "holdout_days": 90,
                "model": m,
                "data_sufficient": True,
                "metric": "purchases_auc",
                "value": auc,
                "n_customers": 10,
            }
            for m in ("bgnbd", "pareto_nbd")
        ],
    )


@pytest.mark.parametrize(
    ("selected", "degenerate", "auc", "kind"),
    [
        ("bgnbd", "bgnbd", 0.8, "recency"),  # collapsed dropout: P(alive) ~ 1 for everyone
        ("pareto_nbd", "bgnbd", 0.8, "model"),  # only the other model collapsed
        ("pareto_nbd", None, 0.52, "recency"),  # ranks buyers barely better than chance
        ("pareto_nbd", None, 0.77, "model"),
    ],
)
def test_churn_basis_follows_the_selected_purchase_model(
    tmp_path: Path, selected: str, degenerate: str | None, auc: float, kind: str
) -> None:
    config = load_config(tmp_path, environ={})
    _params(config, selected)  # Gamma-Gamma is selected too: it must never be "the model"
    _diagnostics(config, degenerate)
    _backtest(config, auc)
    assert pipeline.churn_basis(config, DAY).kind == kind


def test_no_selected_model_scores_churn_from_recency(tmp_path: Path) -> None:
    config = load_config(tmp_path, environ={})
    _params(config, "none")
    basis = pipeline.churn_basis(config, DAY)
    assert basis.kind == "recency" and "no purchase model" in basis.reason
