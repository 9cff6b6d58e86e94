"""RFM scores (1-5) and the named R x FM segment map.

Scoring (per ``as_of``; ties never split)::

    score = 1 + floor(n_bins x (rank_min(value) - 1) / n_customers)

``rank_min`` is the ascending ``rank("min")``, so ``rank_min - 1`` is the number of customers with a
*strictly lower* value: equal values always get the same score (the score of the lowest position of
the tie group). With distinct values and ``n`` divisible by 5 each score holds exactly ``n/5``
customers; with ties a score can be skipped (e.g. when 60% bought once they all score F = 1 and the
next frequency scores 4). If every value is equal, everyone scores 1.

* R: ranked on ``-days_since_last_purchase`` (more recent = higher = 5).
* F: ``n_purchase_days``.
* M: ``total_revenue`` (net revenue to date).
* FM = ceil((F + M) / 2).

Segment map (rows R, columns FM)::

    R \\ FM   1               2                    3                    4          5
    5        new             potential_loyalists  potential_loyalists  champions  champions
    4        promising       potential_loyalists  potential_loyalists  loyal      loyal
    3        about_to_sleep  about_to_sleep       need_attention       loyal      loyal
    2        hibernating     hibernating          at_risk              at_risk    cant_lose
    1        hibernating     hibernating          at_risk              at_risk    cant_lose
"""

from __future__ import annotations

import polars as pl

N_BINS = 5

# (R scores, FM scores) -> segment; the widely used RFM regex map on the R x FM grid.
RFM_RULES: tuple[tuple[tuple[int, ...], tuple[int, ...], str], ...] = (
    ((1, 2), (1, 2), "hibernating"),
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
)


def rfm_segment_map() -> pl.LazyFrame:
    """The 25-cell map as a frame: ``r_score, fm_score, rfm_segment``."""
    cells = [(r, fm, name) for rs, fms, name in RFM_RULES for r in rs for fm in fms]
    return pl.LazyFrame(
        {
            "r_score": [c[0] for c in cells],
            "fm_score": [c[1] for c in cells],
            "rfm_segment": [c[2] for c in cells],
        },
        schema={"r_score": pl.Int64, "fm_score": pl.Int64, "rfm_segment": pl.String},
    )


def score_quantile(value: pl.Expr, *, n_bins: int = N_BINS, over: str = "as_of") -> pl.Expr:
    """``1 + floor(n_bins x (rank_min - 1) / n)`` within ``over``; higher value = higher score.

    Nulls are ranked lowest (score 1).
    """
    ranked = value.rank("min").over(over).cast(pl.Int64)
    n = pl.len().over(over).cast(pl.Int64)
    below = (ranked - 1).fill_null(0)
    return (1 + (below * n_bins) // n).clip(1, n_bins).cast(pl.Int64)


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
        score_quantile(pl.col("n_purchase_days"), n_bins=n_bins).alias("f_score"),
        score_quantile(pl.col("total_revenue"), n_bins=n_bins).alias("m_score"),
    ).with_columns(
        ((pl.col("f_score") + pl.col("m_score") + 1) // 2).cast(pl.Int64).alias("fm_score"),
        pl.concat_str(
            pl.col("r_score").cast(pl.String),
            pl.col("f_score").cast(pl.String),
            pl.col("m_score").cast(pl.String),
        ).alias("rfm_score"),
    )
    return scored.join(rfm_segment_map(), on=["r_score", "fm_score"], how="left")
