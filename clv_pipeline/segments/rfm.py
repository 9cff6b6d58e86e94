"""RFM scores (1-5, dense: ties never leave a score empty) and the named R x F segment map.

Scoring (per ``as_of``; deterministic: only the multiset of values matters, never row order).
Each score ranks one value ascending (higher value = higher score); customers with equal values
always share a score. Over the *distinct* values ``v_1 < v_2 < ... < v_D`` (``k`` = dense rank,
``D`` = number of distinct values, ``n`` = customers, ``B`` = 5 levels)::

    q_k = 1 + floor(B x (customers with a value < v_k) / n)     # plain quantile score
    U_k = min(q_k, U_(k-1) + 1), U_1 = 1                        # never skip a score going up
        = k + min over j <= k of (q_j - j)                      # (closed form, as computed)
    L_k = k - max(D - B, 0)                                     # leave a score for each value above
    score_k = max(U_k, L_k)

Consequences:

* consecutive distinct values differ by 0 or 1, so the scores present are exactly
  ``1 .. min(D, 5)`` (no score is ever empty between used ones); with ``D >= 5`` all five levels
  are used (the largest value scores 5), with ``D <= 5`` each distinct value has its own score;
* with distinct values (``D = n >= 5``) this is the plain quantile score ``q`` (exactly ``n/5``
  customers per score when 5 divides ``n``);
* one value for everybody (or one customer): everybody scores 1; null values score 1 and are not
  ranked.

Example (F, 10 customers): purchase-days ``1,1,1,1,1,1,2,3,4,5`` (60 % one-time).
``q = 1, 4, 4, 5, 5`` for the values ``1..5`` (the rule before 2026-12: F = 2 and 3 empty);
``U = 1, 2, 3, 4, 5``, ``L = 1, 2, 3, 4, 5``: F = 1 one-time, 2 = two purchase-days, 3 = three,
4 = four, 5 = five. With ``1, 2, 3, 4`` once each and 96 customers at ``5``: ``q = U = 1`` for
all, ``L = 1..5``, so the scores are 1..5 (before: everybody 1).

* R: ranked on ``-days_since_last_purchase`` (more recent = higher = 5).
* F: ``n_purchase_days``. One-time buyers (``n_purchase_days == 1``) always score F = 1 (they are
  the lowest value). When a snapshot has one-time buyers, F = 1 is *exactly* them: a repeat buyer
  whose score would be 1 (only when one-time buyers are under 20 % of customers) scores 2.
* M: ``total_revenue`` (net revenue to date).
* ``fm_score`` = ceil((F + M) / 2): deprecated since 2026-12 (issue 20); still filled, no longer
  used by the segment map.

Segment map (rows R, columns F; M is a tier on the two top-value cells, see below)::

    R \\ F   1               2                    3                    4          5
    5       new             potential_loyalists  potential_loyalists  champions  champions
    4       promising       potential_loyalists  potential_loyalists  loyal      loyal
    3       about_to_sleep  about_to_sleep       need_attention       loyal      loyal
    2       hibernating     hibernating          at_risk              at_risk    cant_lose
    1       lost            lost                 at_risk              at_risk    cant_lose

M tier: ``champions`` and ``cant_lose`` also need ``m_score >= 3`` (at least median spend);
with ``m_score <= 2`` those cells give ``loyal`` and ``at_risk`` respectively. M enters nowhere
else (it is in ``rfm_score``). Column F = 1 holds only one-time segments (``new``, ``promising``,
``about_to_sleep``, ``hibernating``, ``lost``), so a one-time buyer never lands in a repeat-buyer
segment (:data:`REPEAT_SEGMENTS`), whatever they spent. ``lost`` (R = 1, F 1-2) = the 20 % most
silent customers with few purchase-days; ``hibernating`` (R = 2, F 1-2) the next 20 %.
"""

from __future__ import annotations

import polars as pl

N_BINS = 5

# (R scores, F scores) -> segment; the widely used RFM map on the R x F grid, plus `lost`.
RFM_RULES: tuple[tuple[tuple[int, ...], tuple[int, ...], str], ...] = (
    ((1,), (1, 2), "lost"),
    ((2,), (1, 2), "hibernating"),
    ((1, 2), (3, 4), "at_risk"),
    ((1, 2), (5,), "cant_lose"),
    ((3,), (1, 2), "about_to_sleep"),
    ((3,), (3,), "need_attention"),
    ((3, 4), (4, 5), "loyal"),
    ((4,), (1,), "promising"),
    ((5,), (1,), "new"),
    ((4, 5), (2, 3), "potential_loyalists"),
    ((5,), (4, 5), "champions"),
)
#: Cells that also need ``m_score >= M_TIER_MIN``; below it they give the second segment.
M_TIER_MIN = 3
M_TIER_FALLBACK: dict[str, str] = {"champions": "loyal", "cant_lose": "at_risk"}
RFM_SEGMENTS = (
    "champions",
    "loyal",
    "potential_loyalists",
    "new",
    "promising",
    "need_attention",
    "about_to_sleep",
    "at_risk",
    "cant_lose",
    "hibernating",
    "lost",
)
#: Segments for customers with 2+ purchase-days only (never a one-time buyer).
REPEAT_SEGMENTS = (
    "champions",
    "loyal",
    "potential_loyalists",
    "need_attention",
    "at_risk",
    "cant_lose",
)


