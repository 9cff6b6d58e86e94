"""MBG/NBD model (Batislam, Denizel & Filiztekin 2007).

Identical to BG/NBD except that a customer may also drop out at time 0, right after the
first purchase, so customers with no repeat purchase are not assumed alive: the
drop-out term is present for every customer and the Beta posterior uses ``b + x + 1``
(Batislam et al. 2007 eq. 5 for the likelihood, eq. 8 for the conditional expectation).
Shared implementation: :class:`clv_pipeline.models.base.BetaGeometricFamily`.
Time unit: days (``alpha`` in days).
"""

from __future__ import annotations

from typing import ClassVar

from clv_pipeline.models.base import BetaGeometricFamily


class ModifiedBetaGeoModel(BetaGeometricFamily):
    """MBG/NBD: parameters ``r``, ``alpha`` (days), ``a``, ``b``."""

    name: ClassVar[str] = "mbgnbd"
    _shift: ClassVar[int] = 1


MODEL = ModifiedBetaGeoModel()
fit = MODEL.fit
log_likelihood = MODEL.log_likelihood
probability_alive = MODEL.probability_alive
expected_purchases = MODEL.expected_purchases
purchase_probability = MODEL.purchase_probability
expected_days_to_next_purchase = MODEL.expected_days_to_next_purchase

__all__ = [
    "MODEL",
    "ModifiedBetaGeoModel",
    "expected_days_to_next_purchase",
    "expected_purchases",
    "fit",
    "log_likelihood",
    "probability_alive",
    "purchase_probability",
]
