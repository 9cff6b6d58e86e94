"""Partition status per asset, from the Dagster instance, the landing folder and file times."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import dagster as dg
from dagster._core.storage.partition_status_cache import AssetPartitionStatus

from clv_pipeline.config import ClvConfig
from clv_pipeline.defs import build_defs
from clv_pipeline.defs.assets import INGEST
from clv_pipeline.defs.partitions import build_partitions
from clv_pipeline.errors import ClvError
from clv_pipeline.history import stale_days
from clv_pipeline.runs.records import run_days, summarize


@dataclass
class AssetStatus:
    asset: str
    materialized: int = 0
    latest: date | None = None
    failed: list[date] = field(default_factory=list)
    missing: list[date] = field(default_factory=list)
    stale: list[date] = field(default_factory=list)
    errors: dict[date, tuple[str, str]] = field(default_factory=dict)  # day -> (run id, error)


def _failure_details(
    instance: dg.DagsterInstance, limit: int = 200
) -> dict[tuple[str, date], tuple[str, str]]:
    """(asset, day) -> (run id, first error line) from the latest failed runs."""
    details: dict[tuple[str, date], tuple[str, str]] = {}
    runs = instance.get_runs(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]), limit=limit
    )
    for run in runs:  # newest first: keep the first seen per (asset, day)
        days = run_days(run.tags)
        if not days:
            continue
        for step, error in summarize(instance, run.run_id).failures:
            for day in days:
                details.setdefault((step, day), (run.run_id, error))
    return details


def partition_status(
    config: ClvConfig,
    instance: dg.DagsterInstance,
    *,
    asset: str | None = None,
    since: date | None = None,
) -> list[AssetStatus]:
    """Per asset: materialized count and latest, failed (with run id and error), missing, stale.

    Missing: for ingest assets, landing days never materialized; for snapshot assets, dates where
    another snapshot asset was materialized but this one was not (an incomplete snapshot).
    """
    layout = config.layout
    graph = build_defs(config).resolve_asset_graph()
    every = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    keys = [k for k in every if asset is None or k.to_user_string() == asset]
    if not keys:
        known = ", ".join(k.to_user_string() for k in every)
        raise ClvError(f"no asset {asset!r}; assets: {known}")
    partitions = build_partitions(config)
    partition_keys = partitions.get_partition_keys(dynamic_partitions_store=instance)
    keep = (lambda d: d >= since) if since else (lambda d: True)
    statuses: dict[dg.AssetKey, dict[str, AssetPartitionStatus]] = {
        key: dict(instance.get_status_by_partition(key, partition_keys, partitions) or {})  # type: ignore[arg-type]
        for key in keys
    }

    def days_with(key: dg.AssetKey, status: AssetPartitionStatus) -> list[date]:
        return sorted(date.fromisoformat(p) for p, s in statuses[key].items() if s == status)

    snapshot_days: set[date] = set()
    for key in keys:
        if graph.get(key).group_name != INGEST:
            snapshot_days |= set(days_with(key, AssetPartitionStatus.MATERIALIZED))
    landing = set(layout.landing_days())
    details = _failure_details(instance)
    rows = []
    for key in keys:
        name = key.to_user_string()
        done = days_with(key, AssetPartitionStatus.MATERIALIZED)
        failed = [d for d in days_with(key, AssetPartitionStatus.FAILED) if keep(d)]
        expected = landing if graph.get(key).group_name == INGEST else snapshot_days
        step = "customer_clv" if name == "model_params" else name
        rows.append(
            AssetStatus(
                asset=name,
                materialized=len(done),
                latest=done[-1] if done else None,
                failed=failed,
                missing=[d for d in sorted(expected - set(done) - set(failed)) if keep(d)],
                stale=[d for d in stale_days(layout, name) if keep(d)],
                errors={d: details[(step, d)] for d in failed if (step, d) in details},
            )
        )
    return rows
