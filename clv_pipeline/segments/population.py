"""What ``customer_segments`` and ``customer_churn`` compare each customer with: the snapshot's
population, for customer shards (``scale.shards``, docs/scaling.md).

Every other rule of the two tables is row by row. The population enters in four places:

* the RFM scores (:mod:`~clv_pipeline.segments.rfm`): a score depends on how many customers hold
  each distinct value, so each shard counts its values (:func:`~clv_pipeline.segments.rfm.rfm_counts`)
  and the counts, summed per value, give the scores of the whole snapshot;
* the population rhythm (:class:`~clv_pipeline.segments.lifecycle.Rhythm`): the median observed
  interval, from the summed counts of each interval value;
* the value tiers (:mod:`~clv_pipeline.segments.tiers`): ``value_rank`` over every customer, ranked
  once on the gathered segment values (one number per customer) and handed back per shard;
* ``churn_percentile``: ranked where the churn rows are gathered
  (:func:`~clv_pipeline.segments.churn.rank_churn`).

The counts and ranks are exact (integers), and the rank and median are polars' own, so a shard's
rows equal those rows of the unsharded table bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from clv_pipeline.segments.lifecycle import Rhythm, merge_rhythm, rhythm_counts
from clv_pipeline.segments.rfm import RFM_VALUES, merge_value_counts, rfm_counts, rfm_levels
from clv_pipeline.segments.tiers import rank_values, segment_value

#: The parts of one shard's counts (:func:`shard_counts`).
RHYTHM = "rhythm"
VALUES = "values"
COUNT_PARTS = (*RFM_VALUES, RHYTHM, VALUES)


@dataclass(frozen=True)
class Population:
    """The snapshot's numbers a shard's segments and churn rows are computed against."""

    customers: int  # rows of customer_clv: what the value tiers' shares are over
    rhythm: Rhythm
    rfm: dict[str, pl.DataFrame]  # RFM score -> (as_of, value, score) of every distinct value

    @property
    def levels(self) -> dict[str, pl.LazyFrame]:
        return {name: frame.lazy() for name, frame in self.rfm.items()}


def shard_counts(features: pl.LazyFrame, clv: pl.LazyFrame) -> dict[str, pl.DataFrame]:
    """One shard's part of the :class:`Population`: its RFM value counts, its interval counts,
    and (``values``) the segment value of each of its ``customer_clv`` rows, in ``clv``'s order
    (:func:`merge_population` ranks them and hands the ranks back in that order)."""
    lazy = {
        **rfm_counts(features),
        RHYTHM: rhythm_counts(features),
        VALUES: clv.select("as_of", segment_value().alias("segment_value")),
    }
    return dict(zip(lazy, pl.collect_all(list(lazy.values())), strict=True))


def merge_population(
    parts: list[dict[str, pl.DataFrame]],
) -> tuple[Population, list[pl.Series]]:
    """The :class:`Population` of the union of the shards behind ``parts`` (:func:`shard_counts`)
    and each shard's ``value_rank`` (Int64, in its ``values``' order)."""
    if not parts:
        raise ValueError("no shard counts to merge")
    counts = {name: merge_value_counts([p[name].lazy() for p in parts]) for name in RFM_VALUES}
    levels = rfm_levels(counts)
    values = pl.concat([p[VALUES] for p in parts], how="vertical")
    ranks = values.select(
        rank_values(pl.col("segment_value")).over("as_of").alias("value_rank")
    ).get_column("value_rank")
    sizes = [p[VALUES].height for p in parts]
    starts = [sum(sizes[:k]) for k in range(len(sizes))]
    population = Population(
        customers=values.height,
        rhythm=merge_rhythm([p[RHYTHM] for p in parts]),
        rfm=dict(zip(levels, pl.collect_all(list(levels.values())), strict=True)),
    )
    return population, [ranks.slice(start, size) for start, size in zip(starts, sizes, strict=True)]
