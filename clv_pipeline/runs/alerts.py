"""Structured alerts: what failed, why, and the exact command that fixes it.

One alert per failed run: the CLI (which sees its own runs fail) and the daemon's failure sensor
(which sees every run fail) both call :func:`alert_failed_run`; the first to claim the run's
marker file sends it, the other does nothing.

One alert per late day: when the latest freshness check of a daily asset failed (the day that
just ended was not published by its deadline), the daemon's late-day sensor calls
:func:`alert_late_days`; the day's marker keeps later ticks from sending it again.

Also: a ``clv`` command refused because another run holds the lock
(:func:`alert_lock_refused`, once per holder), a day published empty with
``CLV_ON_EMPTY_DAY=warn`` (:func:`alert_empty_days`, once per day), and a command that failed
outside a run, e.g. on a full data home (:func:`emergency_alert`).

Every alert is one line of ``<home>/alerts/alerts.jsonl`` with a ``text`` a person can read (what
failed, which day, the command that fixes it), the ``host`` and the ``data_home``; it is written
*before* the webhook is tried, then its ``delivery`` (``sent``, ``failed`` with
``delivery_error``, ``not configured``) and ``delivered_at`` are filled in. When the data home
cannot take the line (disk full, read-only, no permission) it goes to stderr and to
:func:`fallback_paths` outside the data home, and the webhook is still tried. Nothing written,
logged or posted contains a secret: the webhook URL and every error text go through
:func:`clv_pipeline.redact.redact`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import socket
import sys
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecordStatus,
)

from clv_pipeline.config import ClvConfig, OperationsSettings, load_config
from clv_pipeline.parquet import read_footer
from clv_pipeline.paths import Layout
from clv_pipeline.redact import redact
from clv_pipeline.runs.records import run_label, summarize

log = logging.getLogger("clv_pipeline.alerts")

ALERTS_FILE = "alerts.jsonl"
FALLBACK_FILE = "alerts-fallback.jsonl"
DEFAULT_TIMEOUT_SECONDS = 10.0
WEBHOOK_ENV = OperationsSettings.env_name("alert_webhook_url")  # CLV_ALERT_WEBHOOK_URL
FORMAT_ENV = OperationsSettings.env_name("alert_format")  # CLV_ALERT_FORMAT
TIMEOUT_ENV = OperationsSettings.env_name("alert_timeout_seconds")  # CLV_ALERT_TIMEOUT_SECONDS
ERROR_CHARS = 300  # of the error in the one-line `text`
VALIDATED = "validated_transactions"

# what every kind of alert says first (the `text` field), before the host and the data home
HEADLINES = {
    "run_failed": "CLV run failed",
    "late": "CLV day not published by its deadline",
    "lock_refused": "CLV command refused: another clv run holds the lock",
    "empty_day": "CLV day published empty (no rows delivered)",
    "command_failed": "CLV command failed",
}


@dataclass(frozen=True)
class Alert:
    run_id: str
    job: str
    partition: str | None
    failed_steps: list[str]
    error: str
    rerun_command: str
    at: str
    kind: str = "run_failed"  # late, lock_refused, empty_day, command_failed
    extra: dict[str, Any] = field(default_factory=dict)  # kind-specific fields (holder, cause)

    @classmethod
    def for_run(
        cls,
        *,
        run_id: str,
        job: str,
        partition: str | None,
        failures: list[tuple[str, str]],
        command: str | None = None,
    ) -> Alert:
        """``command``: the command that fixes it when the caller knows better (the day the user
        asked for); default ``clv rerun <run id>`` (and ``clv run --date`` for one day)."""
        steps = [step for step, _ in failures] or ["run"]
        error = failures[0][1] if failures else "run failed before any step ran"
        if command is None:
            command = f"clv rerun {run_id}"
            if partition and ".." not in partition:
                command += f"   # or: clv run --date {partition}"
        return cls(run_id, job, partition, steps, error, command, _now())

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
            at=_now(),
            kind="late",
        )

    def text(self, data_home: str, host: str) -> str:
        """Two lines a person can read: what failed, which day, where; the command to run."""
        headline = HEADLINES.get(self.kind, "CLV alert")
        if self.kind == "run_failed":
            headline += f": {self.job}"
        if self.partition:
            headline += f", day {self.partition}"
        error = " ".join(self.error.split())
        if len(error) > ERROR_CHARS:
            error = error[: ERROR_CHARS - 1] + "…"
        where = f", data home {data_home}" if data_home else ""
        return redact(f"{headline} (host {host}{where}): {error}\nFix: {self.rerun_command}")


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class Delivery:
    """Where alerts go: the webhook (a secret), the body's format and the webhook's timeout."""

    webhook_url: str = ""
    format: str = "json"
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    @classmethod
    def of(cls, config: ClvConfig) -> Delivery:
        ops = config.operations
        return cls(ops.alert_webhook_url, ops.alert_format, ops.alert_timeout_seconds)

    @classmethod
    def from_env(cls, home: Path | None = None) -> Delivery:
        """The data home's settings when they load, else the CLV_ALERT_* variables alone (a
        broken or unreadable data home must still alert)."""
        with contextlib.suppress(Exception):  # anything: fall back to the environment
            return cls.of(load_config(home))
        try:
            timeout = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_SECONDS))
        except ValueError:
            timeout = DEFAULT_TIMEOUT_SECONDS
        chosen = os.environ.get(FORMAT_ENV, "json").strip().lower()
        return cls(
            os.environ.get(WEBHOOK_ENV, "").strip(),
            chosen if chosen in {"json", "slack", "teams"} else "json",
            timeout if timeout > 0 else DEFAULT_TIMEOUT_SECONDS,
        )


def alert_failed_run(
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    config: ClvConfig,
    *,
    failures: list[tuple[str, str]] | None = None,
    command: str | None = None,
) -> Path | None:
    """Alert once for the failed ``run``; None when it was already alerted.

    ``failures`` (step, first error line) when the caller has them already (the CLI's
    :class:`~clv_pipeline.runs.records.RunOutcome`); else they are read from the run's events.
    ``command``: the command that fixes it (see :meth:`Alert.for_run`).
    """
    if failures is None:
        failures = summarize(instance, run.run_id).failures
    alert = Alert.for_run(
        run_id=run.run_id,
        job=run.job_name,
        partition=run_label(run.tags),
        failures=failures,
        command=command,
    )
    return send_alert(alert, config.layout, delivery=Delivery.of(config))


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
        path = send_alert(alert, config.layout, delivery=Delivery.of(config), key=f"late-{day}")
        if path is not None:
            sent.append(path)
    return sent


def alert_lock_refused(
    config: ClvConfig, message: str, *, command: str | None = None
) -> Path | None:
    """Alert that a ``clv`` command was refused because another run holds the lock
    (``message``: the :class:`~clv_pipeline.locks.LockedError`, naming the holder).

    Once per holder and refused command: a cron retrying every few minutes behind a long run
    alerts once. None when already alerted."""
    refused = command or _own_command()
    fix = f"clv status --home {config.home}   # wait for the holder to finish, then: {refused}"
    alert = Alert(
        run_id="",
        job="",
        partition=None,
        failed_steps=["lock"],
        error=message,
        rerun_command=fix,
        at=_now(),
        kind="lock_refused",
        extra={"command": refused},
    )
    digest = hashlib.sha256(f"{message}\n{refused}".encode()).hexdigest()[:16]
    return send_alert(alert, config.layout, delivery=Delivery.of(config), key=f"locked-{digest}")


def empty_days(instance: dg.DagsterInstance, run_id: str, layout: Layout) -> list[str]:
    """The days the run ``run_id`` published ``validated_transactions`` with no rows (its own
    partition and the days it caught up)."""
    days = set()
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        event = record.dagster_event
        materialization = event.step_materialization_data.materialization if event else None
        if materialization is None or materialization.partition is None:
            continue
        if materialization.asset_key.path[-1:] == [VALIDATED]:
            days.add(materialization.partition)
    empty = []
    for day in sorted(days):
        path = layout.partition_file(VALIDATED, "date", date.fromisoformat(day))
        with contextlib.suppress(Exception):  # unreadable: not ours to judge here
            # the footer's row count: a first run checks ~730 days (a scan each cost ~0.6 s)
            if read_footer(path).num_rows == 0:
                empty.append(day)
    return empty


def alert_empty_days(config: ClvConfig, instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """Alert once per day the run published empty (``CLV_ON_EMPTY_DAY=warn``); return the
    warning line of each such day (the CLI prints them), alerted now or before."""
    warnings = []
    for day in empty_days(instance, run_id, config.layout):
        landing = config.layout.landing_day(date.fromisoformat(day))
        message = (
            f"{day}: no rows delivered ({landing}); the day was published empty "
            "(CLV_ON_EMPTY_DAY=warn). If the delivery was late or lost, add the files and run "
            f"`clv run --date {day} --home {config.home}`; to fail empty days instead: "
            "CLV_ON_EMPTY_DAY=fail"
        )
        alert = Alert(
            run_id=run_id,
            job="",
            partition=day,
            failed_steps=["validated_transactions"],
            error=message,
            rerun_command=f"clv run --date {day} --home {config.home}",
            at=_now(),
            kind="empty_day",
        )
        send_alert(alert, config.layout, delivery=Delivery.of(config), key=f"empty-{day}")
        warnings.append(message)
    return warnings


def emergency_alert(
    *,
    error: str,
    home: Path | None,
    command: str,
    kind: str = "error",
    path: str | None = None,
    delivery: Delivery | None = None,
) -> Path | None:
    """The alert of a command that failed outside a run, when the data home itself may be
    unusable (full, read-only, no permission): ``<home>/alerts/alerts.jsonl`` when it can take
    it, else stderr and :func:`fallback_paths`; the webhook is tried either way.

    ``kind``: the cause (disk_full, no_permission, read_only, storage, ...); ``path``: the path
    at fault. Returns the file the alert went to (None: stderr only)."""
    delivery = delivery if delivery is not None else Delivery.from_env(home)
    shown = f"clv {command}".strip()
    alert = Alert(
        run_id="",
        job="",
        partition=None,
        failed_steps=[kind],
        error=error,
        rerun_command=shown + (f" --home {home}" if home and "--home" not in shown else ""),
        at=_now(),
        kind="command_failed",
        extra={"cause": kind, "path": path, "command": shown},
    )
    return _deliver(alert, home, delivery)


def fallback_paths() -> list[Path]:
    """Where an alert goes when the data home cannot take it, in order:
    ``<tempdir>/clv-logs/alerts.jsonl`` (next to the fallback logs of
    :mod:`clv_pipeline.failures`; often a tmpfs, not the full disk), then
    ``$XDG_STATE_HOME/clv/alerts-fallback.jsonl`` (default ``~/.local/state/clv/``)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return [
        Path(tempfile.gettempdir()) / "clv-logs" / ALERTS_FILE,
        Path(state) / "clv" / FALLBACK_FILE,
    ]


