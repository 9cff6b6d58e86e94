"""Every failure of a ``clv`` command as one line: the path, the cause in plain words, the fix.

The CLI's top-level handler (``clv_pipeline.cli``) calls :func:`report` for any exception a command
did not turn into a message itself: the full traceback (and what Dagster printed during the run)
goes to a log file under the data home, ``<home>/logs/clv-YYYYMMDD.log``, named in the line; when
the data home cannot take it (disk full, read-only, no permission), to
``<tempdir>/clv-logs/`` instead, and the line says so. A data home that is full or cannot be
written still produces an alert (:func:`emergency_alert`).

:func:`explain_text` words the first line of a failed step's error the same way (``clv run``
prints it after the failed steps), so "No space left on device (os error 28)" from polars reads
"disk full: …" there too.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sqlite3
import tempfile
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from clv_pipeline.errors import ClvError

LOG_FOLDER = "logs"
FALLBACK_FOLDER = "clv-logs"  # under tempfile.gettempdir(), outside the data home

DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
NO_PERMISSION = {errno.EACCES, errno.EPERM}
_PATH_IN_TEXT = re.compile(r"""(?:: |\bpath |\bfile |\bwrite )['"]?(/[^'"\s,;)]+)""")


@dataclass(frozen=True)
class Failure:
    """``cause`` in plain words ("disk full"), the ``path`` at fault (None when unknown), the
    ``fix`` (a sentence, no trailing period) and whether the data home itself may be unusable."""

    cause: str
    path: str | None
    fix: str
    home_unusable: bool = False
    kind: str = "error"  # disk_full, no_permission, read_only, storage, input, error

    def text(self) -> str:
        where = f": {self.path}" if self.path else ""
        return f"{self.cause}{where}; {self.fix}"


def chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes/contexts, outermost first (each once)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def explain(exc: BaseException, *, home: Path | None, rerun: str) -> Failure:
    """The one-line wording of ``exc`` (the most telling error of its chain)."""
    errors = list(chain(exc))
    for error in errors:  # OSError with an errno says the most: disk full, permissions
        if isinstance(error, OSError) and error.errno is not None:
            found = _os_failure(error, rerun=rerun)
            if found is not None:
                return found
    for error in errors:
        if isinstance(error, sqlite3.Error):
            return _sqlite_failure(error, home=home, rerun=rerun)
    for error in errors:
        found = explain_text(f"{type(error).__name__}: {error}", home=home, rerun=rerun)
        if found is not None:
            return found
    first = errors[0]
    if isinstance(first, ClvError):
        return Failure(str(first).strip() or type(first).__name__, None, f"then `{rerun}`", False)
    name = type(first).__module__.split(".")[0]
    what = {"duckdb": "DuckDB error", "dagster": "Dagster error", "polars": "polars error"}
    words = f"{what.get(name, 'unexpected error')} ({type(first).__name__}): {_first_line(first)}"
    return Failure(words, None, f"see the log below; after fixing the cause: `{rerun}`")


def explain_text(text: str, *, home: Path | None, rerun: str) -> Failure | None:
    """A failure recognized from an error's text (a failed Dagster step only keeps the text)."""
    lower = text.lower()
    path = _path_in(text)
    if (
        "no space left on device" in lower
        or "os error 28" in lower
        or "errno 28" in lower
        or "database or disk is full" in lower
        or "disk quota exceeded" in lower
    ):
        return _disk_full(path or (str(home) if home else None), rerun=rerun)
    if "read-only file system" in lower or "errno 30" in lower or "os error 30" in lower:
        return _read_only(path, rerun=rerun)
    if "permission denied" in lower or "errno 13" in lower or "os error 13" in lower:
        return _no_permission(path, rerun=rerun)
    if "disk i/o error" in lower:
        storage = str(home / "dagster") if home else path
        return _disk_full(storage, rerun=rerun, maybe=True)
    return None


def _os_failure(error: OSError, *, rerun: str) -> Failure | None:
    path = error.filename if isinstance(error.filename, (str, os.PathLike)) else None
    shown = os.fspath(path) if path is not None else _path_in(str(error))
    if error.errno in DISK_FULL:
        return _disk_full(shown, rerun=rerun)
    if error.errno == errno.EROFS:
        return _read_only(shown, rerun=rerun)
    if error.errno in NO_PERMISSION:
        return _no_permission(shown, rerun=rerun)
    return None


def _sqlite_failure(error: sqlite3.Error, *, home: Path | None, rerun: str) -> Failure:
    storage = str(home / "dagster") if home else None
    message = str(error).lower()
    if "disk i/o error" in message or "disk is full" in message:
        return _disk_full(storage, rerun=rerun, maybe="disk i/o" in message, storage=True)
    if "readonly" in message or "read-only" in message or "unable to open" in message:
        return Failure(
            "cannot write Dagster's run storage (SQLite: " + str(error) + ")",
            storage,
            f"make that folder writable by this user (ls -ld {storage}), then `{rerun}`",
            home_unusable=True,
            kind="storage",
        )
    if "locked" in message:
        return Failure(
            "Dagster's run storage is locked by another process (SQLite: database is locked)",
            storage,
            f"wait for the other `clv` command or `dg dev` to finish, then `{rerun}`",
            kind="storage",
        )
    return Failure(
        f"Dagster's run storage failed (SQLite: {error})",
        storage,
        f"check that disk (df -h {storage}), then `{rerun}`",
        home_unusable=True,
        kind="storage",
    )


