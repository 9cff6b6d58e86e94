"""Probabilistic CLV models (time unit: days).

* :mod:`~clv_pipeline.models.bgnbd` — BG/NBD (Fader, Hardie & Lee 2005)
* :mod:`~clv_pipeline.models.pareto_nbd` — Pareto/NBD (Schmittlein et al. 1987)
* :mod:`~clv_pipeline.models.mbgnbd` — MBG/NBD (Batislam et al. 2007)
* :mod:`~clv_pipeline.models.gamma_gamma` — Gamma-Gamma spend (Fader, Hardie & Lee 2005)
* :mod:`~clv_pipeline.models.clv` — discounted CLV and :func:`fit_and_predict`

Only numpy and scipy are used at run time. See ``docs/models.md``.
"""

from clv_pipeline.models.base import FitResult, Patterns, TransactionModel
from clv_pipeline.models.clv import (
    DAYS_PER_MONTH,
    DAYS_PER_YEAR,
    TRANSACTION_MODELS,
    ModelRun,
    discount_schedule,
    discounted_expected_purchases,
    fit_and_predict,
    predicted_clv,
)

__all__ = [
    "DAYS_PER_MONTH",
    "DAYS_PER_YEAR",
    "TRANSACTION_MODELS",
    "FitResult",
    "ModelRun",
    "Patterns",
    "TransactionModel",
    "discount_schedule",
    "discounted_expected_purchases",
    "fit_and_predict",
    "predicted_clv",
]
