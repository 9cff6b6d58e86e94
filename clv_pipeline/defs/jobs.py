"""Jobs and the daily schedule. Runs execute in process (one step costs ~3 s as a subprocess)."""

import warnings

import dagster as dg

from clv_pipeline.defs.assets import INGEST, SNAPSHOT

# The daily job mixes single-run ingest assets with per-partition snapshot assets; Dagster warns
# that backfills of it fall back to one partition per run, which is what we want.
warnings.filterwarnings("ignore", message=".*varying BackfillPolicies.*", category=UserWarning)

clv_daily_job = dg.define_asset_job(
    "clv_daily_job",
    selection=dg.AssetSelection.all(),
    executor_def=dg.in_process_executor,
    description="Every asset for one day: pull, validate, features, CLV, segments, churn, commit.",
)

clv_ingest_job = dg.define_asset_job(
    "clv_ingest_job",
    selection=dg.AssetSelection.groups(INGEST),
    executor_def=dg.in_process_executor,
    description="Pull + validate a range of days in one run (catch-up after an import).",
)

clv_snapshot_job = dg.define_asset_job(
    "clv_snapshot_job",
    selection=dg.AssetSelection.groups(SNAPSHOT),
    executor_def=dg.in_process_executor,
    description="Features, CLV, segments, churn and commit for one day (backfills, after ingest).",
)

clv_daily_schedule = dg.build_schedule_from_partitioned_job(
    clv_daily_job,
    name="clv_daily_schedule",
    hour_of_day=2,
    minute_of_hour=0,
    description="Every day at 02:00 (pipeline timezone) for the day that just ended.",
)
