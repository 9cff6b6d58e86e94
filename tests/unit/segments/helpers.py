"""Small hand-built frames for the segments tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from clv_pipeline.schema import CUSTOMER_CLV, CUSTOMER_FEATURES, VALIDATED_TRANSACTIONS

AS_OF = date(2024, 6, 30)


def features(rows: Sequence[Mapping[str, Any]], *, as_of: date = AS_OF) -> pl.LazyFrame:
    """Rows of (customer_id, T, ds = days since last purchase, n_days, revenue[, n_tx])."""
    out = []
    for r in rows:
        t, ds, n_days = int(r["T"]), int(r["ds"]), int(r.get("n_days", 1))
        recency, freq = t - ds, n_days - 1
        revenue = float(r.get("revenue", 10.0 * n_days))
        n_tx = int(r.get("n_tx", n_days))
        first = datetime.combine(as_of - timedelta(days=t), datetime.min.time(), tzinfo=UTC)
        out.append(
            {
                "customer_id": r["customer_id"],
                "as_of": as_of,
                "first_purchase_at": first,
                "last_purchase_at": first + timedelta(days=recency),
                "n_transactions": n_tx,
                "n_purchase_days": n_days,
                "frequency": freq,
                "recency": recency,
                "T": t,
                "days_since_last_purchase": ds,
                "monetary_value": revenue / n_days if freq else 0.0,
                "gross_revenue": revenue,
                "refund_amount": 0.0,
                "n_refunds": 0,
                "total_revenue": revenue,
                "aov": revenue / n_tx,
                "avg_days_between_purchases": recency / freq if freq else None,
            }
        )
    return pl.LazyFrame(out, schema=CUSTOMER_FEATURES.schema)


def clv(rows: Sequence[Mapping[str, Any]], *, as_of: date = AS_OF) -> pl.LazyFrame:
    """customer_clv rows; predictive columns null unless given (p_alive, predicted_clv, ...)."""
    out = []
    for r in rows:
        p_alive = r.get("p_alive")
        predicted = r.get("predicted_clv")
        historic = float(r.get("historic_clv", 0.0))
        out.append(
            {
                "customer_id": r["customer_id"],
                "as_of": as_of,
                "model": "bgnbd" if p_alive is not None else None,
                "data_sufficient": p_alive is not None,
                "p_alive": p_alive,
                "churn_probability": None if p_alive is None else 1.0 - p_alive,
                "expected_purchases": r.get("expected_purchases"),
                "prob_active_in_horizon": None,
                "expected_avg_value": None,
                "predicted_clv": predicted,
                "historic_clv": historic,
                "total_clv": None if predicted is None else historic + predicted,
                "horizon_days": 365.0,
                "expected_next_purchase_at": r.get("expected_next_purchase_at"),
                "formula_clv": float(r.get("formula_clv", 0.0)),
            }
        )
    return pl.LazyFrame(out, schema=CUSTOMER_CLV.schema)


def transactions(rows: Sequence[tuple[Any, ...]]) -> pl.LazyFrame:
    """(customer, 'YYYY-MM-DD', amount[, channel]) -> validated_transactions rows."""
    out = []
    for i, r in enumerate(rows):
        day = date.fromisoformat(r[1])
        amount = float(r[2])
        out.append(
            {
                "transaction_id": f"t{i:04d}",
                "customer_id": r[0],
                "occurred_at": datetime.combine(day, datetime.min.time(), tzinfo=UTC)
                + timedelta(hours=12, minutes=i),
                "event_date": day,
                "amount": amount,
                "revenue_kind": "purchase" if amount > 0 else "refund" if amount < 0 else "ignored",
                "currency": "EUR",
                "quantity": 1,
                "status": "completed",
                "channel": r[3] if len(r) > 3 else None,
                "product_category": None,
                "_source_file": "a.csv",
            }
        )
    return pl.LazyFrame(out, schema=VALIDATED_TRANSACTIONS.schema)


def by_id(frame: pl.DataFrame, column: str) -> dict[str, Any]:
    """{customer_id: value} of one column."""
    return dict(zip(frame["customer_id"].to_list(), frame[column].to_list(), strict=True))
