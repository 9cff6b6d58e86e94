"""First versions of the segment and churn tables (recency / frequency rules).

Segment map (days since last purchase x purchase-days):

=============  ==============  ==============  =============
recency band   one_time (1)    repeat (2-4)    loyal (5+)
=============  ==============  ==============  =============
0-30           new             active          champions
31-90          promising       active          loyal
91-180         about_to_sleep  at_risk         cant_lose
181+           lost            hibernating     lost_loyal
=============  ==============  ==============  =============
"""

from __future__ import annotations

from typing import Any

import polars as pl

from clv_pipeline.schema import CUSTOMER_CHURN, CUSTOMER_SEGMENTS

RECENCY_BANDS = ((30, "0-30"), (90, "31-90"), (180, "91-180"))
SEGMENT_MAP = {
    ("0-30", "one_time"): "new",
    ("0-30", "repeat"): "active",
    ("0-30", "loyal"): "champions",
    ("31-90", "one_time"): "promising",
    ("31-90", "repeat"): "active",
    ("31-90", "loyal"): "loyal",
    ("91-180", "one_time"): "about_to_sleep",
    ("91-180", "repeat"): "at_risk",
    ("91-180", "loyal"): "cant_lose",
    ("181+", "one_time"): "lost",
    ("181+", "repeat"): "hibernating",
    ("181+", "loyal"): "lost_loyal",
}


def assign_segments(features: pl.LazyFrame) -> pl.LazyFrame:
    """Recency band, frequency band and named segment per customer."""
    days = pl.col("days_since_last_purchase")
    band: Any = pl.when(days <= RECENCY_BANDS[0][0]).then(pl.lit(RECENCY_BANDS[0][1]))
    for limit, label in RECENCY_BANDS[1:]:
        band = band.when(days <= limit).then(pl.lit(label))
    segment_map = pl.LazyFrame(
        {
            "recency_band": [k[0] for k in SEGMENT_MAP],
            "frequency_band": [k[1] for k in SEGMENT_MAP],
            "segment": list(SEGMENT_MAP.values()),
        }
    )
    return (
        features.with_columns(
            band.otherwise(pl.lit("181+")).alias("recency_band"),
            pl.when(pl.col("n_purchase_days") == 1)
            .then(pl.lit("one_time"))
            .when(pl.col("n_purchase_days") <= 4)
            .then(pl.lit("repeat"))
            .otherwise(pl.lit("loyal"))
            .alias("frequency_band"),
        )
        .join(segment_map, on=["recency_band", "frequency_band"], how="left")
        .select(CUSTOMER_SEGMENTS.names)
        .sort("customer_id")
    )


def flag_churn(
    features: pl.LazyFrame, clv: pl.LazyFrame, *, churn_window_days: int
) -> pl.LazyFrame:
    """Churned when days since the last purchase exceed the window; model churn probability."""
    return (
        features.join(clv.select("customer_id", "churn_probability"), on="customer_id", how="left")
        .with_columns(
            pl.lit(churn_window_days, pl.Int64).alias("churn_window_days"),
            (pl.col("days_since_last_purchase") > churn_window_days).alias("is_churned"),
        )
        .select(CUSTOMER_CHURN.names)
        .sort("customer_id")
    )
