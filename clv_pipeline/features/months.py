"""Per-customer monthly activity, kept incrementally like ``customer_state``: the input of ``cohorts``.

``cohorts`` needs, for every customer, whether they bought in each calendar month and their net
revenue in it, plus their first purchase (cohort month and channel). Scanning the whole validated
history for that every day was the largest history-wide step; instead two internal files are
kept under ``warehouse/.work/cohort_state/as_of=D/`` (never published, invisible to readers):

* ``months.parquet``: one row per customer and calendar month with a purchase or a refund:
  ``customer_id, month`` (``year x 12 + month - 1``), ``bought`` (a purchase in that month) and
  ``revenue`` (net revenue in fixed point, refunds negative);
* ``firsts.parquet``: one row per customer with a purchase: ``first_at`` (earliest purchase
  ``occurred_at``), ``first_id`` (smallest ``transaction_id`` at that time), ``cohort_month``
  (month start of its ``event_date``), ``channel`` (of that transaction, null kept) and
  ``any_channel`` (any purchase of the customer has a channel).

Both summarise every validated row with ``event_date <= D`` after
:func:`~clv_pipeline.features.customers.apply_refund_ties` (fully refunded purchases and their
refunds are ``cancelled`` and count nowhere). They are built exactly as ``customer_state`` is
(:mod:`~clv_pipeline.features.state`): from the latest earlier state whose validated days are
unchanged (content digests in the footer) plus the days after it, or from the whole history when
there is none, at each ``CLV_STATE_FULL_EVERY_DAYS`` anchor, or when a full recompute is asked for;
the caller rebuilds from before the day of a purchase that a tied refund among the new days
cancels. Merges are exact (booleans, fixed-point sums, minima), so an incremental state equals the
full recompute. Only the latest :data:`KEEP` states are kept.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from clv_pipeline.features.state import StatePlan, choose_base, footer_record, split_touched
from clv_pipeline.numeric import FIXED
from clv_pipeline.parquet import write_parquet_atomic
from clv_pipeline.paths import Layout

FOLDER = "cohort_state"
FILES = ("open.parquet", "closed.parquet", "firsts.parquet")  # the fields of CohortState
VERSION = "1"  # bump when the columns or their rules change: older states are not reused
META_KEY = b"clv.cohort_state"
KEEP = 3  # states kept (the latest ones); an older base means a full recompute

MONTH_COLUMNS = ("customer_id", "month", "bought", "revenue")
FIRST_COLUMNS = ("customer_id", "first_at", "first_id", "cohort_month", "channel", "any_channel")
CLOSED_SCHEMA = pl.Schema(
    [
        ("cohort_month", pl.Date()),
        ("channel", pl.String()),
        ("months_since_acquisition", pl.Int64()),
        ("active_customers", pl.Int64()),
        ("revenue", FIXED),
    ]
)
CLOSED_COLUMNS = tuple(CLOSED_SCHEMA.names())
CLOSED_KEYS = ("cohort_month", "channel", "months_since_acquisition")


def month_index(col: pl.Expr) -> pl.Expr:
    """``year x 12 + month - 1`` of a date (Int64)."""
    return col.dt.year().cast(pl.Int64) * 12 + col.dt.month().cast(pl.Int64) - 1


def summarise_months(transactions: pl.LazyFrame) -> pl.LazyFrame:
    """:data:`MONTH_COLUMNS` of validated rows (refund ties applied)."""
    kind = pl.col("revenue_kind")
    return (
        transactions.filter(kind.is_in(["purchase", "refund"]))
        .group_by("customer_id", month_index(pl.col("event_date")).alias("month"))
        .agg(
            (kind == "purchase").any().alias("bought"),
            pl.col("amount").cast(FIXED).sum().alias("revenue"),
        )
        .select(MONTH_COLUMNS)
    )


def summarise_firsts(transactions: pl.LazyFrame) -> pl.LazyFrame:
    """:data:`FIRST_COLUMNS` of validated rows (refund ties applied): each customer's first
    purchase transaction (earliest ``occurred_at``, then ``transaction_id``)."""
    purchases = transactions.filter(pl.col("revenue_kind") == "purchase").select(
        "customer_id",
        pl.col("occurred_at").alias("first_at"),
        pl.col("transaction_id").alias("first_id"),
        pl.col("event_date").dt.month_start().alias("cohort_month"),
        pl.col("channel").cast(pl.String),
        pl.col("channel").is_not_null().alias("any_channel"),
    )
    return _first_rows(purchases)


def _first_rows(rows: pl.LazyFrame) -> pl.LazyFrame:
    """One row per customer: the earliest ``(first_at, first_id)``; ``any_channel`` of all."""
    at = pl.col("first_at")
    earliest = rows.group_by("customer_id").agg(
        at.min().alias("_earliest"), pl.col("any_channel").any()
    )
    return (
        rows.drop("any_channel")
        .join(earliest, on="customer_id")
        .filter(at == pl.col("_earliest"))
        .group_by("customer_id")
        .agg(
            at.min(),
            pl.col("first_id").min(),
            pl.col("cohort_month").min(),
            pl.col("channel").sort_by("first_id").first(),
            pl.col("any_channel").first(),
        )
    )


def merge_months(older: pl.LazyFrame, newer: pl.LazyFrame) -> pl.LazyFrame:
    """The months rows of two sets of validated rows on *different* event dates (regrouped by
    customer and month: a customer's purchase and refund in one month are one row)."""
    return (
        pl.concat([older.select(MONTH_COLUMNS), newer.select(MONTH_COLUMNS)], how="vertical")
        .group_by("customer_id", "month")
        .agg(pl.col("bought").any(), pl.col("revenue").sum())
        .select(MONTH_COLUMNS)
    )


def merge_firsts(older: pl.LazyFrame, newer: pl.LazyFrame) -> pl.LazyFrame:
    """The firsts state of two sets of validated rows; only the newer rows' customers regroup."""
    carried, touched = split_touched(older, newer)
    regrouped = _first_rows(
        pl.concat(
            [touched.select(FIRST_COLUMNS), newer.select(FIRST_COLUMNS)],
            how="vertical",
        )
    )
    return pl.concat(
        [carried.select(FIRST_COLUMNS), regrouped.select(FIRST_COLUMNS)], how="vertical"
    )


def month_activity(months: pl.LazyFrame, firsts: pl.LazyFrame) -> pl.LazyFrame:
    """:data:`CLOSED_COLUMNS` of months rows: per cohort month, first-purchase channel (null:
    ``unknown``) and month since acquisition, the customers who bought and their net revenue
    (fixed point). Rows before a customer's cohort month and of customers never acquired count
    nowhere (the cohorts grid starts at month 0)."""
    since = pl.col("month") - month_index(pl.col("cohort_month"))
    return (
        months.join(
            firsts.select("customer_id", "cohort_month", pl.col("channel").fill_null("unknown")),
            on="customer_id",
        )
        .filter(since >= 0)
        .group_by("cohort_month", "channel", since.alias("months_since_acquisition"))
        .agg(
            pl.col("bought").sum().cast(pl.Int64).alias("active_customers"),
            pl.col("revenue").sum(),
        )
        .select(CLOSED_COLUMNS)
    )


def add_activity(*parts: pl.LazyFrame) -> pl.LazyFrame:
    """Sum :data:`CLOSED_COLUMNS` frames by cohort month, channel and month since acquisition."""
    return (
        pl.concat([p.select(CLOSED_COLUMNS) for p in parts], how="vertical")
        .group_by("cohort_month", "channel", "months_since_acquisition")
        .agg(pl.col("active_customers").sum(), pl.col("revenue").sum())
        .select(CLOSED_COLUMNS)
    )


@dataclass(frozen=True)
class CohortState:
    """The cohort state of the rows up to ``as_of`` (lazy or collected frames)."""

    open: pl.LazyFrame  # MONTH_COLUMNS of the months from as_of's month on
    closed: pl.LazyFrame  # CLOSED_COLUMNS of the months before as_of's month
    firsts: pl.LazyFrame  # FIRST_COLUMNS


def close_months(
    months: pl.LazyFrame, closed: pl.LazyFrame, firsts: pl.LazyFrame, *, as_of: date
) -> CohortState:
    """Fold the months rows before ``as_of``'s month into the ``closed`` activity.

    A month before ``as_of``'s month gets no rows from later days, and a customer acquired later
    has a later cohort month (their earlier rows count nowhere), so its activity per cohort is
    final: it is kept as a few aggregate rows instead of one row per customer."""
    current = _month_of(as_of)
    done = months.filter(pl.col("month") < current)
    return CohortState(
        open=months.filter(pl.col("month") >= current).select(MONTH_COLUMNS),
        closed=add_activity(closed, month_activity(done, firsts)),
        firsts=firsts.select(FIRST_COLUMNS),
    )


def summarise_state(
    transactions: pl.LazyFrame, *, as_of: date, firsts: pl.LazyFrame | None = None
) -> CohortState:
    """The :class:`CohortState` of validated rows (refund ties applied, ``event_date <= as_of``):
    :func:`close_months` of all their months, with the rows of the closed months aggregated as
    they are read (never one row per customer and month). ``firsts``: their
    :func:`summarise_firsts` when already computed."""
    start = as_of.replace(day=1)
    firsts = summarise_firsts(transactions) if firsts is None else firsts
    done = summarise_months(transactions.filter(pl.col("event_date") < start))
    return CohortState(
        open=summarise_months(transactions.filter(pl.col("event_date") >= start)),
        closed=add_activity(empty_closed(), month_activity(done, firsts)),
        firsts=firsts.select(FIRST_COLUMNS),
    )


def merge_state(older: CohortState, newer: pl.LazyFrame, *, as_of: date) -> CohortState:
    """The :class:`CohortState` at ``as_of`` of an older state plus the validated rows of the
    days after it up to ``as_of`` (refund ties applied)."""
    firsts = merge_firsts(older.firsts, summarise_firsts(newer))
    months = merge_months(older.open, summarise_months(newer))
    return close_months(months, older.closed, firsts, as_of=as_of)


def empty_closed() -> pl.LazyFrame:
    return pl.LazyFrame(schema=CLOSED_SCHEMA)


def collect_state(state: CohortState) -> CohortState:
    """The state's frames computed (together: what they share is computed once)."""
    frames = pl.collect_all([state.open, state.closed, state.firsts], engine="streaming")
    return CohortState(*(frame.lazy() for frame in frames))


def _month_of(day: date) -> int:
    return day.year * 12 + day.month - 1


# ----------------------------------------------------------------------------- files and plan
def shard_root(shard: int, shards: int) -> str:
    """Where the cohort states of customer ``shard`` of ``shards`` are kept (beside the
    unsharded ones, never mixed with them or with another shard count's)."""
    return f"{FOLDER}/shards={shards}/shard={shard}"


def state_folder(layout: Layout, as_of: date, root: str = FOLDER) -> Path:
    return layout.work / root / f"as_of={as_of.isoformat()}"


def state_days(layout: Layout, root: str = FOLDER) -> list[date]:
    """Dates with a complete stored state under ``root``, sorted."""
    base = layout.work / root
    out = []
    for folder in base.glob("as_of=*") if base.is_dir() else []:
        if all((folder / name).exists() for name in FILES):
            try:
                out.append(date.fromisoformat(folder.name.split("=", 1)[1]))
            except ValueError:
                continue
    return sorted(out)


def plan_months(
    layout: Layout,
    as_of: date,
    *,
    full_every_days: int = 0,
    rebuild: str = "auto",
    before: date | None = None,
    root: str = FOLDER,
) -> StatePlan:
    """The latest reusable state before ``as_of`` (the rules of
    :func:`~clv_pipeline.features.state.plan_state`, on the cohort states under ``root``)."""
    return choose_base(
        layout,
        as_of,
        stored=state_days(layout, root),
        provenance=lambda base: [
            footer_record(state_folder(layout, base, root) / name, META_KEY, VERSION)
            for name in FILES
        ],
        label="cohort state",
        full_every_days=full_every_days,
        rebuild=rebuild,
        before=before,
    )


def read_state(layout: Layout, day: date, root: str = FOLDER) -> CohortState:
    """The stored state of ``day`` (lazy scans)."""
    folder = state_folder(layout, day, root)
    return CohortState(*(pl.scan_parquet(folder / name) for name in FILES))


def write_state(layout: Layout, plan: StatePlan, state: CohortState, root: str = FOLDER) -> Path:
    """Store the (collected) state of ``plan.as_of``: each file atomically, the plan's inputs in
    every footer; then drop all but the latest :data:`KEEP` states."""
    folder = state_folder(layout, plan.as_of, root)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"version": VERSION, "inputs": plan.inputs}
    metadata = {META_KEY.decode(): json.dumps(record, sort_keys=True)}
    # sorted on their keys: a rerun, or the same day built incrementally or in full, writes the
    # same bytes (group-by output order is not deterministic)
    keys = (["customer_id", "month"], list(CLOSED_KEYS), ["customer_id"])
    for frame, name, key in zip((state.open, state.closed, state.firsts), FILES, keys, strict=True):
        write_parquet_atomic(frame.sort(key).collect(), folder / name, metadata=metadata)
    for old in state_days(layout, root)[:-KEEP]:
        shutil.rmtree(state_folder(layout, old, root), ignore_errors=True)
    return folder
