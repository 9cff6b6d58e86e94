"""Model selection and the pipeline entry point :func:`fit_and_predict`.

:func:`fit_and_predict` fits the transaction models on weighted unique patterns, checks each fit
(:mod:`~clv_pipeline.models.diagnostics`), selects one by holdout error (a :class:`Holdout`
split), by BIC or by a forced choice, fits the Gamma-Gamma spend model and predicts per
customer; the discounted CLV formula is in :mod:`clv_pipeline.models.discount`. Time unit: days.

Selection (``selection="holdout"`` or ``"bic"``) ranks the fits that pass every diagnostic
(``FitResult.converged``: optimiser, positive-definite Hessian, no degenerate dropout); when
none does, the fits the optimiser finished, and says so. ``holdout`` refits each candidate on
the calibration period of the :class:`Holdout` (the same weighted-pattern fit, started from the
full-history estimates) and ranks by the mean absolute error of its predicted purchases in the
holdout; the full-history fit of the winner is used. It falls back to BIC when the history is
shorter than twice the holdout, no split is given, or no model could be scored. A selected model
whose predictions are not finite gives way to the next one. Every fit gets a
``selection_reason`` in plain words.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import ArrayLike, NDArray

from clv_pipeline.models.base import (
    FitResult,
    FloatArray,
    Params,
    Patterns,
    TransactionModel,
    as_float_array,
    validate_rft,
)
from clv_pipeline.models.bgnbd import MODEL as BGNBD
from clv_pipeline.models.diagnostics import (
    Diagnostic,
    Status,
    data_diagnostics,
    fit_diagnostics,
    holdout_diagnostic,
    predictions_diagnostic,
    selection_diagnostic,
    spend_diagnostic,
)
from clv_pipeline.models.discount import (
    DiscountPeriod,
    discount_schedule,
    discounted_purchases_and_total,
)
from clv_pipeline.models.gamma_gamma import MODEL as GAMMA_GAMMA
from clv_pipeline.models.mbgnbd import MODEL as MBGNBD
from clv_pipeline.models.pareto_nbd import MODEL as PARETO_NBD

#: Transaction models available to :func:`fit_and_predict`.
TRANSACTION_MODELS: dict[str, TransactionModel] = {
    BGNBD.name: BGNBD,
    PARETO_NBD.name: PARETO_NBD,
    MBGNBD.name: MBGNBD,
}

#: |corr(frequency, monetary_value)| above which the Gamma-Gamma independence assumption
#: is reported as questionable.
GG_CORR_WARN = 0.3

#: Selection rules besides forcing a model by name.
SELECTIONS = ("holdout", "bic")


@dataclasses.dataclass(frozen=True)
class Holdout:
    """A calibration/holdout split of the customer base, for ``selection="holdout"``.

    Attributes
    ----------
    frequency, recency, T : array_like
        Features (days) of the customers acquired by the calibration end
        ``as_of - holdout_days``, computed on the history up to that day.
    actual_purchases : array_like
        Their purchase-days in the holdout ``(calibration end, as_of]``.
    holdout_days : float
        Holdout length.
    """

    frequency: ArrayLike
    recency: ArrayLike
    T: ArrayLike
    actual_purchases: ArrayLike
    holdout_days: float


@dataclasses.dataclass(frozen=True)
class ModelRun:
    """Everything :func:`fit_and_predict` produces.

    Per-customer arrays are float64, in input order, or ``None`` when they could not be
    computed (insufficient data, no converged fit; ``messages`` says why). They never
    contain NaN except ``expected_days_to_next_purchase`` (NaN = one purchase is not
    expected within ``max_days``, i.e. no next-purchase date).
    """

    selected_model: str | None
    data_sufficient: bool
    messages: list[str]
    fits: list[FitResult]
    gamma_gamma_corr: float | None
    p_alive: FloatArray | None
    expected_purchases: FloatArray | None
    prob_active_in_horizon: FloatArray | None
    expected_avg_value: FloatArray | None
    predicted_clv: FloatArray | None
    expected_days_to_next_purchase: FloatArray | None
    horizon_days: float = 365.0
    diagnostics: tuple[Diagnostic, ...] = ()
    selection_reason: str | None = None

    def params_rows(self) -> list[dict[str, Any]]:
        """One row per (model, parameter) for persisting fitted parameters (``std_error``
        NaN where the Hessian is not positive definite)."""
        return [
            {
                "model": f.model,
                "param": name,
                "value": value,
                "std_error": f.std_errors.get(name, math.nan),
                "log_likelihood": f.log_likelihood,
                "bic": f.bic,
                "n_customers": f.n_customers,
                "n_repeat_customers": f.n_repeat_customers,
                "converged": f.converged,
                "selected": f.selected,
                "selection_reason": f.selection_reason,
            }
            for f in self.fits
            for name, value in f.params.items()
        ]

    def diagnostics_rows(self) -> list[dict[str, object]]:
        """One row per (model, check) for ``model_diagnostics``."""
        return [d.row() for d in self.diagnostics]


def _insufficient(
    messages: list[str],
    fits: list[FitResult],
    corr: float | None,
    diagnostics: Sequence[Diagnostic] = (),
) -> ModelRun:
    return ModelRun(
        selected_model=None,
        data_sufficient=False,
        messages=messages,
        fits=fits,
        gamma_gamma_corr=corr,
        p_alive=None,
        expected_purchases=None,
        prob_active_in_horizon=None,
        expected_avg_value=None,
        predicted_clv=None,
        expected_days_to_next_purchase=None,
        diagnostics=tuple(diagnostics),
    )


def _check_options(
    models: Sequence[str],
    selection: str,
    horizon_days: float,
    gross_margin: float,
    penalizer: float,
    min_customers: int,
    min_repeat_customers: int,
) -> list[str]:
    if isinstance(models, str):
        models = [models]
    names = list(dict.fromkeys(models))
    unknown = [m for m in names if m not in TRANSACTION_MODELS]
    if unknown or not names:
        raise ValueError(
            f"models must be a non-empty subset of {sorted(TRANSACTION_MODELS)}, got {models!r}"
        )
    if selection not in SELECTIONS and selection not in TRANSACTION_MODELS:
        raise ValueError(
            f"selection must be 'holdout', 'bic' or one of {sorted(TRANSACTION_MODELS)}, "
            f"got {selection!r}"
        )
    if selection not in SELECTIONS and selection not in names:
        names.append(selection)
    if not math.isfinite(horizon_days) or horizon_days <= 0:
        raise ValueError("horizon_days must be a finite number > 0")
    if not math.isfinite(gross_margin) or gross_margin < 0:
        raise ValueError("gross_margin must be a finite number >= 0")
    if not math.isfinite(penalizer) or penalizer < 0:
        raise ValueError("penalizer must be a finite number >= 0")
    if min_customers < 0 or min_repeat_customers < 0:
        raise ValueError("min_customers and min_repeat_customers must be >= 0")
    return names


def _safe_fit(
    model: TransactionModel,
    pat: Patterns,
    penalizer: float,
    initial: Params | None = None,
    *,
    diagnose: bool = True,
) -> FitResult:
    try:
        return model.fit(
            [], [], [], penalizer=penalizer, patterns=pat, initial_params=initial, diagnose=diagnose
        )
    except (ValueError, FloatingPointError, ArithmeticError) as exc:
        nan = math.nan
        return FitResult(
            model=model.name,
            params={k: nan for k in model.param_names},
            log_likelihood=nan,
            bic=nan,
            n_params=len(model.param_names),
            n_customers=round(pat.n_customers),
            n_repeat_customers=round(pat.n_repeat),
            converged=False,
            message=f"fit failed: {exc}",
        )


def _spend_correlation(x: FloatArray, m: FloatArray, messages: list[str]) -> float | None:
    rep = x > 0
    if np.count_nonzero(rep) < 3:
        return None
    xr, mr = x[rep], m[rep]
    if np.ptp(xr) == 0 or np.ptp(mr) == 0:
        messages.append("frequency/monetary correlation undefined (no variation)")
        return None
    corr = float(np.corrcoef(xr, mr)[0, 1])
    if abs(corr) > GG_CORR_WARN:
        messages.append(
            f"Gamma-Gamma assumes spend independent of frequency, but "
            f"corr(frequency, monetary_value) = {corr:.2f} (|corr| > {GG_CORR_WARN})"
        )
    return corr


# --------------------------------------------------------------------------------------
# Steps of fit_and_predict
# --------------------------------------------------------------------------------------
def _validate_data(
    frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, monetary_value: np.ndarray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Validated copies ``(x, t_x, T, m)`` (``ValueError`` naming the violated rule)."""
    x, tx, t_obs = validate_rft(frequency, recency, T)
    m = as_float_array(monetary_value, "monetary_value")
    if m.shape != x.shape:
        raise ValueError(
            f"monetary_value must have the same length as frequency, got {m.shape[0]} "
            f"and {x.shape[0]}"
        )
    if np.any(m < 0):
        raise ValueError("monetary_value must be >= 0")
    return x, tx, t_obs, m


