"""Partition status per asset, from the Dagster instance, the landing folder and file times."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import dagster as dg
from dagster._core.storage.partition_status_cache import AssetPartitionStatus

from clv_pipeline.paths import Layout
from clv_pipeline.schema import TABLES


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
    from clv_pipeline.runner import summarize

    details: dict[tuple[str, date], tuple[str, str]] = {}
    runs = instance.get_runs(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]), limit=limit
    )
    for run in runs:  # newest first: keep the first seen per (asset, day)
        tags = run.tags
        if "dagster/partition" in tags:
            days = [date.fromisoformat(tags["dagster/partition"])]
        elif "dagster/asset_partition_range_start" in tags:
            first = date.fromisoformat(tags["dagster/asset_partition_range_start"])
            last = date.fromisoformat(tags["dagster/asset_partition_range_end"])
            days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        else:
            continue
        outcome = summarize(instance, run.run_id)
        for step, error in outcome.failures:
            for day in days:
                details.setdefault((step, day), (run.run_id, error))
    return details


def _mtime(path: object) -> float | None:
    try:
        return path.stat().st_mtime  # type: ignore[attr-defined]
    except OSError:
        return None


def stale_days(layout: Layout, asset: str) -> list[date]:
    """Partitions whose inputs changed after they were published.

    Ingest assets: a landing file newer than the published day. Snapshot tables: a validated day
    on or before as_of newer than the snapshot (e.g. a late re-delivery of an old day).
    """
    table = TABLES.get(asset)
    if table is None:
        return []
    if table.partition_key == "date":
        out = []
        for day in layout.landing_days():
            published = _mtime(layout.partition_file(asset, "date", day))
            if published is not None and layout.landing_mtime(day) > published:
                out.append(day)
        return out
    validated = sorted(
        (d, _mtime(layout.partition_file("validated_transactions", "date", d)) or 0.0)
        for d in layout.published_days("validated_transactions", "date")
    )
    out = []
    newest, i = 0.0, 0
    for day in layout.published_days(asset, "as_of"):
        while i < len(validated) and validated[i][0] <= day:
            newest = max(newest, validated[i][1])
            i += 1
        published = _mtime(layout.partition_file(asset, "as_of", day)) or 0.0
        if newest > published:
            out.append(day)
    return out


def partition_status(
    instance: dg.DagsterInstance,
    layout: Layout,
    *,
    asset: str | None = None,
    since: date | None = None,
) -> list[AssetStatus]:
    """Per asset: materialized count and latest, failed (with run id and error), missing, stale.

    Missing: for ingest assets, landing days never materialized; for snapshot assets, dates where
    another snapshot asset was materialized but this one was not (an incomplete snapshot).
    """
    from clv_pipeline.definitions import defs
    from clv_pipeline.defs.assets import INGEST
    from clv_pipeline.defs.partitions import clv_daily_partition

    graph = defs.resolve_asset_graph()
    keys = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    if asset is not None:
        keys = [k for k in keys if k.to_user_string() == asset]
        if not keys:
            from clv_pipeline.errors import ClvError

            known = ", ".join(sorted(k.to_user_string() for k in graph.get_all_asset_keys()))
            raise ClvError(f"no asset {asset!r}; assets: {known}")
    partition_keys = clv_daily_partition.get_partition_keys(dynamic_partitions_store=instance)
    keep = (lambda d: d >= since) if since else (lambda d: True)
    statuses: dict[dg.AssetKey, dict[str, AssetPartitionStatus]] = {
        key: dict(instance.get_status_by_partition(key, partition_keys, clv_daily_partition) or {})  # type: ignore[arg-type]
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
