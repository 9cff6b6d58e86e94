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


def score_quantile(value: pl.Expr, *, n_bins: int = N_BINS, over: str = "as_of") -> pl.Expr:
    """Dense quantile score 1..n_bins within ``over`` (module docstring); higher value = higher.

    Nulls score 1 and are not ranked (``n`` counts non-null values).
    """
    n = value.is_not_null().sum().over(over).cast(pl.Int64)
    below = (value.rank("min").over(over).cast(pl.Int64) - 1).fill_null(0)
    quantile = 1 + (below * n_bins) // n.clip(1)
    k = value.rank("dense").over(over).cast(pl.Int64)
    distinct = k.max().over(over)
    # U_k = k + cumulative min of (q_j - j) over the distinct values in ascending order; rows with
    # equal values share (q - k), so the order among them never matters.
    upward = k + (quantile - k).cum_min().over(over, order_by=value)
    room = k - (distinct - n_bins).clip(0)
    score = pl.max_horizontal(upward, room).clip(1, n_bins)
    return pl.when(value.is_null()).then(1).otherwise(score).cast(pl.Int64)


def score_frequency(
    n_purchase_days: pl.Expr, *, n_bins: int = N_BINS, over: str = "as_of"
) -> pl.Expr:
    """:func:`score_quantile` of purchase-days, with F = 1 exactly the one-time buyers if any."""
    score = score_quantile(n_purchase_days, n_bins=n_bins, over=over)
    if n_bins < 2:
        return score
    has_one_time = (n_purchase_days == 1).any().over(over)
    repeat = n_purchase_days > 1
    return (pl.when(has_one_time & repeat).then(pl.max_horizontal(score, 2)).otherwise(score)).cast(
        pl.Int64
    )


def score_rfm(features: pl.LazyFrame, *, n_bins: int = N_BINS) -> pl.LazyFrame:
    """Add ``r_score, f_score, m_score, fm_score, rfm_score, rfm_segment`` to customer features.

    Parameters
    ----------
    features
        ``customer_features`` (needs ``customer_id, as_of, days_since_last_purchase,
        n_purchase_days, total_revenue``); scores are relative within each ``as_of``.
    n_bins
        Number of score levels; the segment map needs the default 5.

    Returns
    -------
    pl.LazyFrame
        The input columns plus the score and segment columns; see the module docstring.
    """
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    scored = features.with_columns(
        score_quantile(-pl.col("days_since_last_purchase"), n_bins=n_bins).alias("r_score"),
        score_frequency(pl.col("n_purchase_days"), n_bins=n_bins).alias("f_score"),
        score_quantile(pl.col("total_revenue"), n_bins=n_bins).alias("m_score"),
    ).with_columns(
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
    return scored.join(rfm_segment_map(), on=["r_score", "f_score"], how="left").with_columns(
        segment.alias("rfm_segment")
    )
