"""Jobs and the daily schedule. Runs execute in process (one step costs ~3 s as a subprocess)."""

import warnings
from typing import Any

import dagster as dg

from clv_pipeline.defs.assets import INGEST, SNAPSHOT

DAILY_JOB = "clv_daily_job"
INGEST_JOB = "clv_ingest_job"
SNAPSHOT_JOB = "clv_snapshot_job"


def build_jobs() -> tuple[list[Any], Any]:
    """The daily, ingest and snapshot jobs, and the 02:00 schedule of the daily job."""
    # The daily job mixes single-run ingest assets with per-partition snapshot assets; Dagster
    # warns that backfills of it fall back to one partition per run, which is what we want.
    warnings.filterwarnings("ignore", message=".*varying BackfillPolicies.*", category=UserWarning)
    daily = dg.define_asset_job(
        DAILY_JOB,
        selection=dg.AssetSelection.all(),
        executor_def=dg.in_process_executor,
        description="Every asset for one day: pull, validate, features, CLV, segments, churn, commit.",
    )
    ingest = dg.define_asset_job(
        INGEST_JOB,
        selection=dg.AssetSelection.groups(INGEST),
        executor_def=dg.in_process_executor,
        description="Pull + validate a range of days in one run (catch-up after an import).",
    )
    snapshot = dg.define_asset_job(
        SNAPSHOT_JOB,
        selection=dg.AssetSelection.groups(SNAPSHOT),
        executor_def=dg.in_process_executor,
        description="Features, CLV, segments, churn and commit for one day (backfills, after ingest).",
    )
    schedule = dg.build_schedule_from_partitioned_job(
        daily,
        name="clv_daily_schedule",
        hour_of_day=2,
        minute_of_hour=0,
        description="Every day at 02:00 (pipeline timezone) for the day that just ended.",
    )
    return [daily, ingest, snapshot], schedule
