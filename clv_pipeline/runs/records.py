"""What a Dagster run covered and how it ended: partition tags <-> days, failed steps, errors."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

OUR_ERRORS = {"InputError", "DayFailures", "PublishError", "ClvError", "ConfigError", "LockedError"}


def day_range(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def partition_tags(
    *, partition: date | None = None, span: tuple[date, date] | None = None
) -> dict[str, str]:
    """Run tags for one partition or a single-run range (what Dagster's own backfills set)."""
    if span is not None:
        return {
            ASSET_PARTITION_RANGE_START_TAG: span[0].isoformat(),
            ASSET_PARTITION_RANGE_END_TAG: span[1].isoformat(),
        }
    return {PARTITION_NAME_TAG: partition.isoformat()} if partition else {}


def run_days(tags: Mapping[str, str]) -> list[date]:
    """The partition days a run covered, from its tags (empty for an unpartitioned run)."""
    if PARTITION_NAME_TAG in tags:
        return [date.fromisoformat(tags[PARTITION_NAME_TAG])]
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if start and end:
        return day_range(date.fromisoformat(start), date.fromisoformat(end))
    return []


def is_single_partition(tags: Mapping[str, str]) -> bool:
    """The run was for one partition (not a range, not unpartitioned)."""
    return PARTITION_NAME_TAG in tags


def run_label(tags: Mapping[str, str]) -> str | None:
    """``2024-01-31`` for one partition, ``2024-01-01..2024-01-31`` for a range, else None."""
    days = run_days(tags)
    if not days:
        return None
    return str(days[0]) if is_single_partition(tags) else f"{days[0]}..{days[-1]}"


DAILY_JOB_NAME = "clv_daily_job"  # clv_pipeline.defs.jobs.DAILY_JOB (no definitions imported here)


def run_command(day: date, home: Path | str) -> str:
    """The command that builds ``day`` completely: catch-up ingest, snapshot, later comparisons."""
    return f"clv run --date {day} --home {shlex.quote(str(home))}"


def recovery_command(job: str, tags: Mapping[str, str], home: Path | str) -> str:
    """The command that finishes what a failed or killed run was for.

    A run of one partition: ``clv run --date D`` (it ingests what is missing first). A range
    (an ingest backfill): ``clv rerun --failed``, which re-ingests the range once and builds the
    days that were requested; the range alone builds no snapshot.
    """
    days = run_days(tags)
    if days and (is_single_partition(tags) or job == DAILY_JOB_NAME):
        return run_command(days[-1], home)
    return f"clv rerun --failed --home {shlex.quote(str(home))}"


@dataclass
class RunOutcome:
    run_id: str
    success: bool
    failures: list[tuple[str, str]] = field(default_factory=list)  # (step, error first line)
    materialized: list[str] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)  # step -> the error's full text


def summarize(instance: dg.DagsterInstance, run_id: str) -> RunOutcome:
    """Success flag, failed steps with the first line of their error, materialized assets."""
    run = instance.get_run_by_id(run_id)
    outcome = RunOutcome(run_id, bool(run and run.status == dg.DagsterRunStatus.SUCCESS))
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_FAILURE and event.step_failure_data:
            error = event.step_failure_data.error
            text = root_text(error) if error else "unknown error"
            outcome.failures.append((event.step_key or "?", text.splitlines()[0]))
            outcome.details.setdefault(event.step_key or "?", text)
        elif event.event_type == dg.DagsterEventType.RUN_FAILURE and event.message:
            outcome.details.setdefault("run", event.message)  # e.g. orphaned: its process died
        elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            key = event.asset_key.to_user_string() if event.asset_key else "?"
            outcome.materialized.append(key)
    return outcome


def root_message(error: object) -> str:
    """First line of our own error in the cause chain (it names file/column), else the innermost."""
    return root_text(error).splitlines()[0]


def root_text(error: object) -> str:
    """Full text of our own error in the cause chain, else of the innermost one.

    Our errors lose their ``clv_pipeline.errors.InputError: `` prefix: the message is the news.
    """
    chain = []
    while error is not None:
        chain.append(error)
        error = getattr(error, "cause", None)
    ours = [e for e in chain if getattr(e, "cls_name", "") in OUR_ERRORS]
    chosen = ours[0] if ours else chain[-1]
    message = str(getattr(chosen, "message", chosen)).strip()
    if not message:
        return "unknown error"
    head, sep, rest = message.partition(": ")  # "clv_pipeline.errors.InputError: <message>"
    cls_name = getattr(chosen, "cls_name", "")
    own_prefix = ours and sep and "\n" not in head and head.rsplit(".", 1)[-1] == cls_name
    if own_prefix:
        return rest.strip() or "unknown error"
    return message
