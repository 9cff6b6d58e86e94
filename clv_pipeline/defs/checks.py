"""Asset checks: the publish audits and the GX suite, reported to Dagster by constant names."""

from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg

from clv_pipeline.publish.audit import check_names

GX_CHECK = "gx_expectations"
RAW_ROWS_CHECK = "rows_delivered"
HISTORY_CHECK = "history_complete"


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
