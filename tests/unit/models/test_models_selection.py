"""Model selection: by holdout error (the default setting), BIC fallback on a short history,
the next model when the selected one's predictions are not finite, and the reasons."""

from __future__ import annotations

import numpy as np
import pytest

from clv_pipeline.models import Holdout, fit_and_predict
from clv_pipeline.models.bgnbd import MODEL as BGNBD
from clv_pipeline.models.diagnostics import (
    ALL_MODELS,
    HOLDOUT_CHECK,
    PREDICTIONS_CHECK,
    SELECTION_CHECK,
)
from clv_pipeline.models.pareto_nbd import MODEL as PARETO_NBD
from clv_pipeline.models.simulate import simulate_pareto_nbd, simulate_spend

HOLDOUT_DAYS = 90.0


@pytest.fixture(scope="module")
def data():
    """Pareto/NBD customers (BIC prefers pareto_nbd over bgnbd on them), T up to 500 days."""
    params = {"r": 0.55, "alpha": 74.0, "s": 0.61, "beta": 82.0}
    rng = np.random.default_rng(7)
    t_obs = rng.integers(30, 500, 4000).astype(float)
    x, tx = simulate_pareto_nbd(params, t_obs, seed=8)
    m = simulate_spend({"p": 6.25, "q": 3.74, "v": 15.44}, x, seed=9)
    return x, np.floor(tx), t_obs, m


@pytest.fixture(scope="module")
def calibration(data):
    """The calibration features: the same customers 90 days earlier (recency capped)."""
    x, tx, t_obs, _ = data
    keep = t_obs > HOLDOUT_DAYS
    cal_t = t_obs[keep] - HOLDOUT_DAYS
    cal_tx = np.minimum(tx[keep], cal_t)
    cal_x = np.where(tx[keep] > cal_t, np.maximum(x[keep] - 1, 0), x[keep])
    cal_tx = np.where(cal_x > 0, cal_tx, 0.0)
    return cal_x, cal_tx, cal_t


def _holdout(calibration, actual) -> Holdout:
    x, tx, t_obs = calibration
    return Holdout(x, tx, t_obs, actual, HOLDOUT_DAYS)


def _predicted(model, calibration) -> np.ndarray:
    fit = model.fit(*calibration)
    return model.expected_purchases(fit.params, *calibration, horizon_days=HOLDOUT_DAYS)


def _rows(run):
    return {(d.model, d.check): d for d in run.diagnostics}


def test_bic_prefers_pareto(data):
    run = fit_and_predict(*data, selection="bic")
    assert run.selected_model == "pareto_nbd"
    assert run.selection_reason is not None
    assert run.selection_reason.startswith("lowest BIC")
    assert "bgnbd" in run.selection_reason


def test_holdout_picks_the_better_holdout_model_and_records_the_reason(data, calibration):
    # the holdout happens exactly as BG/NBD predicted it: BG/NBD must win although BIC
    # prefers Pareto/NBD
    actual = _predicted(BGNBD, calibration)
    run = fit_and_predict(*data, selection="holdout", holdout=_holdout(calibration, actual))
    assert run.selected_model == "bgnbd"
    rows = _rows(run)
    mae_bg = rows[("bgnbd", HOLDOUT_CHECK)].value
    mae_pareto = rows[("pareto_nbd", HOLDOUT_CHECK)].value
    assert mae_bg is not None and mae_pareto is not None
    assert mae_bg < 1e-3 < mae_pareto
    # the MAE recorded is the MAE of the calibration fit's predictions
    pareto = np.abs(_predicted(PARETO_NBD, calibration) - actual).mean()
    assert mae_pareto == pytest.approx(pareto, rel=1e-3)
    reason = run.selection_reason or ""
    assert reason.startswith(f"lowest holdout MAE {mae_bg:.4g} vs pareto_nbd {mae_pareto:.4g}")
    assert rows[(ALL_MODELS, SELECTION_CHECK)].status == "ok"
    assert reason in rows[(ALL_MODELS, SELECTION_CHECK)].message
    fits = {f.model: f for f in run.fits}
    assert fits["bgnbd"].selected and fits["bgnbd"].selection_reason == reason
    assert not fits["pareto_nbd"].selected
    assert (fits["pareto_nbd"].selection_reason or "").startswith("not selected: holdout MAE")
    # the full-history fit of the winner is the one used (not the calibration fit)
    assert fits["bgnbd"].n_customers == data[0].shape[0]
    for row in run.params_rows():
        assert row["selection_reason"] == fits[row["model"]].selection_reason


def test_holdout_on_the_true_process_prefers_the_true_model(data, calibration):
    actual = _predicted(PARETO_NBD, calibration)
    run = fit_and_predict(*data, selection="holdout", holdout=_holdout(calibration, actual))
    assert run.selected_model == "pareto_nbd"
    assert (run.selection_reason or "").startswith("lowest holdout MAE")