def rfm_segment_map() -> pl.LazyFrame:
    """The 25-cell R x F map as a frame: ``r_score, f_score, rfm_segment`` (before the M tier)."""
    cells = [(r, f, name) for rs, fs, name in RFM_RULES for r in rs for f in fs]
    return pl.LazyFrame(
        {
            "r_score": [c[0] for c in cells],
            "f_score": [c[1] for c in cells],
            "rfm_segment": [c[2] for c in cells],
        },
        schema={"r_score": pl.Int64, "f_score": pl.Int64, "rfm_segment": pl.String},
    )


def value_counts(values: pl.LazyFrame, *, over: str = "as_of") -> pl.LazyFrame:
    """How many customers hold each distinct ``value`` per ``over`` (nulls are not counted):
    ``over, value, _count``. Additive: the counts of customer shards, summed per value
    (:func:`merge_value_counts`), are the counts of their union, so the scores of
    :func:`levels_from_counts` come out the same whether the customers are split or not."""
    return (
        values.drop_nulls("value")
        .group_by(over, "value")
        .agg(pl.len().cast(pl.Int64).alias("_count"))
    )


def merge_value_counts(parts: list[pl.LazyFrame], *, over: str = "as_of") -> pl.LazyFrame:
    """The :func:`value_counts` of the union of the customers behind ``parts``."""
    return (
        pl.concat(parts, how="vertical")
        .group_by(over, "value")
        .agg(pl.col("_count").sum().cast(pl.Int64))
    )


def levels_from_counts(
    distinct: pl.LazyFrame,
    *,
    n_bins: int = N_BINS,
    over: str = "as_of",
    one_time_rule: bool = False,
) -> pl.LazyFrame:
    """The score of each distinct value from :func:`value_counts` (see :func:`score_levels`)."""
    count = pl.col("_count")
    value = pl.col("value")
    distinct = distinct.sort(over, "value")
    n = count.sum().over(over)
    below = count.cum_sum().over(over) - count
    quantile = 1 + (below * n_bins) // n.clip(1)
    k = value.rank("dense").over(over).cast(pl.Int64)
    # U_k = k + cumulative min of (q_j - j) over the distinct values in ascending order
    upward = k + (quantile - k).cum_min().over(over)
    room = k - (k.max().over(over) - n_bins).clip(0)
    score = pl.max_horizontal(upward, room).clip(1, n_bins)
    if one_time_rule and n_bins >= 2:
        has_one_time = (value == 1).any().over(over)
        score = (
            pl.when(has_one_time & (value > 1)).then(pl.max_horizontal(score, 2)).otherwise(score)
        )
    return distinct.select(over, "value", score.cast(pl.Int64).alias("score"))


def score_levels(
    values: pl.LazyFrame, *, n_bins: int = N_BINS, over: str = "as_of", one_time_rule: bool = False
) -> pl.LazyFrame:
    """The dense quantile score (module docstring) of each distinct value, per ``over``.

    ``values`` has the columns ``over`` and ``value`` (one row per customer; nulls are not
    ranked). Returns one row per ``(over, value)`` with ``score`` 1..n_bins, higher value = higher
    score. The score depends only on a value's place among the distinct values and on how many
    customers are below it, so it is computed on the distinct values (a few hundred for R and F)
    rather than with ranks over every customer. ``one_time_rule``: the F rule, where a value
    above 1 scores at least 2 when the snapshot has one-time buyers (value 1).
    """
    return levels_from_counts(
        value_counts(values, over=over), n_bins=n_bins, over=over, one_time_rule=one_time_rule
    )


