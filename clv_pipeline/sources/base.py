"""What every source of raw transactions provides, and the local landing folder as one.

A source returns one event day's rows in the ``raw_transactions`` schema
(:data:`clv_pipeline.schema.RAW_TRANSACTIONS`): the contract columns as strings plus
``_source_file`` and ``_source_row``, in a deterministic order. Pulling the same day twice gives
the same frame, so the pipeline can re-pull the last few days to pick up late-arriving rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from clv_pipeline.errors import InputError
from clv_pipeline.paths import Layout
from clv_pipeline.schema import RAW_TRANSACTIONS
from clv_pipeline.sources.landing import read_landing_day
from clv_pipeline.sources.shape import ReadOptions

__all__ = ["LandingSource", "TransactionSource", "day_window_utc", "empty_raw"]


@runtime_checkable
class TransactionSource(Protocol):
    """A place raw transactions are pulled from, one event day at a time."""

    def pull_day(self, day: date, *, timezone: str) -> pl.DataFrame:
        """The rows of ``day`` (in ``timezone``) as ``raw_transactions``, deterministic order.

        Parameters
        ----------
        day
            The event date (partition key).
        timezone
            IANA name of the pipeline timezone the day is a calendar day in. Sources that are
            already partitioned by event date (folders ``date=YYYY-MM-DD``) ignore it.

        Returns
        -------
        polars.DataFrame
            Every contract column as ``String`` plus ``_source_file`` and ``_source_row``; empty
            (with that schema) when nothing was delivered for the day.

        Raises
        ------
        clv_pipeline.errors.InputError
            The source cannot be reached or read; the message says where and why.
        """
        ...

    def describe(self) -> str:
        """Where the rows come from, for logs and metadata (never contains a secret)."""
        ...


def day_window_utc(day: date, timezone: str) -> tuple[datetime, datetime]:
    """The instants ``[start, end)`` of calendar day ``day`` in ``timezone``, in UTC.

    Each bound is the local midnight converted separately, so days with a daylight-saving change
    are 23 or 25 hours long.

    Parameters
    ----------
    day
        Calendar date.
    timezone
        IANA timezone name, e.g. ``"Europe/Berlin"``.

    Returns
    -------
    tuple of datetime
        ``(start, end)`` as timezone-aware UTC datetimes.

    Raises
    ------
    clv_pipeline.errors.InputError
        ``timezone`` is not a known IANA name.
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(f"unknown timezone {timezone!r} (use an IANA name such as UTC)") from exc
    start = datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
    return start, end


def empty_raw() -> pl.DataFrame:
    """An empty frame in the ``raw_transactions`` schema."""
    return pl.DataFrame(schema=RAW_TRANSACTIONS.schema)


@dataclass(frozen=True)
class LandingSource:
    """Files dropped into ``landing/transactions/date=YYYY-MM-DD/`` under the data home.

    Parameters
    ----------
    layout
        The data home layout.
    column_map
        Renames ``source_name -> contract_name`` applied to every file.
    options
        The data home's read options (delimiter, dates, amount expression, order lines, ...).
    """

    layout: Layout
    column_map: Mapping[str, str] = field(default_factory=dict)
    options: ReadOptions = field(default_factory=ReadOptions)

    def pull_day(self, day: date, *, timezone: str = "UTC") -> pl.DataFrame:
        """The files of ``day``'s landing folder (``timezone`` is unused: folders are days)."""
        return read_landing_day(self.layout, day, column_map=self.column_map, options=self.options)

    def describe(self) -> str:
        """The landing folder path."""
        return str(self.layout.landing)