def test_short_history_falls_back_to_bic(data, calibration):
    x, tx, t_obs, m = data
    long_holdout = Holdout(*calibration, np.zeros(calibration[0].shape[0]), 300.0)
    run = fit_and_predict(x, tx, t_obs, m, selection="holdout", holdout=long_holdout)
    assert run.selected_model == fit_and_predict(*data, selection="bic").selected_model
    reason = run.selection_reason or ""
    assert reason.startswith("BIC (history shorter than 2 × holdout: 500 < 2 × 300 days)")
    assert "lowest BIC" in reason
    assert not any(d.check == HOLDOUT_CHECK for d in run.diagnostics)
    # no split at all: BIC too, and it says so
    none = fit_and_predict(*data, selection="holdout")
    assert (none.selection_reason or "").startswith("BIC (no holdout split given)")


def test_too_few_customers_before_the_holdout_falls_back_to_bic(data, calibration):
    x, tx, t_obs = (a[:10] for a in calibration)
    tiny = Holdout(x, tx, t_obs, np.zeros(10), HOLDOUT_DAYS)
    run = fit_and_predict(*data, selection="holdout", holdout=tiny)
    assert (run.selection_reason or "").startswith("BIC (too few customers before the 90-day")


def test_non_finite_predictions_fall_back_to_the_next_model(data, calibration, monkeypatch):
    real = PARETO_NBD.probability_alive

    def broken(params, frequency, recency, T):
        return np.full(np.shape(real(params, frequency, recency, T)), np.nan)

    monkeypatch.setattr(PARETO_NBD, "probability_alive", broken)
    actual = _predicted(PARETO_NBD, calibration)  # pareto_nbd would win the holdout
    run = fit_and_predict(*data, selection="holdout", holdout=_holdout(calibration, actual))
    assert run.data_sufficient and run.selected_model == "bgnbd"
    assert run.p_alive is not None and np.all(np.isfinite(run.p_alive))
    rows = _rows(run)
    assert rows[("pareto_nbd", PREDICTIONS_CHECK)].status == "fail"
    assert rows[("bgnbd", PREDICTIONS_CHECK)].status == "ok"
    assert rows[(ALL_MODELS, SELECTION_CHECK)].status == "warn"
    reason = run.selection_reason or ""
    assert "pareto_nbd ranked higher but gave non-finite predictions" in reason
    fits = {f.model: f for f in run.fits}
    assert fits["pareto_nbd"].selection_reason == "not selected: its predictions are not finite"
    assert any("pareto_nbd produced non-finite predictions" in m for m in run.messages)


def test_non_finite_predictions_of_every_model_disable_the_valuation(data, monkeypatch):
    for model in (PARETO_NBD, BGNBD):
        monkeypatch.setattr(
            model, "probability_alive", lambda params, x, tx, T: np.full(np.shape(x), np.nan)
        )
    run = fit_and_predict(*data, selection="bic")
    assert not run.data_sufficient and run.selected_model is None and run.p_alive is None
    selection = _rows(run)[(ALL_MODELS, SELECTION_CHECK)]
    assert selection.status == "fail" and "non-finite" in selection.message


def test_a_forced_model_does_not_fall_back(data, monkeypatch):
    monkeypatch.setattr(
        BGNBD, "probability_alive", lambda params, x, tx, T: np.full(np.shape(x), np.nan)
    )
    run = fit_and_predict(*data, selection="bgnbd")
    assert run.selected_model is None and not run.data_sufficient


def test_forced_selection_reason(data):
    run = fit_and_predict(*data, models=("pareto_nbd",), selection="bgnbd")
    assert run.selected_model == "bgnbd"
    assert run.selection_reason == "forced by the model selection setting"
    pareto = next(f for f in run.fits if f.model == "pareto_nbd")
    assert pareto.selection_reason == "not selected: bgnbd is forced by the model selection setting"


def test_unknown_selection_is_refused(data):
    with pytest.raises(ValueError, match="'holdout', 'bic' or one of"):
        fit_and_predict(*data, selection="aic")


def test_a_model_that_cannot_be_scored_ranks_after_the_scored_ones(data, calibration, monkeypatch):
    actual = _predicted(PARETO_NBD, calibration)  # pareto_nbd would win the holdout ...
    monkeypatch.setattr(  # ... but its holdout predictions are not finite
        PARETO_NBD,
        "expected_purchases",
        lambda params, x, tx, T, *, horizon_days: np.full(np.shape(x), np.nan),
    )
    run = fit_and_predict(*data, selection="holdout", holdout=_holdout(calibration, actual))
    assert run.selected_model == "bgnbd"
    rows = _rows(run)
    assert rows[("pareto_nbd", HOLDOUT_CHECK)].status == "warn"
    assert "holdout predictions are not finite" in rows[("pareto_nbd", HOLDOUT_CHECK)].message
    assert rows[("bgnbd", HOLDOUT_CHECK)].status == "ok"
    assert (run.selection_reason or "").startswith("lowest holdout MAE")
    pareto = next(f for f in run.fits if f.model == "pareto_nbd")
    assert pareto.selection_reason == (
        "not selected: not scored on the holdout (ranked after the scored models)"
    )
