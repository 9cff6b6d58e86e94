"""Jobs and the daily schedule, on the Dagster executor chosen by ``scale.executor``.

``in_process`` (the default) runs every step in the run's own process (a step costs ~3 s more as
a subprocess). ``multiprocess`` runs each step in a child process, ``scale.max_concurrent`` at a
time; ``celery`` sends each step to Celery workers through ``scale.celery_broker`` (the
``celery`` extra); ``k8s`` runs each step as a Kubernetes Job (the ``k8s`` extra, configured by
the instance's ``K8sRunLauncher``). See docs/scaling.md, "Running on Dagster's executors".
"""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType
from typing import Any

import dagster as dg

from clv_pipeline.config import ClvConfig, ConfigError
from clv_pipeline.defs.assets import INGEST, SHARDS, SNAPSHOT

DAILY_JOB = "clv_daily_job"
INGEST_JOB = "clv_ingest_job"
SNAPSHOT_JOB = "clv_snapshot_job"
#: scale.executor -> (module of its Dagster executor, the extra that installs it)
EXTRAS = {"celery": ("dagster_celery", "celery"), "k8s": ("dagster_k8s", "k8s")}


def build_executor(config: ClvConfig) -> dg.ExecutorDefinition:
    """The Dagster executor of ``config.scale.executor`` (its extra is imported only here)."""
    scale = config.scale
    if scale.executor == "in_process":
        return dg.in_process_executor
    if scale.executor == "multiprocess":
        steps = scale.max_concurrent or os.cpu_count() or 1
        return dg.multiprocess_executor.configured({"max_concurrent": steps})
    module = _extra(config)
    if scale.executor == "celery":
        if not scale.celery_broker:
            return module.celery_executor  # Celery's default broker (a local RabbitMQ)
        # results go back through the same server (Redis is both broker and result backend)
        broker = {"broker": scale.celery_broker, "backend": scale.celery_broker}
        return module.celery_executor.configured(broker)
    return module.k8s_job_executor  # namespace, image etc.: the instance's K8sRunLauncher


def _extra(config: ClvConfig) -> ModuleType:
    """The executor's package; a missing one is a ConfigError that says how to install it."""
    executor = config.scale.executor
    module, extra = EXTRAS[executor]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        origin = config.origin("scale.executor")
        raise ConfigError(
            f"scale.executor = {executor!r} (CLV_EXECUTOR, set by {origin}) needs the "
            f"{module.replace('_', '-')} package, which is not installed ({exc}). Install the "
            f"extra: pip install 'clv-pipeline[{extra}]' (from a checkout: pip install -e "
            f"'.[{extra}]'), or choose another executor, e.g. CLV_EXECUTOR=in_process."
        ) from None


def build_jobs(config: ClvConfig) -> tuple[list[Any], Any]:
    """The daily, ingest and snapshot jobs, and the 02:00 schedule of the daily job."""
    # The daily job mixes single-run ingest assets with per-partition snapshot assets; Dagster
    # warns that backfills of it fall back to one partition per run, which is what we want.
    warnings.filterwarnings("ignore", message=".*varying BackfillPolicies.*", category=UserWarning)
    executor = build_executor(config)
    daily = dg.define_asset_job(
        DAILY_JOB,
        selection=dg.AssetSelection.all(),
        executor_def=executor,
        description="Every asset for one day: pull, validate, features, CLV, segments, churn, commit.",
    )
    ingest = dg.define_asset_job(
        INGEST_JOB,
        selection=dg.AssetSelection.groups(INGEST),
        executor_def=executor,
        description="Pull + validate a range of days in one run (catch-up after an import).",
    )
    snapshot = dg.define_asset_job(
        SNAPSHOT_JOB,
        selection=dg.AssetSelection.groups(SNAPSHOT, SHARDS),  # shards: CLV_SHARDS > 1
        executor_def=executor,
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
