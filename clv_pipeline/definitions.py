"""Dagster entry point (``workspace.yaml``, ``dg dev``, the daemon): the data home's definitions.

The data home is ``$CLV_HOME`` (default ``./data``); its settings come from ``clv.toml`` there,
overridden by ``CLV_*`` variables (see ``clv config``).
"""

from clv_pipeline.config import load_config
from clv_pipeline.defs import build_defs

defs = build_defs(load_config())
