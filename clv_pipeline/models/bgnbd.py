"""BG/NBD model (Fader, Hardie & Lee 2005, "Counting your customers the easy way").

Time unit: days, so ``alpha`` (scale of the Gamma purchase-rate distribution) is in days.
The likelihood (FHL 2005 eq. 6) and predictions (eq. 10, 13) are implemented once in
:class:`clv_pipeline.models.base.BetaGeometricFamily`; this module fixes the variant where
drop-out can only happen *after a repeat purchase*.

Module-level functions are bound methods of :data:`MODEL`, e.g.::

    from clv_pipeline.models import bgnbd
    fit = bgnbd.fit(frequency, recency, T)
    bgnbd.expected_purchases(fit.params, frequency, recency, T, horizon_days=90)
"""

from __future__ import annotations

from typing import ClassVar

from clv_pipeline.models.base import BetaGeometricFamily


class BetaGeoModel(BetaGeometricFamily):
    """BG/NBD: parameters ``r``, ``alpha`` (days), ``a``, ``b``."""

    name: ClassVar[str] = "bgnbd"
    _shift: ClassVar[int] = 0


MODEL = BetaGeoModel()
fit = MODEL.fit
log_likelihood = MODEL.log_likelihood
probability_alive = MODEL.probability_alive
expected_purchases = MODEL.expected_purchases
purchase_probability = MODEL.purchase_probability
expected_days_to_next_purchase = MODEL.expected_days_to_next_purchase

__all__ = [
    "MODEL",
    "BetaGeoModel",
    "expected_days_to_next_purchase",
    "expected_purchases",
    "fit",
    "log_likelihood",
    "probability_alive",
    "purchase_probability",
]
