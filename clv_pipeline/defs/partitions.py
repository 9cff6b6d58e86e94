"""The daily partitioning shared by every asset (start date and timezone from the config)."""

import dagster as dg

from clv_pipeline.config import ClvConfig

_config = ClvConfig.from_env()

clv_daily_partition = dg.DailyPartitionsDefinition(
    start_date=_config.start_date, timezone=_config.timezone
)
