"""Fit diagnostics in plain language: the rows of the ``model_diagnostics`` table.

Each :class:`Diagnostic` is one check of one model (or of the data, ``model = "all"``) with a
status ``ok | warn | fail``, the measured value, the threshold it was compared with and a
message a marketer can read. Check names are the constants below; ``docs/models.md`` explains
them. :func:`fit_and_predict <clv_pipeline.models.fit_and_predict>` collects them in
:attr:`ModelRun.diagnostics <clv_pipeline.models.ModelRun.diagnostics>`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from clv_pipeline.models.base import FitResult
from clv_pipeline.models.information import DEGENERATE_DROPOUT

Status = Literal["ok", "warn", "fail"]
STATUSES: tuple[Status, ...] = ("ok", "warn", "fail")

#: ``model`` of the rows about the data and about the choice between models.
ALL_MODELS = "all"

# checks of the data (model "all")
CUSTOMERS_CHECK = "customers"
REPEAT_CUSTOMERS_CHECK = "repeat_customers"
SELECTION_CHECK = "selected_model"
#: with ``models.fit_by``: whether a group was fitted on its own or pooled with everyone
GROUP_FIT_CHECK = "group_fit"
# checks of each fit
OPTIMIZER_CHECK = "optimizer_converged"
BOUNDS_CHECK = "parameters_at_bounds"
HESSIAN_CHECK = "hessian_positive_definite"
CONDITION_CHECK = "hessian_condition_number"
UNCERTAINTY_CHECK = "parameter_uncertainty"
DROPOUT_CHECK = "dropout_degenerate"
PREDICTIONS_CHECK = "predictions_finite"
HOLDOUT_CHECK = "holdout_error"
SPEND_CORRELATION_CHECK = "spend_frequency_correlation"

#: Fewer repeat customers than this (but enough to fit): a warning, estimates are noisy.
REPEAT_CUSTOMERS_WARN = 100
#: Condition number of the log-parameter Hessian above which a warning is raised.
CONDITION_WARN = 1e6
#: Largest standard error relative to its parameter above which a warning is raised.
RELATIVE_SE_WARN = 1.0


@dataclasses.dataclass(frozen=True)
class Diagnostic:
    """One row of ``model_diagnostics`` (without its ``as_of``)."""

    model: str
    check: str
    status: Status
    value: float | None
    threshold: float | None
    message: str

    def row(self) -> dict[str, object]:
        value = self.value if self.value is not None and math.isfinite(self.value) else None
        return {
            "model": self.model,
            "check": self.check,
            "status": self.status,
            "value": value,
            "threshold": self.threshold,
            "message": self.message,
        }


def _g(value: float) -> str:
    """A number for a sentence: 3 significant digits, thousands separated."""
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.2g}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def data_diagnostics(
    n_customers: int, n_repeat: int, *, min_customers: int, min_repeat_customers: int
) -> list[Diagnostic]:
    """Enough customers, and enough repeat customers to tell purchase rates from dropout."""
    enough = n_customers >= max(min_customers, 1)
    customers = Diagnostic(
        ALL_MODELS,
        CUSTOMERS_CHECK,
        "ok" if enough else "fail",
        float(n_customers),
        float(min_customers),
        f"{n_customers:,} customers"
        + ("" if enough else f": fewer than {min_customers:,}, no model is fitted"),
    )
    need = max(min_repeat_customers, 1)
    if n_repeat < need:
        status: Status = "fail"
        tail = (
            f": fewer than {need:,}, no model is fitted (every customer bought once: nothing "
            "tells how often customers come back or when they leave)"
            if n_repeat == 0
            else f": fewer than {need:,}, no model is fitted"
        )
    elif n_repeat < REPEAT_CUSTOMERS_WARN:
        status, tail = (
            "warn",
            (f": fewer than {REPEAT_CUSTOMERS_WARN}, the fitted parameters are uncertain"),
        )
    else:
        status, tail = "ok", ""
    repeat = Diagnostic(
        ALL_MODELS,
        REPEAT_CUSTOMERS_CHECK,
        status,
        float(n_repeat),
        float(need if status == "fail" else REPEAT_CUSTOMERS_WARN),
        f"{n_repeat:,} of {n_customers:,} customers bought again{tail}",
    )
    return [customers, repeat]


def fit_diagnostics(fit: FitResult) -> list[Diagnostic]:
    """The checks of one fit: optimiser, bounds, Hessian, conditioning, parameter uncertainty
    and, for purchase models, degenerate dropout."""
    m = fit.model
    out = [
        Diagnostic(
            m,
            OPTIMIZER_CHECK,
            "ok" if fit.optimizer_converged else "fail",
            None,
            None,
            "the fit converged"
            if fit.optimizer_converged
            else f"the fit did not finish: {fit.message}",
        ),
        Diagnostic(
            m,
            BOUNDS_CHECK,
            "fail" if fit.at_bounds else "ok",
            float(len(fit.at_bounds)),
            0.0,
            f"{', '.join(fit.at_bounds)} stopped at the limit of the search (1e-9 or 1e9): "
            "the data do not pin them down"
            if fit.at_bounds
            else "no parameter at the limit of the search",
        ),
    ]
    finished = all(math.isfinite(v) for v in fit.params.values())
    if not finished:
        return out
    if fit.hessian_positive_definite is not None:  # None: not computed
        out.append(
            Diagnostic(
                m,
                HESSIAN_CHECK,
                "ok" if fit.hessian_positive_definite else "fail",
                None,
                None,
                "the likelihood has a clear peak at the fitted values"
                if fit.hessian_positive_definite
                else "the likelihood is flat (or not at a peak) at the fitted values: the "
                "parameters are not determined by the data and have no standard errors",
            )
        )
        if fit.hessian_positive_definite:
            cond = fit.condition_number
            ill = cond > CONDITION_WARN
            out.append(
                Diagnostic(
                    m,
                    CONDITION_CHECK,
                    "warn" if ill else "ok",
                    cond,
                    CONDITION_WARN,
                    f"condition number {_g(cond)}: "
                    + (
                        "some combinations of parameters barely change the fit, the estimates may "
                        "move a lot with a little more data"
                        if ill
                        else "the parameters are well separated by the data"
                    ),
                )
            )
            relative = {
                name: fit.std_errors.get(name, math.nan) / value
                for name, value in fit.params.items()
                if value > 0
            }
            worst = max(relative, key=lambda n: relative[n]) if relative else None
            if worst is not None and math.isfinite(relative[worst]):
                loose = relative[worst] > RELATIVE_SE_WARN
                out.append(
                    Diagnostic(
                        m,
                        UNCERTAINTY_CHECK,
                        "warn" if loose else "ok",
                        relative[worst],
                        RELATIVE_SE_WARN,
                        f"largest standard error {relative[worst]:.0%} of its parameter ({worst})"
                        + (": that parameter is poorly determined" if loose else ""),
                    )
                )
    if fit.dropout is not None:
        what = "chance of dropping out " + (
            "within a year" if m == "pareto_nbd" else "after a purchase"
        )
        out.append(
            Diagnostic(
                m,
                DROPOUT_CHECK,
                "warn" if fit.degenerate else "ok",
                fit.dropout,
                DEGENERATE_DROPOUT,
                f"dropout collapsed: the {what} is {_g(fit.dropout)} (below "
                f"{DEGENERATE_DROPOUT:g}), so the model rates nearly every customer alive "
                "(P(alive) ~ 1) however long they have been silent; its churn and P(alive) "
                "are meaningless"
                if fit.degenerate
                else f"{what} {_g(fit.dropout)}",
            )
        )
    return out


def predictions_diagnostic(model: str, n_bad: int, n: int) -> Diagnostic:
    """Every per-customer prediction of ``model`` finite (``n_bad`` of ``n`` are not)."""
    return Diagnostic(
        model,
        PREDICTIONS_CHECK,
        "fail" if n_bad else "ok",
        float(n_bad),
        0.0,
        f"{n_bad:,} of {n:,} customers got a non-finite prediction: the model was not used"
        if n_bad
        else f"finite predictions for all {n:,} customers",
    )


def holdout_diagnostic(
    model: str, mae: float | None, *, holdout_days: float, n: int, why: str = ""
) -> Diagnostic:
    """The holdout error a model was ranked by (or why it could not be scored)."""
    if mae is None:
        return Diagnostic(
            model,
            HOLDOUT_CHECK,
            "warn",
            None,
            None,
            f"not scored on the {holdout_days:g}-day holdout: {why}",
        )
    return Diagnostic(
        model,
        HOLDOUT_CHECK,
        "ok",
        mae,
        None,
        f"fitted before the last {holdout_days:g} days, it missed the purchases of those days "
        f"by {mae:.3f} per customer on average (MAE, {n:,} customers)",
    )


def spend_diagnostic(corr: float | None, limit: float) -> Diagnostic:
    """Gamma-Gamma's assumption: spend per purchase independent of purchase frequency."""
    if corr is None:
        return Diagnostic(
            "gamma_gamma",
            SPEND_CORRELATION_CHECK,
            "ok",
            None,
            limit,
            "correlation of purchase frequency and spend undefined (too few repeat customers "
            "or no variation)",
        )
    bad = abs(corr) > limit
    return Diagnostic(
        "gamma_gamma",
        SPEND_CORRELATION_CHECK,
        "warn" if bad else "ok",
        corr,
        limit,
        f"correlation of purchase frequency and spend per purchase {corr:.2f}"
        + (
            f" (beyond +/-{limit}): the spend model assumes they are unrelated, predicted "
            "spend may be biased"
            if bad
            else ""
        ),
    )


def selection_diagnostic(model: str | None, status: Status, reason: str) -> Diagnostic:
    """Which purchase model produced customer_clv, and why."""
    return Diagnostic(
        ALL_MODELS,
        SELECTION_CHECK,
        status,
        None,
        None,
        f"{model}: {reason}" if model else reason,
    )


__all__ = [
    "ALL_MODELS",
    "BOUNDS_CHECK",
    "CONDITION_CHECK",
    "CONDITION_WARN",
    "CUSTOMERS_CHECK",
    "DROPOUT_CHECK",
    "HESSIAN_CHECK",
    "HOLDOUT_CHECK",
    "OPTIMIZER_CHECK",
    "PREDICTIONS_CHECK",
    "RELATIVE_SE_WARN",
    "REPEAT_CUSTOMERS_CHECK",
    "REPEAT_CUSTOMERS_WARN",
    "SELECTION_CHECK",
    "SPEND_CORRELATION_CHECK",
    "STATUSES",
    "UNCERTAINTY_CHECK",
    "Diagnostic",
    "Status",
    "data_diagnostics",
    "fit_diagnostics",
    "holdout_diagnostic",
    "predictions_diagnostic",
    "selection_diagnostic",
    "spend_diagnostic",
]