def _own_command() -> str:
    args = sys.argv[1:] if sys.argv and Path(sys.argv[0]).name == "clv" else []
    return " ".join(["clv", *args]) if args else "the refused clv command"


def _claim(layout: Layout, key: str) -> bool:
    """True for the first caller per key (an O_EXCL marker file, safe across processes).

    True as well when no marker can be written (a full or read-only data home): an alert sent
    twice is better than none."""
    folder = layout.alerts / ".sent"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.close(os.open(folder / key, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return False
    except OSError:
        return True
    return True


def send_alert(
    alert: Alert,
    layout: Layout,
    *,
    delivery: Delivery | None = None,
    webhook_url: str | None = None,
    key: str | None = None,
) -> Path | None:
    """Append the alert to ``<home>/alerts/alerts.jsonl``, log it, POST it to the webhook if set
    and record the delivery in its line.

    None (and nothing sent) when ``key`` (default: the run id) was already alerted. The file the
    alert went to otherwise: ``alerts.jsonl``, or a :func:`fallback_paths` file when the data home
    could not take it (the alert is then printed to stderr too).
    """
    if not _claim(layout, key or alert.run_id or f"{alert.kind}-{uuid.uuid4().hex}"):
        return None
    if delivery is None:  # the data home's format and timeout (CLV_ALERT_FORMAT, ...)
        delivery = Delivery.from_env(layout.home)
    if webhook_url is not None:
        delivery = Delivery(webhook_url, delivery.format, delivery.timeout)
    return _deliver(alert, layout.home, delivery)


def record_of(alert: Alert, home: Path | None, *, host: str | None = None) -> dict[str, Any]:
    """The line of ``alerts.jsonl`` (before its delivery is known): every field redacted."""
    host = host or socket.gethostname()
    data_home = str(home) if home is not None else ""
    fields = asdict(alert)
    extra = fields.pop("extra")
    record: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "kind": alert.kind,
        "text": alert.text(data_home, host),
        "host": host,
        "data_home": data_home,
        **fields,
        **extra,
    }
    return _redacted(record)


def payload_of(record: dict[str, Any], alert_format: str) -> dict[str, Any]:
    """The body POSTed to the webhook: the alert itself ('json'), Slack's ``{"text": ...}``, or a
    Teams MessageCard (its ``text`` is markdown: lines are separated by a blank line)."""
    text = str(record["text"])
    if alert_format == "slack":
        return {"text": text}
    if alert_format == "teams":
        title = text.splitlines()[0]
        return {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": title[:150],
            "themeColor": "D70000",
            "title": HEADLINES.get(str(record.get("kind")), "CLV alert"),
            "text": text.replace("\n", "\n\n"),
        }
    return {k: v for k, v in record.items() if not k.startswith("deliver")}


def _deliver(alert: Alert, home: Path | None, delivery: Delivery) -> Path | None:
    record = record_of(alert, home)
    record["delivery"] = "pending" if delivery.webhook_url else "not configured"
    where = _write(record, home)
    log.error("%s", record["text"].replace("\n", " -- "))
    if delivery.webhook_url:
        outcome, problem = post(
            delivery.webhook_url, payload_of(record, delivery.format), timeout=delivery.timeout
        )
        update = {
            "delivery": outcome,
            "delivery_error": problem,
            "delivered_at": _now() if outcome == "sent" else None,
        }
        if outcome != "sent":
            log.error(
                "alert webhook %s failed: %s (the alert is in %s)",
                redact(delivery.webhook_url),
                problem,
                where or "stderr",
            )
        if where is not None:
            _update(where, str(record["id"]), update)
    return where


def _write(record: dict[str, Any], home: Path | None) -> Path | None:
    """Append ``record`` to the data home's alerts file; when it cannot take it, to stderr and
    the first :func:`fallback_paths` file that can. The file written (None: stderr only)."""
    line = json.dumps(record, default=str) + "\n"
    problem = "no data home"
    if home is not None:
        path = Layout(home).alerts / ALERTS_FILE
        try:
            _append(path, line)
            return path
        except OSError as exc:
            problem = redact(f"{path}: {exc.strerror or exc}")
    _to_stderr(f"clv alert (alerts file not written: {problem}): {line}")
    for fallback in fallback_paths():
        try:
            _append(fallback, line)
        except OSError:
            continue
        _to_stderr(f"clv alert written to {fallback}\n")
        return fallback
    return None


def _to_stderr(text: str) -> None:
    stream = sys.__stderr__ or sys.stderr
    with contextlib.suppress(OSError, ValueError):
        stream.write(text)
        stream.flush()


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold ``<folder>/.alerts.lock`` (appends and delivery updates never interleave); without
    the lock when it cannot be created (a read-only or full folder)."""
    try:
        handle = (folder / ".alerts.lock").open("a")
    except OSError:
        yield
        return
    with handle:
        with contextlib.suppress(OSError):
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _append(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.parent), path.open("a") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def _update(path: Path, alert_id: str, fields: dict[str, Any]) -> None:
    """Fill in the delivery of the alert ``alert_id`` in its line of ``path`` (rewritten
    atomically); when that fails, the line stays as written ("pending") and the failure is
    logged."""
    try:
        with _locked(path.parent):
            lines = path.read_text().splitlines(keepends=True)
            for i, line in enumerate(lines):
                if f'"id": "{alert_id}"' not in line:
                    continue
                lines[i] = json.dumps({**json.loads(line), **_redacted(fields)}) + "\n"
                break
            else:
                return
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text("".join(lines))
            os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            path.with_name(f".{path.name}.{os.getpid()}.tmp").unlink(missing_ok=True)
        log.error("delivery of alert %s not recorded in %s: %s", alert_id, path, exc.strerror)


def post(url: str, payload: dict[str, Any], *, timeout: float) -> tuple[str, str | None]:
    """POST ``payload`` as JSON; ("sent", None) or ("failed", why, redacted). Never raises and
    never waits longer than ``timeout`` for the webhook to answer."""
    if not url.startswith(("http://", "https://")):
        return "failed", f"the alert webhook ({WEBHOOK_ENV}) must be an http(s) URL"
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url,
        data=json.dumps(payload, default=str).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read(1024)
    except urllib.error.HTTPError as exc:
        return "failed", redact(f"HTTP {exc.code} {exc.reason}")
    except TimeoutError:
        return "failed", f"timed out after {timeout:g}s"
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return "failed", f"timed out after {timeout:g}s"
        return "failed", redact(f"cannot connect: {reason}")
    except ValueError:  # http.client.InvalidURL quotes the URL (a password in it): not shown
        return "failed", f"the alert webhook ({WEBHOOK_ENV}) is not a valid URL"
    except Exception as exc:  # noqa: BLE001 - an alert never crashes its caller
        return "failed", redact(f"{type(exc).__name__}: {exc}")
    return "sent", None


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value
