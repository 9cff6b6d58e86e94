"""Dagster entry point (``workspace.yaml`` loads this module)."""

import dagster as dg

from clv_pipeline.defs.assets import ingest_assets, snapshot_assets
from clv_pipeline.defs.jobs import clv_daily_job, clv_daily_schedule, clv_ingest_job
from clv_pipeline.defs.resources import build_resources

defs = dg.Definitions(
    assets=[*ingest_assets, *snapshot_assets],
    jobs=[clv_daily_job, clv_ingest_job],
    schedules=[clv_daily_schedule],
    resources=build_resources(),
)
