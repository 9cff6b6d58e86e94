"""Resources: the typed pipeline config under the key ``clv`` (values from CLV_* env vars)."""

from clv_pipeline.config import ClvConfig


def build_resources() -> dict[str, object]:
    return {"clv": ClvConfig.from_env()}
