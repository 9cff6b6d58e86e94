"""Advisory file locks so two ``clv`` runs never write the same partition at once.

Runs launched by the Dagster daemon are serialised per partition by the run queue instead
(``tag_concurrency_limits`` on ``dagster/partition`` in ``dagster.yaml``).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from clv_pipeline.errors import ClvError
from clv_pipeline.paths import Layout


class LockedError(ClvError):
    """Another process holds the partition."""


@contextmanager
def partition_lock(layout: Layout, key: str, *, wait_seconds: float = 0.0) -> Iterator[None]:
    """Hold ``<home>/dagster/locks/<key>.lock`` exclusively for the duration of the block."""
    folder = layout.dagster / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.lock"
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
                    holder = handle.read().strip() or "unknown process"
                    raise LockedError(
                        f"{key} is locked by another clv run ({holder}); wait for it to finish "
                        "or check `clv status`"
                    ) from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}")
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock
