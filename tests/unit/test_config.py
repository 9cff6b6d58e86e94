"""Config from the environment, instance file, and the committed data contract."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from clv_pipeline.config import ClvConfig, parse_mapping
from clv_pipeline.schema import render_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_from_env_parses_every_kind_of_field(tmp_path: Path) -> None:
    config = ClvConfig.from_env(
        {
            "CLV_HOME": str(tmp_path),
            "CLV_TIMEZONE": "Europe/Berlin",
            "CLV_HORIZON_DAYS": "730",
            "CLV_COLUMN_MAP": "order_ts=occurred_at, cust=customer_id",
            "CLV_MODELS": "bgnbd,mbgnbd",
            "CLV_GROSS_MARGIN": "0.4",
        }
    )
    assert config.layout.home == tmp_path.resolve()
    assert config.horizon_days == 730.0 and config.gross_margin == 0.4
    assert config.column_map == {"order_ts": "occurred_at", "cust": "customer_id"}
    assert config.model_options()["models"] == ("bgnbd", "mbgnbd")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CLV_TIMEZONE": "Mars/Olympus"}, "unknown timezone"),
        ({"CLV_GROSS_MARGIN": "1.5"}, "less than or equal to 1"),
        ({"CLV_START_DATE": "2024-13-01"}, "month must be in 1..12"),
        ({"CLV_HORIZON_DAYS": "soon"}, "valid number"),
    ],
)
def test_bad_settings_are_clear_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ClvConfig.from_env(env)


def test_parse_mapping_rejects_garbage() -> None:
    assert parse_mapping(["a=b", " c = d "]) == {"a": "b", "c": "d"}
    with pytest.raises(ValueError, match="source_name=contract_name"):
        parse_mapping("order_ts")


def test_default_home_is_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CLV_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert ClvConfig.from_env().layout.home == tmp_path / "data"


@pytest.mark.parametrize("name", ["dagster.yaml", "dagster.postgres.yaml"])
def test_packaged_instance_yaml_matches_repo_root(name: str) -> None:
    packaged = ROOT / "clv_pipeline" / "resources" / name
    assert packaged.read_text() == (ROOT / name).read_text()
    text = packaged.read_text()
    assert "telemetry:\n  enabled: false" in text and "run_retries:\n  enabled: true" in text


def test_data_contract_document_is_current() -> None:
    committed = (ROOT / "docs" / "data_contract.md").read_text()
    assert committed == render_markdown(), "run `clv docs` and commit docs/data_contract.md"
