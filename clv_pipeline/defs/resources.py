"""Resources: the data home's settings under the key ``clv`` (a plain, immutable object)."""

import dagster as dg

from clv_pipeline.config import ClvConfig

ClvSettings = dg.ResourceParam[ClvConfig]


def build_resources(config: ClvConfig) -> dict[str, object]:
    return {"clv": config}
