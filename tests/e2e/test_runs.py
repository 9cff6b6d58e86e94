"""Run bookkeeping without a run: partition tags <-> days, labels, error messages."""

from __future__ import annotations

from datetime import date

from dagster._utils.error import SerializableErrorInfo

from clv_pipeline.runs.records import (
    is_single_partition,
    partition_tags,
    root_message,
    run_days,
    run_label,
)

D1, D3 = date(2024, 1, 30), date(2024, 2, 1)


def test_tags_round_trip_to_days_and_labels() -> None:
    one = partition_tags(partition=D1)
    assert run_days(one) == [D1] and run_label(one) == "2024-01-30" and is_single_partition(one)
    span = partition_tags(span=(D1, D3))
    assert run_days(span) == [D1, date(2024, 1, 31), D3]
    assert run_label(span) == "2024-01-30..2024-02-01" and not is_single_partition(span)
    single_day_range = partition_tags(span=(D1, D1))
    assert run_label(single_day_range) == "2024-01-30..2024-01-30"  # still a range run
    assert run_days({}) == [] and run_label({}) is None and partition_tags() == {}


def test_root_message_prefers_our_error_over_dagster_wrappers() -> None:
    ours = SerializableErrorInfo(
        "InputError: /x/drop.csv: missing required column(s) amount\nmore", [], "InputError"
    )
    wrapper = SerializableErrorInfo(
        "Error in step raw_transactions", [], "DagsterExecutionStepExecutionError", cause=ours
    )
    assert root_message(wrapper) == "/x/drop.csv: missing required column(s) amount"
    qualified = SerializableErrorInfo(
        "clv_pipeline.locks.LockedError: ingest is locked by another clv run", [], "LockedError"
    )
    assert root_message(qualified) == "ingest is locked by another clv run"
    other = SerializableErrorInfo("OSError: [Errno 28] No space left on device", [], "OSError")
    outer = SerializableErrorInfo("step failed", [], "DagsterError", cause=other)
    assert root_message(outer) == "OSError: [Errno 28] No space left on device"