def _data_sufficient(
    n: int, n_rep: int, min_customers: int, min_repeat_customers: int, messages: list[str]
) -> bool:
    """Whether there are enough (``n_rep`` repeat of ``n``) customers to fit; appends the
    reasons if not."""
    if n < min_customers:
        messages.append(f"only {n} customers (< {min_customers}): predictive CLV disabled")
    if n_rep < min_repeat_customers:
        messages.append(
            f"only {n_rep} repeat customers (< {min_repeat_customers}): predictive CLV disabled"
        )
    if n_rep == 0 and min_repeat_customers == 0:
        messages.append("no repeat customers: models cannot be fitted")
    return not (n < min_customers or n_rep < min_repeat_customers or n_rep == 0)


def _fit_candidates(
    pat: Patterns, names: list[str], penalizer: float, messages: list[str]
) -> list[FitResult]:
    """Fit every candidate transaction model on the weighted patterns (none selected yet)."""
    with np.errstate(all="ignore"):
        fits = [_safe_fit(TRANSACTION_MODELS[name], pat, penalizer) for name in names]
    for f in fits:
        if not f.optimizer_converged:
            messages.append(f"{f.model} did not converge: {f.message}")
        elif not f.converged:
            messages.append(f"{f.model}: {_distrust(f)}")
    return fits