def _disk_full(
    path: str | None, *, rerun: str, maybe: bool = False, storage: bool = False
) -> Failure:
    cause = "disk full" if not maybe else "disk full (or failing): SQLite reported a disk I/O error"
    if storage:
        cause += " writing Dagster's run storage"
    where = path or "."
    return Failure(
        cause,
        path,
        f"free space on that disk (df -h {where}), then `{rerun}` "
        "(published tables keep the last complete snapshot)",
        home_unusable=True,
        kind="disk_full",
    )


def _read_only(path: str | None, *, rerun: str) -> Failure:
    return Failure(
        "read-only file system, cannot write",
        path,
        f"remount it read-write or point --home at a writable data home, then `{rerun}`",
        home_unusable=True,
        kind="read_only",
    )


def _no_permission(path: str | None, *, rerun: str) -> Failure:
    return Failure(
        "no permission to write",
        path,
        f"give this user write access (ls -ld {path or '.'}; chown/chmod u+w), then `{rerun}`",
        home_unusable=True,
        kind="no_permission",
    )


def _path_in(text: str) -> str | None:
    found = _PATH_IN_TEXT.search(text)
    return found.group(1).rstrip(".:") if found else None


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def write_log(
    exc: BaseException | None, *, home: Path | None, command: str, captured: str = ""
) -> tuple[Path | None, bool]:
    """Append ``command``, ``captured`` (what Dagster printed) and the traceback to the day's
    log file. Returns (path, fell back outside the data home); (None, True) when nothing could
    be written anywhere."""
    stamp = datetime.now(UTC)
    text = [f"=== {stamp.isoformat()} pid {os.getpid()}: clv {command}"]
    if captured.strip():
        text += ["--- run output ---", captured.rstrip()]
    if exc is not None:
        text += ["--- traceback ---", "".join(traceback.format_exception(exc)).rstrip()]
    payload = "\n".join(text) + "\n"
    name = f"clv-{stamp:%Y%m%d}.log"
    folders = [home / LOG_FOLDER] if home is not None else []
    folders.append(Path(tempfile.gettempdir()) / FALLBACK_FOLDER)
    for i, folder in enumerate(folders):
        path = folder / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with path.open("a") as handle:
                handle.write(payload)
        except OSError:
            continue
        return path, i > 0 or home is None
    return None, True


def fallback_folder() -> Path:
    return Path(tempfile.gettempdir()) / FALLBACK_FOLDER


def emergency_alert(failure: Failure, *, home: Path | None, command: str, line: str) -> str:
    """Raise the alert of a command that failed outside a run (the data home may be full).

    Calls the alert module's emergency path when it has one, else appends the alert to
    ``<home>/alerts/alerts.jsonl`` and, when that cannot be written, to
    ``<tempdir>/clv-logs/alerts.jsonl``. Returns where it went (for the one line)."""
    from clv_pipeline.runs import alerts  # noqa: PLC0415 - keep the CLI's import light

    emergency = getattr(alerts, "emergency_alert", None)
    if emergency is not None:
        try:
            where = emergency(
                error=line, home=home, command=command, kind=failure.kind, path=failure.path
            )
            return str(where) if where else "alert on stderr only (no file could be written)"
        except Exception:  # noqa: BLE001, S110 - fall back to the file below
            pass
    record = {
        "kind": "command_failed",
        "command": f"clv {command}",
        "cause": failure.kind,
        "path": failure.path,
        "error": line,
        "home": str(home) if home else None,
        "host": os.uname().nodename if hasattr(os, "uname") else "",
        "at": datetime.now(UTC).isoformat(),
    }
    targets = [home / "alerts" / "alerts.jsonl"] if home is not None else []
    targets.append(fallback_folder() / "alerts.jsonl")
    for target in targets:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
        except OSError:
            continue
        return str(target)
    return "no alert written (no writable folder)"


def report(
    exc: BaseException, *, home: Path | None, command: str, captured: str = ""
) -> tuple[str, int]:
    """The one line for ``exc`` (cause, path, fix, ``details: <log>``) and the exit code; writes
    the log and, when the data home may be unusable or the error is not ours, the alert."""
    rerun = f"clv {command}".strip()
    failure = explain(exc, home=home, rerun=rerun)
    log, outside = write_log(exc, home=home, command=command, captured=captured)
    if log is None:
        details = "details: no log could be written (neither the data home nor the temp folder)"
    elif outside and home is not None:
        details = f"details: {log} (outside the data home: it could not take the log)"
    else:
        details = f"details: {log}"
    line = f"{failure.text()}. {details}"
    if failure.home_unusable or not isinstance(exc, ClvError):
        where = emergency_alert(failure, home=home, command=command, line=line)
        line += f"; alert: {where}"
    return line, 1
