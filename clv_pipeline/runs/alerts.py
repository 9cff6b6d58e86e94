"""Structured failure alerts: what failed, why, and the exact command that reruns it.

One alert per failed run: the CLI (which sees its own runs fail) and the daemon's failure sensor
(which sees every run fail) both call :func:`alert_failed_run`; the first to claim the run's
marker file sends it, the other does nothing.

One alert per late day: when the latest freshness check of a daily asset failed (the day that
just ended was not published by its deadline), the daemon's late-day sensor calls
:func:`alert_late_days`; the day's marker keeps later ticks from sending it again.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecordStatus,
)

from clv_pipeline.config import ClvConfig
from clv_pipeline.paths import Layout
from clv_pipeline.runs.records import run_label, summarize

log = logging.getLogger("clv_pipeline.alerts")


@dataclass(frozen=True)
class Alert:
    run_id: str
    job: str
    partition: str | None
    failed_steps: list[str]
    error: str
    rerun_command: str
    at: str
    kind: str = "run_failed"  # or "late": a day not published by its freshness deadline

    @classmethod
    def for_run(
        cls, *, run_id: str, job: str, partition: str | None, failures: list[tuple[str, str]]
    ) -> Alert:
        steps = [step for step, _ in failures] or ["run"]
        error = failures[0][1] if failures else "run failed before any step ran"
        command = f"clv rerun {run_id}"
        if partition and ".." not in partition:
            command += f"   # or: clv run --date {partition}"
        return cls(run_id, job, partition, steps, error, command, datetime.now(UTC).isoformat())

    @classmethod
    def for_late_day(
        cls, *, day: date, assets: list[str], deadline: datetime, run_id: str, job: str
    ) -> Alert:
        """``assets`` of ``day`` were not published by ``deadline`` (their freshness checks failed
        in the run ``run_id``)."""
        error = (
            f"{', '.join(assets)} of {day} not published by {deadline:%Y-%m-%d %H:%M %Z} "
            "(operations.freshness_deadline_hour, CLV_FRESHNESS_DEADLINE_HOUR): the day's run "
            "failed (see its alert), is still running, or never started (schedule off, daemon down)"
        )
        return cls(
            run_id=run_id,
            job=job,
            partition=str(day),
            failed_steps=[f"{asset}:{FRESHNESS_CHECK}" for asset in assets],
            error=error,
            rerun_command=f"clv run --date {day}",
            at=datetime.now(UTC).isoformat(),
            kind="late",
        )


def alert_failed_run(
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    config: ClvConfig,
    *,
    failures: list[tuple[str, str]] | None = None,
) -> Path | None:
    """Alert once for the failed ``run``; None when it was already alerted.

    ``failures`` (step, first error line) when the caller has them already (the CLI's
    :class:`~clv_pipeline.runs.records.RunOutcome`); else they are read from the run's events.
    """
    if failures is None:
        failures = summarize(instance, run.run_id).failures
    alert = Alert.for_run(
        run_id=run.run_id,
        job=run.job_name,
        partition=run_label(run.tags),
        failures=failures,
    )
    return send_alert(alert, config.layout, webhook_url=config.operations.alert_webhook_url)


FRESHNESS_CHECK = "freshness_check"  # the name Dagster gives the checks of its freshness factory
DEADLINE_METADATA = "dagster/latest_cron_tick_timestamp"  # the deadline the failed check missed


def late_day(deadline: datetime, config: ClvConfig) -> date:
    """The day that had to be published by ``deadline``: the day before it in the partitions'
    timezone (the last day of a closed history at the latest)."""
    day = deadline.astimezone(ZoneInfo(config.timezone)).date() - timedelta(days=1)
    return min(day, config.end_date) if config.end_date else day


def alert_late_days(
    instance: dg.DagsterInstance, config: ClvConfig, check_keys: Iterable[dg.AssetCheckKey]
) -> list[Path]:
    """Alert once per late day: the days whose assets' latest freshness check failed.

    A check that failed and passed again since (the day was published, a rerun) is not alerted;
    one alert names every asset of the day found late (``alerts/.sent/late-<day>``).
    """
    summaries = instance.event_log_storage.get_asset_check_summary_records(list(check_keys))
    late: dict[date, tuple[list[str], datetime, str]] = {}
    for key, summary in sorted(summaries.items(), key=lambda item: item[0].to_user_string()):
        record = summary.last_completed_check_execution_record
        event = record.event.dagster_event if record and record.event else None
        if (
            record is None
            or event is None
            or record.status != AssetCheckExecutionRecordStatus.FAILED
        ):
            continue
        evaluation = event.asset_check_evaluation_data
        if evaluation.severity != dg.AssetCheckSeverity.ERROR:
            continue
        tick = evaluation.metadata.get(DEADLINE_METADATA)
        deadline = datetime.fromtimestamp(
            float(tick.value) if tick is not None else record.create_timestamp,  # type: ignore[arg-type]
            tz=ZoneInfo(config.timezone),
        )
        day = late_day(deadline, config)
        late.setdefault(day, ([], deadline, record.run_id))[0].append(
            key.asset_key.to_user_string()
        )
    sent = []
    for day, (assets, deadline, run_id) in sorted(late.items()):
        run = instance.get_run_by_id(run_id)
        alert = Alert.for_late_day(
            day=day,
            assets=assets,
            deadline=deadline,
            run_id=run_id,
            job=run.job_name if run else "?",
        )
        path = send_alert(
            alert, config.layout, webhook_url=config.operations.alert_webhook_url, key=f"late-{day}"
        )
        if path is not None:
            sent.append(path)
    return sent


def _claim(layout: Layout, key: str) -> bool:
    """True for the first caller per key (an O_EXCL marker file, safe across processes)."""
    folder = layout.alerts / ".sent"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(folder / key, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return False
    return True


def send_alert(
    alert: Alert, layout: Layout, *, webhook_url: str = "", key: str | None = None
) -> Path | None:
    """Append the alert to ``<home>/alerts/alerts.jsonl``, log it, POST it to the webhook if set.

    None (and nothing sent) when ``key`` (default: the run id) was already alerted.
    """
    if not _claim(layout, key or alert.run_id):
        return None
    path = layout.alerts / "alerts.jsonl"
    payload = asdict(alert)
    with path.open("a") as handle:
        handle.write(json.dumps(payload) + "\n")
    what = "late" if alert.kind == "late" else f"run {alert.run_id} failed"
    log.error(
        "CLV %s (job %s, partition %s, steps %s): %s -- rerun: %s",
        what,
        alert.job,
        alert.partition,
        ", ".join(alert.failed_steps),
        alert.error,
        alert.rerun_command,
    )
    if webhook_url:
        _post(webhook_url, payload)
    return path


def _post(url: str, payload: dict[str, object]) -> None:
    if not url.startswith(("http://", "https://")):
        log.error("the alert webhook (CLV_ALERT_WEBHOOK_URL) must be an http(s) URL; not sent")
        return
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass
    except OSError as exc:
        log.error("alert webhook failed: %s", exc)
