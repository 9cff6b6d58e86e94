"""Settings of the validation stage (built from :class:`~clv_pipeline.config.ClvConfig`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ValidationRules:
    timezone: str = "UTC"
    naive_timezone: str = "UTC"
    amount_min: float = -1_000_000.0
    amount_max: float = 1_000_000.0
    currencies: tuple[str, ...] = ()  # empty: any three-letter upper-case code
    known_statuses: tuple[str, ...] = (
        "completed",
        "complete",
        "paid",
        "pending",
        "processing",
        "shipped",
        "delivered",
        "refunded",
        "returned",
        "cancelled",
        "canceled",
        "failed",
        "void",
        "declined",
    )
    non_revenue_statuses: tuple[str, ...] = ("cancelled", "canceled", "failed", "void", "declined")
    max_bad_row_share: float = 0.05
    max_bad_rows: int = 10
    zero_amount: Literal["purchase", "ignore"] = "purchase"
    on_empty_day: Literal["warn", "fail"] = "warn"
