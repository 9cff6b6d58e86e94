"""Out-of-time backtest of the BTYD models against two naive baselines.

History is split at ``calibration_end = as_of - holdout_days``. Customer features are computed
on the calibration period (:func:`clv_pipeline.features.customers.compute_features`), each
transaction model is fitted there (with Gamma-Gamma for spend) and predicts the holdout
``(calibration_end, as_of]``; the predictions are compared with what every calibration customer
actually did in the holdout. Customers acquired in the holdout are not evaluated.

Two baselines get the same metrics as the models: ``baseline_rate`` (the customer's repeat
purchase rate carried forward) and ``baseline_zero`` (nobody buys). Every row carries its lift
against the better baseline on that metric, so a model is only credited for what a naive rule
could not do.

Everything here is a pure function of polars frames / numpy arrays. Undefined metrics are null
(``None``), never NaN. Metric definitions: ``docs/models.md``; procedure: ``docs/report.md``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np
import polars as pl
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from clv_pipeline.features.customers import compute_features
from clv_pipeline.models import fit_and_predict
from clv_pipeline.numeric import exact_mean, exact_sum
from clv_pipeline.schema import (
    BACKTEST_CALIBRATION,
    BACKTEST_DECILES,
    BACKTEST_METRICS,
    MODEL_BACKTEST,
    conform,
)
from clv_pipeline.schema.report import BACKTEST_BASELINES

FloatArray = NDArray[np.float64]

#: The baselines in the ``model`` column: the customer's repeat purchase rate carried forward
#: (:func:`baseline_predictions`) and predict-zero (0 purchases, 0 value).
BASELINE_RATE, BASELINE_ZERO = BACKTEST_BASELINES

#: Name of ``baseline_rate`` in ``model_backtest`` partitions written before 2026-12.
LEGACY_BASELINE = "baseline"

#: Error metrics: lower is better (lift = share of the best baseline's error removed).
LOWER_IS_BETTER = frozenset(
    {"purchases_mae", "purchases_rmse", "value_mae", "value_rmse", "purchases_total_error_pct"}
)

#: Ranking metrics: higher is better (lift = points gained over the best baseline). The
#: remaining metrics are totals, without a direction.
HIGHER_IS_BETTER = frozenset({"purchases_spearman", "purchases_auc", "value_gini", "p_alive_auc"})


@dataclasses.dataclass(frozen=True)
class BacktestResult:
    """What :func:`run_backtest` produces.

    Attributes
    ----------
    metrics : pl.DataFrame
        ``model_backtest`` rows (:data:`~clv_pipeline.schema.MODEL_BACKTEST`).
    deciles : pl.DataFrame
        ``backtest_deciles`` rows (:data:`~clv_pipeline.schema.BACKTEST_DECILES`).
    calibration : pl.DataFrame
        ``backtest_calibration`` rows (:data:`~clv_pipeline.schema.BACKTEST_CALIBRATION`).
    data_sufficient : bool
        At least one BTYD model could be fitted and evaluated.
    messages : list[str]
        Human-readable notes (data sufficiency, fit messages per model).
    """

    metrics: pl.DataFrame
    deciles: pl.DataFrame
    calibration: pl.DataFrame
    data_sufficient: bool
    messages: list[str]


# --------------------------------------------------------------------------------------
# Metrics (numpy in, float | None out)
# --------------------------------------------------------------------------------------
def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _arrays(predicted: ArrayLike, actual: ArrayLike) -> tuple[FloatArray, FloatArray]:
    p = np.asarray(predicted, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if p.shape != a.shape or p.ndim != 1:
        raise ValueError("predicted and actual must be 1-D arrays of the same length")
    return p, a


def mae(predicted: ArrayLike, actual: ArrayLike) -> float | None:
    """Mean absolute error; None for no rows."""
    p, a = _arrays(predicted, actual)
    return _finite(float(np.mean(np.abs(p - a)))) if p.size else None


def rmse(predicted: ArrayLike, actual: ArrayLike) -> float | None:
    """Root mean squared error; None for no rows."""
    p, a = _arrays(predicted, actual)
    return _finite(math.sqrt(float(np.mean((p - a) ** 2)))) if p.size else None


def spearman(predicted: ArrayLike, actual: ArrayLike) -> float | None:
    """Spearman rank correlation (average ranks for ties); None when either side is constant."""
    p, a = _arrays(predicted, actual)
    if p.size < 2 or np.ptp(p) == 0 or np.ptp(a) == 0:
        return None
    rho = stats.spearmanr(p, a).statistic
    return _finite(float(rho))


def _gini(actual: FloatArray, score: FloatArray) -> float:
    """Unnormalised Gini of ``actual`` ordered by ``score`` descending, ties averaged."""
    order = np.argsort(-score, kind="stable")
    s, a = score[order], actual[order]
    # Tied scores get their group's mean actual: the expectation over random tie-breaking.
    _, start, counts = np.unique(-s, return_index=True, return_counts=True)
    sums = np.add.reduceat(a, start)
    a = np.repeat(sums / counts, counts)
    n = a.size
    cum = np.cumsum(a) / a.sum()
    return float(cum.sum() / n - (n + 1) / (2 * n))


def normalized_gini(predicted: ArrayLike, actual: ArrayLike) -> float | None:
    """Normalised Gini: Gini(actual ranked by predicted) / Gini(actual ranked by actual).

    1 = perfect ordering, 0 = random or constant predictions (exactly), negative = worse than
    random. None when there are fewer than two rows, the actual total is not positive, or
    actuals do not vary.
    """
    p, a = _arrays(predicted, actual)
    if p.size < 2 or a.sum() <= 0 or np.ptp(a) == 0:
        return None
    if np.ptp(p) == 0:
        return 0.0  # one tie group: no ordering (the sum below would leave a rounding residue)
    best = _gini(a, a)
    if best <= 0:
        return None
    return _finite(_gini(a, p) / best)


def auc(score: ArrayLike, target: ArrayLike) -> float | None:
    """ROC AUC (Mann-Whitney, average ranks for ties) of ``score`` for a boolean ``target``.

    None when the target has only one class.
    """
    s = np.asarray(score, dtype=np.float64)
    y = np.asarray(target, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError("score and target must be 1-D arrays of the same length")
    n_pos = int(np.count_nonzero(y))
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = stats.rankdata(s)
    u = float(ranks[y].sum()) - n_pos * (n_pos + 1) / 2.0
    return _finite(u / (n_pos * n_neg))


def _total_error_pct(predicted: FloatArray, actual: FloatArray) -> float | None:
    total = float(actual.sum())
    if total == 0:
        return None
    return _finite(100.0 * (float(predicted.sum()) - total) / total)


def _metric_values(
    pred_purchases: FloatArray | None,
    pred_value: FloatArray | None,
    p_alive: FloatArray | None,
    actual_purchases: FloatArray,
    actual_value: FloatArray,
) -> dict[str, float | None]:
    out: dict[str, float | None] = dict.fromkeys(BACKTEST_METRICS)
    out["purchases_actual_total"] = float(actual_purchases.sum())
    out["value_actual_total"] = float(actual_value.sum())
    if pred_purchases is not None:
        out["purchases_mae"] = mae(pred_purchases, actual_purchases)
        out["purchases_rmse"] = rmse(pred_purchases, actual_purchases)
        out["purchases_predicted_total"] = _finite(float(pred_purchases.sum()))
        out["purchases_total_error_pct"] = _total_error_pct(pred_purchases, actual_purchases)
        out["purchases_spearman"] = spearman(pred_purchases, actual_purchases)
        out["purchases_auc"] = auc(pred_purchases, actual_purchases > 0)
    if pred_value is not None:
        out["value_mae"] = mae(pred_value, actual_value)
        out["value_rmse"] = rmse(pred_value, actual_value)
        out["value_predicted_total"] = _finite(float(pred_value.sum()))
        out["value_gini"] = normalized_gini(pred_value, actual_value)
    if p_alive is not None:
        out["p_alive_auc"] = auc(1.0 - p_alive, actual_purchases == 0)
    return out


# --------------------------------------------------------------------------------------
# Data preparation
# --------------------------------------------------------------------------------------
def _holdout_actuals(
    transactions: pl.LazyFrame, *, calibration_end: date, as_of: date
) -> pl.LazyFrame:
    return (
        transactions.filter(
            (pl.col("event_date") > calibration_end)
            & (pl.col("event_date") <= as_of)
            & (pl.col("revenue_kind") == "purchase")
        )
        .group_by("customer_id")
        .agg(
            pl.col("event_date").n_unique().cast(pl.Int64).alias("actual_purchases"),
            exact_sum(pl.col("amount")).alias("actual_value"),  # order independent
        )
    )


def calibration_holdout(
    transactions: pl.LazyFrame, *, as_of: date, holdout_days: int
) -> pl.LazyFrame:
    """The calibration/holdout split of :func:`run_backtest` (also used to select the model).

    One row per customer with a purchase by ``calibration_end = as_of - holdout_days``: the
    customer features as of ``calibration_end``
    (:func:`~clv_pipeline.features.customers.compute_features`) plus ``actual_purchases``
    (purchase-days) and ``actual_value`` in the holdout ``(calibration_end, as_of]`` (0 when
    none), sorted by ``customer_id``. Rows after ``as_of`` are ignored.
    """
    calibration_end = as_of - timedelta(days=holdout_days)
    history = transactions.filter(pl.col("event_date") <= as_of)
    return (
        compute_features(history, as_of=calibration_end)
        .join(
            _holdout_actuals(history, calibration_end=calibration_end, as_of=as_of),
            on="customer_id",
            how="left",
        )
        .with_columns(
            pl.col("actual_purchases").fill_null(0), pl.col("actual_value").fill_null(0.0)
        )
        .sort("customer_id")
    )


def baseline_predictions(
    frequency: ArrayLike,
    age_days: ArrayLike,
    gross_revenue: ArrayLike,
    n_purchase_days: ArrayLike,
    *,
    holdout_days: int,
) -> tuple[FloatArray, FloatArray]:
    """Naive "last-period rate" benchmark (``baseline_rate``).

    Parameters
    ----------
    frequency, age_days, gross_revenue, n_purchase_days
        Calibration features per customer (``frequency`` = repeat purchase-days, ``age_days``
        = ``T``, first purchase-day to the calibration end).
    holdout_days
        Holdout length.

    Returns
    -------
    purchases, value
        ``frequency / T * holdout_days`` (the customer's observed repeat purchase-days per day
        of age carried forward; 0 when ``T`` is 0), and that times the customer's AOV per
        purchase-day ``gross_revenue / n_purchase_days``.
    """
    x = np.asarray(frequency, dtype=np.float64)
    age = np.asarray(age_days, dtype=np.float64)
    rev = np.asarray(gross_revenue, dtype=np.float64)
    n = np.asarray(n_purchase_days, dtype=np.float64)
    purchases = np.divide(x, age, out=np.zeros_like(x), where=age > 0) * float(holdout_days)
    aov_day = np.divide(rev, n, out=np.zeros_like(rev), where=n > 0)
    return purchases, purchases * aov_day


# --------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------
def _exact_means(*columns: str) -> list[pl.Expr]:
    """Group means in fixed point (:func:`~clv_pipeline.numeric.exact_mean`).

    A polars float mean of a group adds the partial sums of its threads in an order that varies
    from run to run (the last bits of ``backtest_deciles`` differed between a rerun and the
    original run); fixed-point sums are the same in any order. Means are exact to 1e-9.
    """
    return [exact_mean(pl.col(c)).alias(c) for c in columns]


def _deciles(
    model: str,
    pred_purchases: FloatArray,
    pred_value: FloatArray | None,
    actual_purchases: FloatArray,
    actual_value: FloatArray,
    n_deciles: int,
) -> pl.DataFrame:
    n = pred_purchases.size
    # rows are in customer_id order (run_backtest sorts them): tied predictions fall into
    # deciles by customer_id, whatever order the transactions were read in
    order = np.argsort(-pred_purchases, kind="stable")
    decile = np.empty(n, dtype=np.int64)
    decile[order] = np.arange(n) * n_deciles // max(n, 1) + 1
    frame = pl.DataFrame(
        {
            "decile": decile,
            "predicted_purchases": pred_purchases,
            "actual_purchases": actual_purchases,
            "predicted_value": pred_value
            if pred_value is not None
            else pl.Series([None] * n, dtype=pl.Float64),
            "actual_value": actual_value,
        }
    )
    return (
        frame.group_by("decile")
        .agg(
            pl.len().cast(pl.Int64).alias("customers"),
            *_exact_means(
                "predicted_purchases", "actual_purchases", "predicted_value", "actual_value"
            ),
        )
        .with_columns(pl.lit(model).alias("model"))
        .sort("decile")
    )


def _calibration(
    model: str,
    frequency: NDArray[np.int64],
    pred_purchases: FloatArray,
    actual_purchases: FloatArray,
    max_frequency: int,
) -> pl.DataFrame:
    bucket = np.minimum(frequency, max_frequency)
    frame = pl.DataFrame(
        {
            "frequency": bucket.astype(np.int64),
            "predicted_purchases": pred_purchases,
            "actual_purchases": actual_purchases,
        }
    )
    return (
        frame.group_by("frequency")
        .agg(
            pl.len().cast(pl.Int64).alias("customers"),
            *_exact_means("predicted_purchases", "actual_purchases"),
        )
        .with_columns(
            pl.lit(model).alias("model"),
            pl.when(pl.col("frequency") >= max_frequency)
            .then(pl.col("frequency").cast(pl.String) + "+")
            .otherwise(pl.col("frequency").cast(pl.String))
            .alias("frequency_label"),
        )
        .sort("frequency")
    )


SAMPLE_BUCKETS = 1_000_000


def in_sample(share: float) -> pl.Expr:
    """Rows of a deterministic ``share`` of customers (by a seeded hash of ``customer_id``)."""
    return pl.col("customer_id").hash(seed=20261123) % SAMPLE_BUCKETS < round(
        share * SAMPLE_BUCKETS
    )


def run_backtest(
    transactions: pl.LazyFrame,
    *,
    as_of: date,
    holdout_days: int = 90,
    models: Sequence[str] = ("bgnbd", "pareto_nbd"),
    penalizer: float = 0.0,
    min_customers: int = 50,
    min_repeat_customers: int = 20,
    n_deciles: int = 10,
    max_frequency: int = 7,
    sample_share: float = 1.0,
    split: pl.DataFrame | None = None,
) -> BacktestResult:
    """Backtest each transaction model (+ Gamma-Gamma) and the two baselines on a holdout.

    Parameters
    ----------
    transactions
        Validated transactions (``customer_id, occurred_at, event_date, amount,
        revenue_kind``); rows after ``as_of`` are ignored.
    as_of
        End of the holdout period (inclusive).
    holdout_days
        Holdout length; the calibration period ends at ``as_of - holdout_days``.
    models
        Transaction models to evaluate (names in ``TRANSACTION_MODELS``), each fitted alone.
    penalizer, min_customers, min_repeat_customers
        Passed to :func:`clv_pipeline.models.fit_and_predict`.
    n_deciles
        Number of prediction buckets in the decile frame.
    max_frequency
        Last (open-ended) calibration-frequency bucket of the calibration frame.
    sample_share
        Share of customers backtested, chosen by a hash of ``customer_id`` (deterministic, the
        same customers every day); 1 = everyone. Keeps the daily cost bounded on large bases.
    split
        :func:`calibration_holdout` of the sampled ``transactions``, when the caller has it
        already (``transactions`` is then not read).

    Returns
    -------
    BacktestResult
        Metrics (long, with every row's lift against the best baseline on that metric,
        :func:`with_lift`), deciles and calibration-vs-holdout frames, conforming to
        :mod:`clv_pipeline.schema.report`. A model that cannot be fitted has
        ``data_sufficient = false``, null metric values and the reason in ``note``.
        ``baseline_zero`` has metric rows only (its constant prediction has no deciles).

    Raises
    ------
    ValueError
        For ``holdout_days < 1``, ``n_deciles < 1`` or ``max_frequency < 1``.
    """
    if isinstance(models, str):
        models = [models]
    if holdout_days < 1:
        raise ValueError("holdout_days must be >= 1")
    if n_deciles < 1 or max_frequency < 1:
        raise ValueError("n_deciles and max_frequency must be >= 1")
    if not 0 < sample_share <= 1:
        raise ValueError("sample_share must be in (0, 1]")
    calibration_end = as_of - timedelta(days=holdout_days)
    history = transactions.filter(pl.col("event_date") <= as_of)
    messages: list[str] = []
    if sample_share < 1:
        history = history.filter(in_sample(sample_share))
        messages.append(
            f"backtest on a deterministic {sample_share:.1%} sample of customers "
            "(hash of customer_id; CLV_BACKTEST_MAX_CUSTOMERS)"
        )
    feats = (
        calibration_holdout(history, as_of=as_of, holdout_days=holdout_days).collect(
            engine="streaming"
        )
        if split is None
        else split
    )
    n = feats.height
    x = feats["frequency"].to_numpy().astype(np.int64)
    recency = feats["recency"].to_numpy().astype(np.float64)
    age = feats["T"].to_numpy().astype(np.float64)
    monetary = feats["monetary_value"].to_numpy().astype(np.float64)
    actual_p = feats["actual_purchases"].to_numpy().astype(np.float64)
    actual_v = feats["actual_value"].to_numpy().astype(np.float64)

    metric_rows: list[dict[str, object]] = []
    decile_frames: list[pl.DataFrame] = []
    calib_frames: list[pl.DataFrame] = []

    def add(
        model: str,
        ok: bool,
        p_purch: FloatArray | None,
        p_value: FloatArray | None,
        p_alive: FloatArray | None,
        note: str | None,
        *,
        frames: bool = True,
    ) -> None:
        values = (
            _metric_values(p_purch, p_value, p_alive, actual_p, actual_v)
            if n
            else dict.fromkeys(BACKTEST_METRICS)
        )
        for metric in BACKTEST_METRICS:
            value = values[metric]
            metric_rows.append(
                {
                    "model": model,
                    "data_sufficient": ok,
                    "metric": metric,
                    "value": value,
                    "n_customers": n,
                    "note": note if (value is None or not ok) else None,
                }
            )
        if p_purch is not None and n and frames:
            decile_frames.append(_deciles(model, p_purch, p_value, actual_p, actual_v, n_deciles))
            calib_frames.append(_calibration(model, x, p_purch, actual_p, max_frequency))

    if n == 0:
        messages.append(
            f"no customers with a purchase on or before the calibration end {calibration_end}: "
            "backtest disabled"
        )
    elif actual_p.sum() == 0:
        messages.append(
            f"no purchases by calibration customers in the holdout ({calibration_end}, {as_of}]: "
            "ranking metrics (Spearman, Gini, AUC) are undefined"
        )

    any_model = False
    for name in dict.fromkeys(models):
        if n == 0:
            add(name, False, None, None, None, messages[0])
            continue
        with np.errstate(all="ignore"):
            run = fit_and_predict(
                x,
                recency,
                age,
                monetary,
                horizon_days=float(holdout_days),
                discount_rate=0.0,
                gross_margin=1.0,
                models=(name,),
                selection=name,
                penalizer=penalizer,
                min_customers=min_customers,
                min_repeat_customers=min_repeat_customers,
                next_purchase=False,
            )
        if not run.data_sufficient or run.expected_purchases is None or run.p_alive is None:
            why = "; ".join(run.messages) or "model could not be fitted"
            messages.append(f"{name}: insufficient data ({why})")
            add(name, False, None, None, None, f"insufficient data: {why}")
            continue
        any_model = True
        note = None
        if run.predicted_clv is None:
            note = "spend model unavailable: " + "; ".join(run.messages)
            messages.append(f"{name}: {note}")
        add(name, True, run.expected_purchases, run.predicted_clv, run.p_alive, note)

    if n == 0:
        add(BASELINE_RATE, False, None, None, None, messages[0])
        add(BASELINE_ZERO, False, None, None, None, messages[0])
    else:
        b_purch, b_value = baseline_predictions(
            x,
            age,
            feats["gross_revenue"].to_numpy(),
            feats["n_purchase_days"].to_numpy(),
            holdout_days=holdout_days,
        )
        add(BASELINE_RATE, True, b_purch, b_value, None, None)
        add(BASELINE_ZERO, True, np.zeros(n), np.zeros(n), None, None, frames=False)

    for row in metric_rows:
        if row["value"] is None and row["note"] is None:
            row["note"] = (
                "no P(alive): a baseline predicts purchases only"
                if row["metric"] == "p_alive_auc" and row["model"] in BACKTEST_BASELINES
                else "undefined for this data (no variation or no holdout activity)"
            )

    common = [pl.lit(as_of).alias("as_of"), pl.lit(holdout_days).alias("holdout_days")]
    metrics = conform(
        with_lift(
            pl.DataFrame(
                metric_rows,
                schema={
                    "model": pl.String,
                    "data_sufficient": pl.Boolean,
                    "metric": pl.String,
                    "value": pl.Float64,
                    "n_customers": pl.Int64,
                    "note": pl.String,
                },
            )
        ).with_columns(*common, pl.lit(calibration_end).alias("calibration_end")),
        MODEL_BACKTEST,
    )
    deciles = (
        conform(pl.concat(decile_frames).with_columns(common), BACKTEST_DECILES)
        if decile_frames
        else pl.DataFrame(schema=BACKTEST_DECILES.schema)
    )
    calibration = (
        conform(pl.concat(calib_frames).with_columns(common), BACKTEST_CALIBRATION)
        if calib_frames
        else pl.DataFrame(schema=BACKTEST_CALIBRATION.schema)
    )
    return BacktestResult(
        metrics=metrics,
        deciles=deciles,
        calibration=calibration,
        data_sufficient=any_model,
        messages=messages,
    )


def _is_baseline() -> pl.Expr:
    return pl.col("model").is_in([*BACKTEST_BASELINES, LEGACY_BASELINE])


def best_baselines(metrics: pl.DataFrame) -> pl.DataFrame:
    """The better baseline on each metric.

    Parameters
    ----------
    metrics
        ``model_backtest`` rows of one ``as_of`` (at least ``model, data_sufficient, metric,
        value``); ``baseline``, the name before 2026-12, counts as a baseline too.

    Returns
    -------
    pl.DataFrame
        ``metric, best_baseline, baseline``: per metric with a direction and a baseline value,
        the baseline with the smallest ``|value|`` (error metrics, :data:`LOWER_IS_BETTER`) or
        the largest ``value`` (ranking metrics, :data:`HIGHER_IS_BETTER`), and that value; ties
        go to the first name in alphabetical order (``baseline_rate``).
    """
    lower = pl.col("metric").is_in(sorted(LOWER_IS_BETTER))
    higher = pl.col("metric").is_in(sorted(HIGHER_IS_BETTER))
    worse = pl.when(lower).then(pl.col("value").abs()).when(higher).then(-pl.col("value"))
    return (
        metrics.filter(_is_baseline() & pl.col("data_sufficient"))
        .with_columns(worse.alias("_worse"))
        .filter(pl.col("_worse").is_not_null())
        .sort("metric", "_worse", "model")
        .group_by("metric", maintain_order=True)
        .first()
        .select("metric", pl.col("model").alias("best_baseline"), pl.col("value").alias("baseline"))
    )


def _lift(value: str, baseline: str) -> pl.Expr:
    lower = pl.col("metric").is_in(sorted(LOWER_IS_BETTER))
    higher = pl.col("metric").is_in(sorted(HIGHER_IS_BETTER))
    return (
        pl.when(lower & (pl.col(baseline).abs() > 0))
        .then(1.0 - pl.col(value).abs() / pl.col(baseline).abs())
        .when(higher)
        .then(pl.col(value) - pl.col(baseline))
        .otherwise(None)
        .cast(pl.Float64)
    )


def with_lift(metrics: pl.DataFrame) -> pl.DataFrame:
    """``metrics`` with ``best_baseline`` and ``lift_vs_best_baseline`` on every row.

    ``lift_vs_best_baseline`` compares the row's value with the best baseline's on the same
    metric (:func:`best_baselines`): for error metrics ``1 - |value| / |best|`` (the share of
    the best baseline's error removed; null when that error is 0), for ranking metrics
    ``value - best`` (points); null for totals and null values. The best baseline's own lift
    is 0. Row order is kept.
    """
    best = best_baselines(metrics)
    return (
        metrics.drop("best_baseline", "lift_vs_best_baseline", strict=False)
        .join(best, on="metric", how="left", maintain_order="left")
        .with_columns(_lift("value", "baseline").alias("lift_vs_best_baseline"))
        .drop("baseline")
    )


def backtest_lift(metrics: pl.DataFrame) -> pl.DataFrame:
    """Wide comparison of each model with the best baseline, lift explicit.

    Parameters
    ----------
    metrics
        ``model_backtest`` rows of one ``as_of`` (partitions written before 2026-12, with a
        single ``baseline`` row per metric, work too: the lift is recomputed from the values).

    Returns
    -------
    pl.DataFrame
        ``metric, model, value, best_baseline, baseline, lift, better`` for every model that is
        not a baseline: ``baseline`` is the best baseline's value on the metric and ``lift``
        is :func:`with_lift`'s ``lift_vs_best_baseline`` (error metrics: share of the best
        baseline's error removed; ranking metrics: points gained; totals: null). ``better``
        is null when lift is null.
    """
    best = best_baselines(metrics)
    return (
        metrics.filter(~_is_baseline())
        .select("metric", "model", "value")
        .join(best, on="metric", how="left", maintain_order="left")
        .with_columns(_lift("value", "baseline").alias("lift"))
        .with_columns(
            pl.when(pl.col("lift").is_not_null()).then(pl.col("lift") > 0).alias("better")
        )
    )
