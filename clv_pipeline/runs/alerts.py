"""Structured failure alerts: what failed, why, and the exact command that reruns it.

One alert per failed run: the CLI (which sees its own runs fail) and the daemon's failure sensor
(which sees every run fail) both call :func:`alert_failed_run`; the first to claim the run's
marker file sends it, the other does nothing.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

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


def _claim(layout: Layout, run_id: str) -> bool:
    """True for the first caller per run id (an O_EXCL marker file, safe across processes)."""
    folder = layout.alerts / ".sent"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(folder / run_id, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return False
    return True


def send_alert(alert: Alert, layout: Layout, *, webhook_url: str = "") -> Path | None:
    """Append the alert to ``<home>/alerts/alerts.jsonl``, log it, POST it to the webhook if set.

    None (and nothing sent) when this run was already alerted.
    """
    if not _claim(layout, alert.run_id):
        return None
    path = layout.alerts / "alerts.jsonl"
    payload = asdict(alert)
    with path.open("a") as handle:
        handle.write(json.dumps(payload) + "\n")
    log.error(
        "CLV run %s failed (job %s, partition %s, steps %s): %s -- rerun: %s",
        alert.run_id,
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
