"""Invariants every published table must satisfy before it replaces the previous snapshot."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import polars as pl

from clv_pipeline.schema import Table

Audit = Callable[[pl.DataFrame], list[str]]


def _first(frame: pl.DataFrame, mask: pl.Expr | pl.Series, column: str) -> str:
    values = frame.filter(mask).get_column(column).head(3).to_list()
    return ", ".join(repr(v) for v in values)


def audit_contract(frame: pl.DataFrame, table: Table, *, day: date) -> list[str]:
    """Schema, nullability, finiteness and partition-date checks shared by every table."""
    problems = []
    if frame.schema != table.schema:
        problems.append(
            f"schema {dict(frame.schema)} differs from the contract {dict(table.schema)}"
        )
        return problems
    for column in table.columns:
        if not column.nullable and frame.get_column(column.name).null_count():
            problems.append(f"column {column.name} has nulls but the contract says not nullable")
        if column.dtype == pl.Float64:
            bad = ~pl.col(column.name).is_finite() & pl.col(column.name).is_not_null()
            if frame.select(bad.any()).item():
                problems.append(
                    f"column {column.name} has NaN/inf: {_first(frame, bad, column.name)}"
                )
    key = table.partition_key if table.partition_key == "as_of" else "event_date"
    if key in frame.columns:
        wrong = pl.col(key) != day
        if frame.select(wrong.any()).item():
            problems.append(f"{key} must be {day} everywhere; found {_first(frame, wrong, key)}")
    return problems


def _unique(column: str) -> Audit:
    def check(frame: pl.DataFrame) -> list[str]:
        dupes = frame.get_column(column).is_duplicated()
        if dupes.any():
            return [f"{column} not unique: {_first(frame, pl.Series(dupes), column)}"]
        return []

    return check


def _rule(message: str, ok: pl.Expr, show: str) -> Audit:
    def check(frame: pl.DataFrame) -> list[str]:
        bad = ~ok.fill_null(True)
        if frame.is_empty() or not frame.select(bad.any()).item():
            return []
        return [f"{message}; e.g. {show} = {_first(frame, bad, show)}"]

    return check


def _between(column: str, low: float, high: float) -> Audit:
    return _rule(f"{column} outside [{low}, {high}]", pl.col(column).is_between(low, high), column)


AUDITS: dict[str, list[Audit]] = {
    "validated_transactions": [_unique("transaction_id")],
    "customer_features": [
        _unique("customer_id"),
        _rule(
            "negative counts",
            pl.min_horizontal("n_transactions", "frequency", "recency") >= 0,
            "customer_id",
        ),
        _rule(
            "frequency != n_purchase_days - 1",
            pl.col("frequency") == pl.col("n_purchase_days") - 1,
            "customer_id",
        ),
        _rule("recency > T", pl.col("recency") <= pl.col("T"), "customer_id"),
        _rule(
            "as_of before the last purchase",
            pl.col("last_purchase_at").dt.date() <= pl.col("as_of") + pl.duration(days=1),
            "customer_id",
        ),
    ],
    "customer_clv": [
        _unique("customer_id"),
        _between("p_alive", 0.0, 1.0),
        _between("prob_active_in_horizon", 0.0, 1.0),
        _rule("negative expected purchases", pl.col("expected_purchases") >= 0, "customer_id"),
    ],
    "customer_segments": [_unique("customer_id")],
    "customer_churn": [_unique("customer_id"), _between("churn_probability", 0.0, 1.0)],
}


def audit_table(frame: pl.DataFrame, table: Table, *, day: date) -> list[str]:
    """Every problem found (empty list = publishable)."""
    problems = audit_contract(frame, table, day=day)
    if problems:
        return problems
    for check in AUDITS.get(table.name, []):
        problems.extend(check(frame))
    return problems