def _distrust(f: FitResult) -> str:
    """Why a fit is not ``converged``, in plain words."""
    if not f.optimizer_converged:
        return f"the fit did not converge ({f.message})"
    reasons = []
    if f.hessian_positive_definite is False:
        reasons.append("flat likelihood, the parameters are not determined by the data")
    if f.degenerate:
        reasons.append("dropout collapsed, P(alive) ~ 1 for everyone")
    return "; ".join(reasons) or "its BIC is not finite"


@dataclasses.dataclass(frozen=True)
class _Ranking:
    """The candidate purchase models in the order they are tried, and why."""

    order: list[FitResult]
    metric: str  # "holdout MAE", "BIC" or "forced"
    mae: dict[str, float]  # holdout MAE of the models scored on the holdout
    note: str  # why BIC was used instead of the holdout ("" when nothing to say)
    trusted: bool  # the candidates passed every diagnostic
    excluded: dict[str, str]  # model -> why it is not a candidate
    diagnostics: list[Diagnostic]

    def value(self, f: FitResult) -> str:
        """The figure ``f`` was ranked by."""
        if self.metric == "holdout MAE":
            return f"{self.mae[f.model]:.4g}" if f.model in self.mae else "not scored"
        return f"{f.bic:.1f}"


def _holdout_scores(
    pool: list[FitResult],
    holdout: Holdout,
    *,
    penalizer: float,
    min_customers: int,
    min_repeat_customers: int,
) -> tuple[dict[str, float], str, list[Diagnostic]]:
    """Holdout MAE per model of ``pool`` (each refitted on the calibration patterns from its
    full-history estimates), why none could be scored (when none), and their diagnostics."""
    x, tx, t_obs = validate_rft(holdout.frequency, holdout.recency, holdout.T)
    actual = as_float_array(holdout.actual_purchases, "actual_purchases")
    days = float(holdout.holdout_days)
    if actual.shape != x.shape:
        raise ValueError("holdout actual_purchases must have one value per holdout customer")
    n_rep = int(np.count_nonzero(x > 0))
    if x.shape[0] < max(min_customers, 1) or n_rep < max(min_repeat_customers, 1):
        return (
            {},
            f"too few customers before the {days:g}-day holdout: {x.shape[0]:,} customers, "
            f"{n_rep:,} repeat",
            [],
        )
    pat = Patterns.from_arrays(x, tx, t_obs)
    scores: dict[str, float] = {}
    diagnostics = []
    for f in pool:
        model = TRANSACTION_MODELS[f.model]
        with np.errstate(all="ignore"):
            cal = _safe_fit(model, pat, penalizer, f.params, diagnose=False)
            pred = (
                model.expected_purchases(cal.params, pat.x, pat.tx, pat.T, horizon_days=days)
                if cal.optimizer_converged
                else None
            )
        why = ""
        if pred is None:
            why = f"the fit on the calibration period did not converge ({cal.message})"
        elif not np.all(np.isfinite(pred)):
            why = "its holdout predictions are not finite"
        else:
            scores[f.model] = float(np.mean(np.abs(pred[pat.inverse] - actual)))
        diagnostics.append(
            holdout_diagnostic(
                f.model, scores.get(f.model), holdout_days=days, n=x.shape[0], why=why
            )
        )
    return scores, "" if scores else "no model could be scored on the holdout", diagnostics


