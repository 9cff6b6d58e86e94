r"""MBG/NBD model (Batislam, Denizel & Filiztekin 2007).

Identical to BG/NBD except that a customer may also drop out at time 0, right after the
first purchase, so customers with no repeat purchase are not assumed alive: the
drop-out term is present for every customer and the Beta posterior uses ``b + x + 1``
(Batislam et al. 2007 eq. 5 for the likelihood, eq. 8 for the conditional expectation).
The shared beta-geometric implementation is
:class:`clv_pipeline.models.bgnbd.BetaGeometricFamily`; :class:`ModifiedBetaGeoModel`
overrides what differs: the shift :math:`\sigma = 1` and the drop-out indicator
:math:`\delta = 1`. Time unit: days (``alpha`` in days).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from clv_pipeline.models.base import FloatArray
from clv_pipeline.models.bgnbd import BetaGeometricFamily


class ModifiedBetaGeoModel(BetaGeometricFamily):
    """MBG/NBD: parameters ``r``, ``alpha`` (days), ``a``, ``b``."""

    name: ClassVar[str] = "mbgnbd"
    _shift: ClassVar[int] = 1

    def _alive_weight(self, x: FloatArray) -> NDArray[np.bool_]:
        """:math:`\\delta = 1`: every customer, also with ``x = 0``, may have dropped out
        after the last purchase (Batislam et al. 2007 eq. 5)."""
        return np.ones(x.shape, dtype=bool)


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
