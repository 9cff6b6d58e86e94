"""Dagster wiring (assets, checks, jobs, schedule, sensors, resources), built from one config.

Logic lives in :mod:`clv_pipeline.pipeline` and the stage packages; nothing here reads the
environment.
"""

import dagster as dg

from clv_pipeline.config import ClvConfig
from clv_pipeline.defs.assets import build_assets
from clv_pipeline.defs.checks import build_freshness_checks
from clv_pipeline.defs.jobs import build_jobs
from clv_pipeline.defs.metadata import owned_and_referenced
from clv_pipeline.defs.partitions import build_partitions
from clv_pipeline.defs.resources import build_resources
from clv_pipeline.defs.sensors import build_failure_sensor, build_freshness_sensors


def build_defs(config: ClvConfig) -> dg.Definitions:
    """Every Dagster definition of the data home ``config.home``."""
    assets = owned_and_referenced(
        build_assets(build_partitions(config), shards=config.scale.shards), config.operations.owners
    )
    freshness = build_freshness_checks(config)
    jobs, schedule = build_jobs(config)
    return dg.Definitions(
        assets=assets,
        asset_checks=freshness,
        jobs=jobs,
        schedules=[schedule],
        sensors=[build_failure_sensor(config), *build_freshness_sensors(config, freshness)],
        resources=build_resources(config),
    )