def _rank(
    fits: list[FitResult],
    selection: str,
    *,
    history_days: float,
    holdout: Holdout | None,
    penalizer: float,
    min_customers: int,
    min_repeat_customers: int,
) -> _Ranking:
    """Order the fits for selection: the forced model; else those passing every diagnostic
    (else those the optimiser finished) by holdout MAE (unscored ones after, by BIC) or BIC."""
    usable = [f for f in fits if f.optimizer_converged and math.isfinite(f.bic)]
    excluded = {f.model: _distrust(f) for f in fits if f not in usable}
    if selection in TRANSACTION_MODELS:
        for f in usable:
            if f.model != selection:
                excluded[f.model] = f"{selection} is forced by the model selection setting"
        order = [f for f in usable if f.model == selection]
        trusted = all(f.converged for f in order)
        return _Ranking(order, "forced", {}, "", trusted, excluded, [])
    pool = [f for f in usable if f.converged] or usable
    trusted = all(f.converged for f in pool)
    for f in usable:
        if f not in pool:
            excluded[f.model] = _distrust(f)
    mae: dict[str, float] = {}
    note = ""
    diagnostics: list[Diagnostic] = []
    if selection == "holdout" and pool:
        if holdout is None:
            note = "BIC (no holdout split given)"
        elif history_days < 2 * float(holdout.holdout_days):
            note = (
                f"BIC (history shorter than 2 × holdout: {history_days:g} < "
                f"2 × {float(holdout.holdout_days):g} days)"
            )
        else:
            mae, why, diagnostics = _holdout_scores(
                pool,
                holdout,
                penalizer=penalizer,
                min_customers=min_customers,
                min_repeat_customers=min_repeat_customers,
            )
            note = f"BIC ({why})" if not mae else ""
    order = sorted(pool, key=lambda f: (f.model not in mae, mae.get(f.model, 0.0), f.bic))
    metric = "holdout MAE" if mae else "BIC"
    return _Ranking(order, metric, mae, note, trusted, excluded, diagnostics)


def _reasons(ranking: _Ranking, chosen: FitResult | None, skipped: list[str]) -> dict[str, str]:
    """``selection_reason`` per purchase model: why it was chosen or passed over."""
    reasons = {model: f"not selected: {why}" for model, why in ranking.excluded.items()}
    for model in skipped:
        reasons[model] = "not selected: its predictions are not finite"
    if chosen is None:
        return reasons
    rest = [f for f in ranking.order if f is not chosen and f.model not in skipped]
    for f in rest:
        reasons[f.model] = (
            "not selected: not scored on the holdout (ranked after the scored models)"
            if ranking.metric == "holdout MAE" and f.model not in ranking.mae
            else f"not selected: {ranking.metric} {ranking.value(f)} vs "
            f"{ranking.value(chosen)} of {chosen.model}"
        )
    if ranking.metric == "forced":
        text = "forced by the model selection setting"
    elif ranking.metric == "holdout MAE" and chosen.model not in ranking.mae:
        text = f"the models scored on the holdout failed; lowest BIC {chosen.bic:.1f}"
    elif rest:
        text = f"lowest {ranking.metric} {ranking.value(chosen)} vs " + ", ".join(
            f"{f.model} {ranking.value(f)}" for f in rest
        )
    else:
        text = f"{ranking.metric} {ranking.value(chosen)}, the only candidate"
    if ranking.note:
        text = f"{ranking.note}: {text}"
    if skipped:
        text += f"; {', '.join(skipped)} ranked higher but gave non-finite predictions"
    if not ranking.trusted:
        text += (
            f" (it did not pass every diagnostic: {_distrust(chosen)})"
            if ranking.metric == "forced"
            else f" (no model passed every diagnostic; this one: {_distrust(chosen)})"
        )
    reasons[chosen.model] = text
    return reasons


def _fit_spend(
    x: FloatArray, m: FloatArray, keep: NDArray[np.bool_], penalizer: float, messages: list[str]
) -> FitResult | None:
    """Gamma-Gamma fit on the ``keep`` customers (repeat, spend > 0), or ``None`` (with a
    message) when there are none or the fit raised."""
    if not np.any(keep):
        messages.append("no repeat customer with monetary_value > 0: Gamma-Gamma not fitted")
        return None
    try:
        return GAMMA_GAMMA.fit(x[keep], m[keep], penalizer=penalizer)
    except ValueError as exc:
        messages.append(f"gamma_gamma fit failed: {exc}")
        return None


@dataclasses.dataclass(frozen=True)
class _Purchases:
    """Purchase predictions of the selected model per customer (input order), or per pattern."""

    p_alive: FloatArray
    expected: FloatArray
    prob_active: FloatArray
    discounted: FloatArray
    days_next: FloatArray | None

    def take(self, index: NDArray[np.intp]) -> _Purchases:
        """The predictions at ``index`` (e.g. each customer's pattern)."""
        return _Purchases(
            p_alive=self.p_alive[index],
            expected=self.expected[index],
            prob_active=self.prob_active[index],
            discounted=self.discounted[index],
            days_next=None if self.days_next is None else self.days_next[index],
        )


