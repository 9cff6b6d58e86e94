"""Asset checks: the publish audits and the GX suite, reported to Dagster by constant names;
freshness checks on the daily assets BI reads."""

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg

from clv_pipeline.config import ClvConfig
from clv_pipeline.publish.audit import check_names

GX_CHECK = "gx_expectations"
RAW_ROWS_CHECK = "rows_delivered"
HISTORY_CHECK = "history_complete"
#: Daily assets whose day must be published by the deadline: the tables BI reads, their commit
#: point and the report.
FRESHNESS_ASSETS = ("customer_clv", "clv_snapshot", "report")


def build_freshness_checks(config: ClvConfig) -> list[dg.AssetChecksDefinition]:
    """A ``freshness_check`` on each of :data:`FRESHNESS_ASSETS`: it fails once the day that
    ended before the last ``freshness_deadline_hour``:00 (partition timezone) is not materialized.

    Non-blocking, severity ERROR: the late-day sensor alerts on failures. They run in every job
    that materializes their asset (a published day turns them green again) and, between runs,
    from the freshness sensor.
    """
    with warnings.catch_warnings():
        # superseded by FreshnessPolicy, which only the freshness daemon evaluates and which
        # records no check evaluation to alert on
        warnings.filterwarnings(
            "ignore",
            message=".*build_time_partition_freshness_checks.*",
            category=dg.SupersessionWarning,
        )
        return list(
            dg.build_time_partition_freshness_checks(
                assets=list(FRESHNESS_ASSETS),
                deadline_cron=f"0 {config.operations.freshness_deadline_hour} * * *",
                timezone=config.timezone,
                severity=dg.AssetCheckSeverity.ERROR,
            )
        )


def table_check_specs(asset: str, table: str | None = None) -> list[dg.AssetCheckSpec]:
    """Blocking checks for every audit of ``table`` (default: the asset's own table)."""
    return [
        dg.AssetCheckSpec(name, asset=asset, blocking=True, description=description)
        for name, description in check_names(table or asset)
    ]


def table_check_results(asset: str, checks: Mapping[str, list[str]]) -> list[dg.AssetCheckResult]:
    return [
        dg.AssetCheckResult(
            asset_key=asset,
            check_name=name,
            passed=not problems,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"problems": "\n".join(problems) or "none"},
        )
        for name, problems in checks.items()
    ]


def merge_checks(per_day: Iterable[Mapping[str, list[str]]]) -> dict[str, list[str]]:
    """Union of the problems of several partitions' audits (a range run reports once)."""
    merged: dict[str, list[str]] = {}
    for checks in per_day:
        for name, problems in checks.items():
            merged.setdefault(name, []).extend(problems)
    return merged


def gx_markdown(summary: list[dict[str, Any]]) -> str:
    """The GX suite outcome as a markdown table for the Dagster UI."""
    if not summary:
        return "(no rows validated)"
    lines = ["| expectation | column | success | unexpected | examples |", "|---|---|---|---|---|"]
    lines += [
        f"| {s['expectation']} | {s['column']} | {s['success']} | {s['unexpected']} | "
        f"{str(s['examples']).replace('|', '/')} |"
        for s in summary
    ]
    return "\n".join(lines)
