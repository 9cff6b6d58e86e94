"""Probabilistic CLV models (time unit: days).

* :mod:`~clv_pipeline.models.base` — shared interface: input checks, patterns,
  :class:`TransactionModel`, :class:`FitResult`
* :mod:`~clv_pipeline.models.numerics` — optimiser wrapper, root search, quadrature
* :mod:`~clv_pipeline.models.bgnbd` — BG/NBD (Fader, Hardie & Lee 2005) and the
  beta-geometric family
* :mod:`~clv_pipeline.models.mbgnbd` — MBG/NBD (Batislam et al. 2007)
* :mod:`~clv_pipeline.models.pareto_nbd` — Pareto/NBD (Schmittlein et al. 1987)
* :mod:`~clv_pipeline.models.gamma_gamma` — Gamma-Gamma spend (Fader, Hardie & Lee 2005)
* :mod:`~clv_pipeline.models.discount` — discounted CLV
* :mod:`~clv_pipeline.models.information` — observed information: standard errors,
  conditioning, degenerate dropout
* :mod:`~clv_pipeline.models.diagnostics` — the plain-language checks of every fit
* :mod:`~clv_pipeline.models.clv` — model selection (holdout error, BIC) and
  :func:`fit_and_predict`

Only numpy and scipy are used at run time. See ``docs/models.md``.
"""

from clv_pipeline.models.base import FitResult, Patterns, TransactionModel
from clv_pipeline.models.clv import (
    SELECTIONS,
    TRANSACTION_MODELS,
    Holdout,
    ModelRun,
    fit_and_predict,
)
from clv_pipeline.models.diagnostics import Diagnostic
from clv_pipeline.models.discount import (
    DAYS_PER_MONTH,
    DAYS_PER_YEAR,
    discount_schedule,
    discounted_expected_purchases,
    predicted_clv,
)

__all__ = [
    "DAYS_PER_MONTH",
    "DAYS_PER_YEAR",
    "SELECTIONS",
    "TRANSACTION_MODELS",
    "Diagnostic",
    "FitResult",
    "Holdout",
    "ModelRun",
    "Patterns",
    "TransactionModel",
    "discount_schedule",
    "discounted_expected_purchases",
    "fit_and_predict",
    "predicted_clv",
]