def _pattern_purchases(
    model: TransactionModel,
    params: Params,
    pat: Patterns,
    schedule: tuple[FloatArray, FloatArray],
    *,
    discount_rate: float,
    horizon_days: float,
    next_purchase: bool,
) -> _Purchases:
    """Predictions once per unique pattern of ``pat`` (pattern order; each pattern's values
    depend on it and ``params`` alone); ``schedule`` is
    :func:`~clv_pipeline.models.discount.discount_schedule`'s output."""
    px, ptx, pT = pat.x, pat.tx, pat.T
    ends, factors = schedule
    with np.errstate(all="ignore"):
        alive_pat = model.probability_alive(params, px, ptx, pT)
        disc_pat, exp_purch = discounted_purchases_and_total(
            model, params, px, ptx, pT, ends, factors, discount_rate, p_alive=alive_pat
        )
        # P(alive) computed once for every prediction (the next-purchase search asked for it
        # at each step); a non-finite one disqualifies the model below, and the predictions
        # then compute their own, as they did
        shared = alive_pat if np.all(np.isfinite(alive_pat)) else None
        prob_active = model.purchase_probability(
            params, px, ptx, pT, horizon_days=horizon_days, p_alive=shared
        )
        days_next = (
            model.expected_days_to_next_purchase(params, px, ptx, pT, p_alive=shared)
            if next_purchase
            else None
        )
    return _Purchases(
        p_alive=alive_pat,
        expected=exp_purch,
        prob_active=prob_active,
        discounted=disc_pat,
        days_next=days_next,
    )


def _predict_purchases(
    model: TransactionModel,
    params: Params,
    pat: Patterns,
    schedule: tuple[FloatArray, FloatArray],
    *,
    discount_rate: float,
    horizon_days: float,
    next_purchase: bool,
) -> _Purchases:
    """Predictions computed once per unique pattern and scattered back to the customers."""
    per_pattern = _pattern_purchases(
        model,
        params,
        pat,
        schedule,
        discount_rate=discount_rate,
        horizon_days=horizon_days,
        next_purchase=next_purchase,
    )
    return per_pattern.take(pat.inverse)


def _expected_spend(
    params: Params, x: FloatArray, m: FloatArray, fallback: float, messages: list[str]
) -> FloatArray:
    """Gamma-Gamma expected spend per customer. Fallback: where it is undefined (q <= 1,
    customers without repeat purchases) ``fallback``, the observed mean spend of the repeat
    customers with spend > 0 of the whole base."""
    avg_value = GAMMA_GAMMA.expected_customer_spend(params, x, m)
    if not np.all(np.isfinite(avg_value)):
        messages.append(
            "Gamma-Gamma q <= 1 (population mean spend undefined): customers without "
            f"repeat purchases get the observed mean repeat spend {fallback:.4g}"
        )
        avg_value = np.where(np.isfinite(avg_value), avg_value, fallback)
    return avg_value


def _non_finite(purchases: _Purchases, weights: FloatArray) -> int:
    """Customers (``weights`` per pattern) with a non-finite purchase prediction (the
    next-purchase date may be NaN)."""
    bad = np.zeros(purchases.p_alive.shape[0], dtype=bool)
    for values in (purchases.p_alive, purchases.expected, purchases.prob_active):
        bad |= ~np.isfinite(values)
    bad |= ~np.isfinite(purchases.discounted)
    return round(float(weights[bad].sum()))


