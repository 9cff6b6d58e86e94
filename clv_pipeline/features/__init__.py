"""Per-customer features as of a snapshot date."""

from clv_pipeline.features.customers import compute_features

__all__ = ["compute_features"]
