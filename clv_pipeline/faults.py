"""Named fail points for fault-injection tests (inactive unless ``CLV_FAILPOINT`` is set).

``CLV_FAILPOINT=publish:customer_clv:staged`` makes the process SIGKILL itself at that point, the
way an OOM killer or a lost node would. The tests kill runs at every point and check that
published tables are always the old or the new complete snapshot, never a mix.
Setting ``CLV_FAILPOINT=oserror:<point>`` raises ``OSError(ENOSPC)`` there instead (disk full).
"""

from __future__ import annotations

import errno
import os
import signal

POINTS = (
    "run:start",
    "validate:start",
    "publish:{table}:staged",
    "publish:{table}:replaced",
    "catalog:before_commit",
    "catalog:after_manifest",
    "commit:{table}:shown",
    "catalog:after_commit",
    "shard:{shard}:values",
)


def failpoint(name: str) -> None:
    """Die (SIGKILL) or raise ENOSPC when ``$CLV_FAILPOINT`` names this point."""
    wanted = os.environ.get("CLV_FAILPOINT")
    if not wanted:
        return
    if wanted == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if wanted == f"oserror:{name}":
        raise OSError(errno.ENOSPC, "No space left on device (injected)")
