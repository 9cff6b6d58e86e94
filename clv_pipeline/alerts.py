"""Structured failure alerts: what failed, why, and the exact command that reruns it."""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from clv_pipeline.paths import Layout

log = logging.getLogger("clv_pipeline.alerts")
WEBHOOK_ENV = "CLV_ALERT_WEBHOOK_URL"


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


def send_alert(alert: Alert, layout: Layout) -> Path:
    """Append the alert to ``<home>/alerts/alerts.jsonl``, log it, POST it to the webhook if set."""
    folder = layout.home / "alerts"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "alerts.jsonl"
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
    url = os.environ.get(WEBHOOK_ENV)
    if url:
        if not url.startswith(("http://", "https://")):
            log.error("%s must be an http(s) URL; alert not sent", WEBHOOK_ENV)
            return path
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
            log.error("alert webhook %s failed: %s", url, exc)
    return path
