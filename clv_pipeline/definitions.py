"""Dagster entry point (``workspace.yaml`` loads this module)."""

import dagster as dg

from clv_pipeline.defs.assets import ingest_assets, snapshot_assets
from clv_pipeline.defs.jobs import (
    clv_daily_job,
    clv_daily_schedule,
    clv_ingest_job,
    clv_snapshot_job,
)
from clv_pipeline.defs.resources import build_resources
from clv_pipeline.defs.sensors import clv_failure_alert

defs = dg.Definitions(
    assets=[*ingest_assets, *snapshot_assets],
    jobs=[clv_daily_job, clv_ingest_job, clv_snapshot_job],
    schedules=[clv_daily_schedule],
    sensors=[clv_failure_alert],
    resources=build_resources(),
)
