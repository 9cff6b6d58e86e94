"""Partition status per asset, from the Dagster instance and the landing folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import dagster as dg
from dagster._core.storage.partition_status_cache import AssetPartitionStatus

from clv_pipeline.paths import Layout


@dataclass
class AssetStatus:
    asset: str
    materialized: int = 0
    latest: date | None = None
    failed: list[date] = field(default_factory=list)
    missing: list[date] = field(default_factory=list)


def partition_status(instance: dg.DagsterInstance, layout: Layout) -> list[AssetStatus]:
    """Materialized count and latest date, failed partitions, and missing ones.

    Missing: for ingest assets, landing days never materialized; for snapshot assets, dates where
    another snapshot asset was materialized but this one was not (an incomplete snapshot).
    """
    from clv_pipeline.definitions import defs
    from clv_pipeline.defs.assets import INGEST
    from clv_pipeline.defs.partitions import clv_daily_partition

    graph = defs.resolve_asset_graph()
    keys = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    partition_keys = clv_daily_partition.get_partition_keys(dynamic_partitions_store=instance)
    statuses: dict[dg.AssetKey, dict[str, AssetPartitionStatus]] = {
        key: dict(instance.get_status_by_partition(key, partition_keys, clv_daily_partition) or {})  # type: ignore[arg-type]
        for key in keys
    }
    snapshot_days: set[date] = set()
    for key in keys:
        if graph.get(key).group_name != INGEST:
            snapshot_days |= {
                date.fromisoformat(p)
                for p, s in statuses[key].items()
                if s == AssetPartitionStatus.MATERIALIZED
            }
    landing = set(layout.landing_days())
    rows = []
    for key in keys:
        done = sorted(
            date.fromisoformat(p)
            for p, s in statuses[key].items()
            if s == AssetPartitionStatus.MATERIALIZED
        )
        failed = sorted(
            date.fromisoformat(p)
            for p, s in statuses[key].items()
            if s == AssetPartitionStatus.FAILED
        )
        expected = landing if graph.get(key).group_name == INGEST else snapshot_days
        rows.append(
            AssetStatus(
                asset=key.to_user_string(),
                materialized=len(done),
                latest=done[-1] if done else None,
                failed=failed,
                missing=sorted(expected - set(done) - set(failed)),
            )
        )
    return rows
