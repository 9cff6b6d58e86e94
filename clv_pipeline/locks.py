"""Advisory file locks so two ``clv`` runs never write the same partition at once.

Runs launched by the Dagster daemon are serialised per partition by the run queue instead
(``tag_concurrency_limits`` on ``dagster/partition`` in ``dagster.yaml``).

The lock file records its holder (``pid``, ``host``, ``command``, ``since``) while it is held and
is emptied when it is released; a file still naming a holder whose process is gone (SIGKILL, OOM
killer, power loss) is a stale lock left by a run that died (:func:`clv_pipeline.runs.orphans`).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from clv_pipeline.errors import ClvError
from clv_pipeline.paths import Layout


class LockedError(ClvError):
    """Another process holds the partition."""


@dataclass(frozen=True)
class Holder:
    """Who holds (or held, when the file is stale) a lock."""

    pid: int
    host: str
    command: str
    since: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.since}: {self.command}"

    def alive(self) -> bool | None:
        """True/False for a process on this host; None when it runs on another host."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def lock_path(layout: Layout, key: str) -> Path:
    return layout.dagster / "locks" / f"{key}.lock"


def parse_holder(text: str) -> Holder | None:
    """The holder recorded in a lock file (JSON; ``pid N since T`` from older versions)."""
    text = text.strip()
    if not text:
        return None
    with suppress(ValueError, TypeError, KeyError):
        data = json.loads(text)
        return Holder(int(data["pid"]), str(data["host"]), str(data["command"]), str(data["since"]))
    parts = text.split()
    if len(parts) >= 4 and parts[0] == "pid" and parts[1].isdigit() and parts[2] == "since":
        return Holder(int(parts[1]), socket.gethostname(), "clv", parts[3])
    return None


def read_holder(layout: Layout, key: str) -> Holder | None:
    """The holder written in ``key``'s lock file (held now, or stale); None when released."""
    try:
        return parse_holder(lock_path(layout, key).read_text())
    except OSError:
        return None


def is_held(layout: Layout, key: str) -> bool:
    """Some process holds ``key`` right now (a non-blocking probe, released at once)."""
    path = lock_path(layout, key)
    if not path.exists():
        return False
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False


@contextmanager
def probe_lock(layout: Layout, key: str) -> Iterator[bool]:
    """Try to hold ``key`` without waiting: yields False (nothing done) when a live process
    holds it; True while this process holds it (the recorded holder is left as it was)."""
    path = lock_path(layout, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def clear_holder(layout: Layout, key: str) -> None:
    """Empty a stale lock file (its holder died); call while holding it (:func:`probe_lock`)."""
    with suppress(OSError), lock_path(layout, key).open("r+") as handle:
        handle.truncate()


def _command_line() -> str:
    name = Path(sys.argv[0]).name if sys.argv else "python"
    return " ".join([name, *sys.argv[1:]]) if sys.argv else name


@contextmanager
def partition_lock(layout: Layout, key: str, *, wait_seconds: float = 1.0) -> Iterator[None]:
    """Hold ``<home>/dagster/locks/<key>.lock`` exclusively for the duration of the block.

    Waits up to ``wait_seconds`` (a ``clv`` command checking for dead runs holds it a moment),
    then fails naming the holder: pid, host, command and since when.
    """
    path = lock_path(layout, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = parse_holder(handle.read())
                    who = holder.describe() if holder else "unknown process"
                    raise LockedError(
                        f"{key} is locked by another clv run ({who}); nothing was changed. Wait "
                        f"for it to finish (`clv status --home {layout.home}` shows it), then "
                        "run this command again"
                    ) from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        holder = Holder(
            os.getpid(),
            socket.gethostname(),
            _command_line(),
            f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}",
        )
        handle.write(json.dumps(holder.__dict__))
        handle.flush()
        try:
            yield
        finally:
            with suppress(OSError):
                handle.seek(0)
                handle.truncate()  # released: no holder recorded
    finally:
        handle.close()  # closing releases the lock