def customer_arrays(
    frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, monetary_value: np.ndarray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Validated float copies ``(x, t_x, T, m)`` of per-customer features (``ValueError``
    naming the violated rule), as :func:`fit_and_predict` takes them."""
    return _validate_data(frequency, recency, T, monetary_value)


@dataclasses.dataclass(frozen=True)
class FitInputs:
    """What the fit needs of a customer base, and nothing per customer beyond it: the weighted
    unique ``(x, t_x, T)`` patterns (every purchase model) and the repeat customers' ``(x, m)``
    (Gamma-Gamma and the spend correlation), with each repeat customer's position in the whole
    base (``order``) so that shards merge back into the unsharded order, bit for bit.

    Sharded runs build one per shard (:meth:`from_arrays` with the shard's positions) and
    :meth:`merge` them: the merged patterns, weights and spend rows are those of the whole
    base, so the fit is the unsharded fit.
    """

    patterns: Patterns
    spend_x: FloatArray
    spend_m: FloatArray
    order: NDArray[np.int64]

    @classmethod
    def from_arrays(
        cls,
        x: FloatArray,
        tx: FloatArray,
        t_obs: FloatArray,
        m: FloatArray,
        order: NDArray[np.int64] | None = None,
    ) -> FitInputs:
        """From validated arrays (:func:`_validate_data`); ``order``: each customer's
        position in the whole base (default: ``0 .. n - 1``)."""
        rep = x > 0
        positions = np.arange(x.shape[0], dtype=np.int64) if order is None else order
        return cls(Patterns.from_arrays(x, tx, t_obs), x[rep], m[rep], positions[rep])

    @classmethod
    def merge(cls, parts: Sequence[FitInputs]) -> FitInputs:
        """The inputs of the union of disjoint customer sets (the shards of one base)."""
        pats = [p.patterns for p in parts]
        order = np.concatenate([p.order for p in parts])
        sort = np.argsort(order, kind="stable")
        return cls(
            Patterns.from_arrays(
                np.concatenate([p.x for p in pats]),
                np.concatenate([p.tx for p in pats]),
                np.concatenate([p.T for p in pats]),
                np.concatenate([p.weights for p in pats]),
            ),
            np.concatenate([p.spend_x for p in parts])[sort],
            np.concatenate([p.spend_m for p in parts])[sort],
            order[sort],
        )

    @property
    def n_customers(self) -> int:
        return round(self.patterns.n_customers)

    @property
    def n_repeat(self) -> int:
        return int(self.spend_x.shape[0])


@dataclasses.dataclass(frozen=True)
class ModelFit:
    """The fit half of :func:`fit_and_predict` (:func:`fit_models`): everything decided over
    the whole customer base, before any per-customer prediction (:func:`predict_customers`).

    ``outcome`` is the final :class:`ModelRun` when no prediction follows (insufficient data,
    no usable model); else None and ``chosen`` is the selected purchase model's fit.
    """

    outcome: ModelRun | None
    messages: list[str]
    diagnostics: list[Diagnostic]
    fits: list[FitResult]
    corr: float | None
    chosen: FitResult | None = None
    reason: str | None = None
    gg_params: Params | None = None
    spend_fallback: float = math.nan
    schedule: tuple[FloatArray, FloatArray] | None = None
    horizon_days: float = 365.0
    discount_rate: float = 0.10
    gross_margin: float = 1.0
    next_purchase: bool = True
    #: The chosen model's predictions per unique pattern of the whole base, the patterns'
    #: ``(x, t_x, T)`` and the base's :class:`Patterns` (dropped before a fit is stored).
    pattern_purchases: _Purchases | None = None
    pattern_keys: tuple[FloatArray, FloatArray, FloatArray] | None = None
    patterns: Patterns | None = None

    def summary_run(self) -> ModelRun:
        """The run's fits, diagnostics and messages without per-customer arrays (its
        ``model_params`` and ``model_diagnostics`` rows)."""
        if self.outcome is not None:
            return self.outcome
        return ModelRun(
            selected_model=self.chosen.model if self.chosen else None,
            data_sufficient=True,
            messages=list(self.messages),
            fits=self.fits,
            gamma_gamma_corr=self.corr,
            p_alive=None,
            expected_purchases=None,
            prob_active_in_horizon=None,
            expected_avg_value=None,
            predicted_clv=None,
            expected_days_to_next_purchase=None,
            horizon_days=self.horizon_days,
            diagnostics=tuple(self.diagnostics),
            selection_reason=self.reason,
        )


def fit_models(
    inputs: FitInputs,
    *,
    horizon_days: float = 365.0,
    discount_rate: float = 0.10,
    discount_period: DiscountPeriod = "annual",
    gross_margin: float = 1.0,
    models: Sequence[str] = ("bgnbd", "pareto_nbd"),
    selection: str = "bic",
    penalizer: float = 0.0,
    min_customers: int = 50,
    min_repeat_customers: int = 20,
    next_purchase: bool = True,
    holdout: Holdout | None = None,
) -> ModelFit:
    """Fit, check and select over ``inputs`` (see :func:`fit_and_predict` for the options).

    The selected model's predictions are computed once per unique pattern and checked for
    finiteness there (a customer count: the patterns' weights); :func:`predict_customers`
    looks every customer's up.
    """
    names = _check_options(
        models,
        selection,
        horizon_days,
        gross_margin,
        penalizer,
        min_customers,
        min_repeat_customers,
    )
    schedule = discount_schedule(
        horizon_days, discount_rate=discount_rate, discount_period=discount_period
    )
    n, n_rep = inputs.n_customers, inputs.n_repeat
    diagnostics = data_diagnostics(
        n, n_rep, min_customers=min_customers, min_repeat_customers=min_repeat_customers
    )
    if n == 0:
        why = "no customers: predictive CLV disabled"
        outcome = _insufficient(
            [why], [], None, [*diagnostics, selection_diagnostic(None, "fail", why)]
        )
        return ModelFit(outcome, outcome.messages, list(outcome.diagnostics), [], None)
    messages: list[str] = []
    corr = _spend_correlation(inputs.spend_x, inputs.spend_m, messages)
    before = len(messages)
    if not _data_sufficient(n, n_rep, min_customers, min_repeat_customers, messages):
        why = "; ".join(messages[before:])
        diagnostics.append(selection_diagnostic(None, "fail", why))
        outcome = _insufficient(messages, [], corr, diagnostics)
        return ModelFit(outcome, messages, diagnostics, [], corr)

    # fit and check the candidates, rank them; fit the spend model
    pat = inputs.patterns
    fits = _fit_candidates(pat, names, penalizer, messages)
    ranking = _rank(
        fits,
        selection,
        history_days=float(pat.T.max()) + 1.0,  # the oldest customer's first day .. as_of
        holdout=holdout,
        penalizer=penalizer,
        min_customers=min_customers,
        min_repeat_customers=min_repeat_customers,
    )
    diagnostics += [d for f in fits for d in fit_diagnostics(f)]
    diagnostics += ranking.diagnostics
    keep = inputs.spend_m > 0
    gg_fit = _fit_spend(inputs.spend_x, inputs.spend_m, keep, penalizer, messages)
    if gg_fit is not None:
        diagnostics += fit_diagnostics(gg_fit)
        if not gg_fit.converged:
            messages.append(f"gamma_gamma: {_distrust(gg_fit)}")
    diagnostics.append(spend_diagnostic(corr, GG_CORR_WARN))

    # predict with the first candidate whose predictions are all finite
    chosen: FitResult | None = None
    purchases: _Purchases | None = None
    skipped: list[str] = []
    for candidate in ranking.order:
        attempt = _pattern_purchases(
            TRANSACTION_MODELS[candidate.model],
            candidate.params,
            pat,
            schedule,
            discount_rate=discount_rate,
            horizon_days=horizon_days,
            next_purchase=next_purchase,
        )
        bad = _non_finite(attempt, pat.weights)
        diagnostics.append(predictions_diagnostic(candidate.model, bad, n))
        if not bad:
            chosen, purchases = candidate, attempt
            break
        skipped.append(candidate.model)
        messages.append(f"{candidate.model} produced non-finite predictions for {bad} customers")
    reasons = _reasons(ranking, chosen, skipped)
    fits = [
        dataclasses.replace(f, selected=f is chosen, selection_reason=reasons.get(f.model))
        for f in fits
    ]
    gg_used = gg_fit is not None and gg_fit.converged and chosen is not None
    if gg_fit is not None:
        fits.append(
            dataclasses.replace(
                gg_fit,
                selected=gg_used,
                selection_reason="spend model, used with the selected purchase model"
                if gg_used
                else f"not used: {_distrust(gg_fit)}"
                if not gg_fit.converged
                else "not used: no purchase model was selected",
            )
        )
    if chosen is None or purchases is None:
        if skipped:
            what = "every candidate produced non-finite predictions"
        elif selection in TRANSACTION_MODELS:
            what = f"{selection} did not converge"
        else:
            what = "no model converged"
        messages.append(f"{what}: predictive CLV disabled")
        diagnostics.append(selection_diagnostic(None, "fail", f"{what}: predictive CLV disabled"))
        outcome = _insufficient(messages, fits, corr, diagnostics)
        return ModelFit(outcome, messages, diagnostics, fits, corr)
    reason = reasons[chosen.model]
    messages.append(f"selected {chosen.model}: {reason}")
    status: Status = "ok" if chosen.converged and not skipped else "warn"
    diagnostics.append(selection_diagnostic(chosen.model, status, reason))
    if not (gg_used and gg_fit is not None):
        messages.append("expected_avg_value and predicted_clv unavailable (Gamma-Gamma failed)")
    return ModelFit(
        None,
        messages,
        diagnostics,
        fits,
        corr,
        chosen=chosen,
        reason=reason,
        gg_params=gg_fit.params if gg_used and gg_fit is not None else None,
        spend_fallback=float(np.mean(inputs.spend_m[keep])) if np.any(keep) else math.nan,
        schedule=schedule,
        horizon_days=float(horizon_days),
        discount_rate=discount_rate,
        gross_margin=gross_margin,
        next_purchase=next_purchase,
        pattern_purchases=purchases,
        pattern_keys=(pat.x, pat.tx, pat.T),
        patterns=pat,
    )


def _looked_up(
    table: _Purchases, keys: tuple[FloatArray, FloatArray, FloatArray], pat: Patterns
) -> _Purchases:
    """``table`` (per pattern of ``keys``) at each pattern of ``pat`` (all must be in it)."""
    index = (
        pl.DataFrame({"x": pat.x, "tx": pat.tx, "T": pat.T})
        .join(
            pl.DataFrame({"x": keys[0], "tx": keys[1], "T": keys[2]}).with_row_index("_i"),
            on=["x", "tx", "T"],
            how="left",
            maintain_order="left",
        )
        .get_column("_i")
    )
    if index.null_count():
        raise ValueError("a pattern of these customers is not in the fit's base")
    return table.take(index.to_numpy().astype(np.intp))


def predict_customers(
    fit: ModelFit,
    x: FloatArray,
    tx: FloatArray,
    t_obs: FloatArray,
    m: FloatArray,
    patterns: Patterns | None = None,
) -> ModelRun:
    """The per-customer half of :func:`fit_and_predict`: ``fit``'s selected model over the
    customers ``x, tx, t_obs, m`` (validated arrays; all of the base or one shard).
    ``patterns``: theirs, when already built.

    The purchase predictions are the fit's own per-pattern ones, looked up by pattern, when the
    fit has them: some are not computed element by element (Pareto/NBD's P(alive) sums its
    series until the whole array has converged), so recomputed over one shard's patterns they
    could differ from the whole base's in the 15th digit; looked up they are the same bits.
    """
    if fit.outcome is not None:
        return fit.outcome
    chosen = fit.chosen
    if chosen is None or fit.schedule is None:  # fit_models sets both when outcome is None
        raise ValueError("a ModelFit without an outcome needs its chosen model and schedule")
    pat = Patterns.from_arrays(x, tx, t_obs) if patterns is None else patterns
    per_pattern = fit.pattern_purchases if pat is fit.patterns else None
    if per_pattern is None and fit.pattern_purchases is not None and fit.pattern_keys is not None:
        per_pattern = _looked_up(fit.pattern_purchases, fit.pattern_keys, pat)
    if per_pattern is None:
        per_pattern = _pattern_purchases(
            TRANSACTION_MODELS[chosen.model],
            chosen.params,
            pat,
            fit.schedule,
            discount_rate=fit.discount_rate,
            horizon_days=fit.horizon_days,
            next_purchase=fit.next_purchase,
        )
    purchases = per_pattern.take(pat.inverse)
    messages = list(fit.messages)
    # without a converged spend model the value columns stay None
    avg_value: FloatArray | None = None
    clv: FloatArray | None = None
    if fit.gg_params is not None:
        avg_value = _expected_spend(fit.gg_params, x, m, fit.spend_fallback, messages)
        clv = purchases.discounted * avg_value * fit.gross_margin
    return ModelRun(
        selected_model=chosen.model,
        data_sufficient=True,
        messages=messages,
        fits=fit.fits,
        gamma_gamma_corr=fit.corr,
        p_alive=purchases.p_alive,
        expected_purchases=purchases.expected,
        prob_active_in_horizon=purchases.prob_active,
        expected_avg_value=avg_value,
        predicted_clv=clv,
        expected_days_to_next_purchase=purchases.days_next,
        horizon_days=fit.horizon_days,
        diagnostics=tuple(fit.diagnostics),
        selection_reason=fit.reason,
    )


def fit_and_predict(
    frequency: np.ndarray,
    recency: np.ndarray,
    T: np.ndarray,
    monetary_value: np.ndarray,
    *,
    horizon_days: float = 365.0,
    discount_rate: float = 0.10,
    discount_period: DiscountPeriod = "annual",
    gross_margin: float = 1.0,
    models: Sequence[str] = ("bgnbd", "pareto_nbd"),
    selection: str = "bic",
    penalizer: float = 0.0,
    min_customers: int = 50,
    min_repeat_customers: int = 20,
    next_purchase: bool = True,
    holdout: Holdout | None = None,
) -> ModelRun:
    """Fit transaction + spend models, check them, select one and predict per customer.

    Steps: validate input (``ValueError`` with a clear message on length mismatch,
    non-finite, negative values, ``recency > T``, non-integer frequency, or bad options);
    check data sufficiency (``min_customers``, ``min_repeat_customers``); fit every model in
    ``models`` on weighted unique patterns with its diagnostics; select one (module docstring):
    ``selection="holdout"`` by the holdout error on ``holdout`` (BIC when it is None or the
    history is shorter than twice the holdout), ``"bic"`` by BIC, or a model name to force it;
    fit Gamma-Gamma on repeat customers with spend > 0; predict per customer over
    ``horizon_days`` (time unit: days), falling back to the next model when the selected
    one's predictions are not finite (not for a forced model).

    When data is insufficient or no fit is usable, ``data_sufficient`` is False,
    ``selected_model`` None and every per-customer array None (never NaN-filled); the
    reasons are in ``messages`` and ``diagnostics``. If only Gamma-Gamma fails, the purchase
    predictions are kept and ``expected_avg_value``/``predicted_clv`` are None.
    ``next_purchase=False`` skips ``expected_days_to_next_purchase`` (a root search per
    pattern; None in the result).
    """
    _check_options(
        models,
        selection,
        horizon_days,
        gross_margin,
        penalizer,
        min_customers,
        min_repeat_customers,
    )
    discount_schedule(horizon_days, discount_rate=discount_rate, discount_period=discount_period)
    x, tx, t_obs, m = _validate_data(frequency, recency, T, monetary_value)
    inputs = FitInputs.from_arrays(x, tx, t_obs, m)
    fit = fit_models(
        inputs,
        horizon_days=horizon_days,
        discount_rate=discount_rate,
        discount_period=discount_period,
        gross_margin=gross_margin,
        models=models,
        selection=selection,
        penalizer=penalizer,
        min_customers=min_customers,
        min_repeat_customers=min_repeat_customers,
        next_purchase=next_purchase,
        holdout=holdout,
    )
    return predict_customers(fit, x, tx, t_obs, m, inputs.patterns)