def score_quantile(
    frame: pl.LazyFrame,
    value: pl.Expr,
    name: str,
    *,
    n_bins: int = N_BINS,
    over: str = "as_of",
    one_time_rule: bool = False,
    levels: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """One column ``name``, row by row with ``frame``: :func:`score_levels` of ``value`` within
    ``over`` (nulls score 1). Only the key columns are joined, never the whole frame.
    ``levels``: the scores of the whole snapshot when ``frame`` holds one shard of it
    (:func:`levels_from_counts` of the merged counts)."""
    keys = frame.select(over, value.alias("value"))
    if levels is None:
        levels = score_levels(keys, n_bins=n_bins, over=over, one_time_rule=one_time_rule)
    # joined unordered, then put back in the frame's row order by row number: the streaming
    # engine's order-keeping join on two keys took 1.0-1.7 s a score at 10M customers, this
    # 0.4-0.7 s
    return (
        keys.with_row_index("_row")
        .join(levels, on=[over, "value"], how="left")
        .sort("_row")
        .select(pl.col("score").fill_null(1).alias(name))
    )


#: What each RFM score ranks, and whether the F rule for one-time buyers applies.
RFM_VALUES: dict[str, tuple[pl.Expr, bool]] = {
    "r_score": (-pl.col("days_since_last_purchase"), False),  # more recent = higher
    "f_score": (pl.col("n_purchase_days"), True),
    "m_score": (pl.col("total_revenue"), False),
}


def rfm_counts(features: pl.LazyFrame) -> dict[str, pl.LazyFrame]:
    """:func:`value_counts` of each score's value (:data:`RFM_VALUES`) over ``features``."""
    return {
        name: value_counts(features.select("as_of", value.alias("value")))
        for name, (value, _) in RFM_VALUES.items()
    }


def rfm_levels(counts: dict[str, pl.LazyFrame], *, n_bins: int = N_BINS) -> dict[str, pl.LazyFrame]:
    """The score of each distinct value per RFM score, from (merged) :func:`rfm_counts`."""
    return {
        name: levels_from_counts(counts[name], n_bins=n_bins, one_time_rule=one_time)
        for name, (_, one_time) in RFM_VALUES.items()
    }


def score_rfm(
    features: pl.LazyFrame,
    *,
    n_bins: int = N_BINS,
    levels: dict[str, pl.LazyFrame] | None = None,
) -> pl.LazyFrame:
    """Add ``r_score, f_score, m_score, fm_score, rfm_score, rfm_segment`` to customer features.

    Parameters
    ----------
    features
        ``customer_features`` (needs ``customer_id, as_of, days_since_last_purchase,
        n_purchase_days, total_revenue``); scores are relative within each ``as_of``.
    n_bins
        Number of score levels; the segment map needs the default 5.
    levels
        :func:`rfm_levels` of the whole snapshot when ``features`` is one customer shard of it;
        default: computed over ``features``.

    Returns
    -------
    pl.LazyFrame
        The input columns plus the score and segment columns; see the module docstring.
    """
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    scores = [
        score_quantile(
            features,
            value,
            name,
            n_bins=n_bins,
            one_time_rule=one_time,
            levels=None if levels is None else levels[name],
        )
        for name, (value, one_time) in RFM_VALUES.items()
    ]
    scored = pl.concat([features, *scores], how="horizontal").with_columns(
        ((pl.col("f_score") + pl.col("m_score") + 1) // 2).cast(pl.Int64).alias("fm_score"),
        pl.concat_str(
            pl.col("r_score").cast(pl.String),
            pl.col("f_score").cast(pl.String),
            pl.col("m_score").cast(pl.String),
        ).alias("rfm_score"),
    )
    segment = pl.col("rfm_segment")
    for cell, fallback in M_TIER_FALLBACK.items():
        segment = (
            pl.when((pl.col("rfm_segment") == cell) & (pl.col("m_score") < M_TIER_MIN))
            .then(pl.lit(fallback))
            .otherwise(segment)
        )
    return scored.with_columns(_map_cell().alias("rfm_segment")).with_columns(
        segment.alias("rfm_segment")
    )


def _map_cell() -> pl.Expr:
    """The :func:`rfm_segment_map` cell of each row's ``(r_score, f_score)`` (null outside the
    map), row by row: a join on the two scores did not keep the rows' order, so the table had
    to be sorted again by ``customer_id`` (6 s at 10M customers)."""
    cells = rfm_segment_map().collect()
    width = N_BINS + 1
    keys = cells["r_score"] * width + cells["f_score"]
    in_map = pl.col("r_score").is_between(1, N_BINS) & pl.col("f_score").is_between(1, N_BINS)
    return (
        pl.when(in_map)
        .then(
            (pl.col("r_score") * width + pl.col("f_score")).replace_strict(
                keys,
                cells["rfm_segment"],
                default=None,
                return_dtype=pl.String,
            )
        )
        .otherwise(pl.lit(None, pl.String))
    )
