"""The daily partitioning shared by every asset, built from the data home's settings."""

from datetime import timedelta

import dagster as dg

from clv_pipeline.config import ClvConfig


def build_partitions(config: ClvConfig) -> dg.DailyPartitionsDefinition:
    """Days from ``start_date`` to ``end_date`` (or yesterday in ``timezone`` when open-ended)."""
    end = config.end_date + timedelta(days=1) if config.end_date else None  # Dagster: exclusive
    return dg.DailyPartitionsDefinition(
        start_date=config.start_date.isoformat(),
        end_date=end.isoformat() if end else None,
        timezone=config.timezone,
    )
