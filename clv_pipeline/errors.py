"""Errors that carry a message meant for the person on call (no library traceback needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any


class ClvError(Exception):
    """Base class: the message names the file, column and values at fault."""


class InputError(ClvError):
    """An input file or partition cannot be used as delivered."""


class PublishError(ClvError):
    """A table failed its audit or could not be published; the previous snapshot is intact.

    ``checks`` holds the problems found per audit check (empty when the failure was I/O).
    """

    def __init__(
        self, message: str, *, table: str = "", checks: dict[str, list[str]] | None = None
    ):
        super().__init__(message)
        self.table = table
        self.checks = checks or {}


class DayFailures(InputError):
    """Some days of a multi-day ingest step failed; the other days were published.

    ``failures`` maps each failed day to its own error (one day's problem, never a batch's);
    ``results`` holds what the step published for the other days, so the caller can record them
    before failing. The message's first line names the failed days (and, for one day, its error);
    one line per failed day follows.
    """

    def __init__(
        self, what: str, failures: Mapping[date, str], *, total: int, results: Sequence[Any] = ()
    ):
        self.what = what
        self.failures = {day: _own(day, text) for day, text in sorted(failures.items())}
        self.total = total
        self.results = list(results)
        super().__init__(self.describe())

    def describe(self) -> str:
        days = list(self.failures)
        others = self.total - len(days)
        published = f"the other {others} day(s) of this step were published" if others else ""
        if len(days) == 1:
            first, *rest = self.failures[days[0]].splitlines() or [""]
            head = f"{days[0]}: {first}" + (f" ({published})" if published else "")
            return "\n".join([head, *rest])
        shown = ", ".join(str(d) for d in days[:10])
        more = f" and {len(days) - 10} more" if len(days) > 10 else ""
        head = f"{len(days)} of {self.total} day(s) failed {self.what}: {shown}{more}"
        head += f"; {published}" if published else ""
        lines = [f"{day}: {text}" for day, text in list(self.failures.items())[:DETAILED_DAYS]]
        if len(days) > DETAILED_DAYS:  # each day's own error is recorded on its partition
            lines.append(f"... {len(days) - DETAILED_DAYS} more day(s): `clv status --verbose`")
        return "\n".join([head, *lines])


DETAILED_DAYS = 20  # failed days whose error the message spells out


def _own(day: date, text: str) -> str:
    """``text`` without a leading ``<day>: `` (the day is said once, by whoever shows it)."""
    prefix = f"{day}: "
    return text[len(prefix) :] if text.startswith(prefix) else text
