"""Settings: flag > CLV_* env > clv.toml > default, provenance, the file, instance files, contract."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from clv_pipeline.config import (
    SETTINGS,
    ConfigError,
    effective_settings,
    load_config,
    parse_mapping,
    render_settings_markdown,
    save_settings,
)
from clv_pipeline.schema import render_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_env_parses_every_kind_of_field(tmp_path: Path) -> None:
    config = load_config(
        tmp_path,
        environ={
            "CLV_TIMEZONE": "Europe/Berlin",
            "CLV_HORIZON_DAYS": "730",
            "CLV_COLUMN_MAP": "order_ts=occurred_at, cust=customer_id",
            "CLV_MODELS": "bgnbd,mbgnbd",
            "CLV_GROSS_MARGIN": "0.4",
            "CLV_VALUE_TIERS": "top=0.1,rest=1",
            "CLV_S3_BUCKET": "exports",
            "CLV_SOURCE_TABLE": "sales.orders",
        },
    )
    assert config.layout.home == tmp_path.resolve()
    assert config.timezone == "Europe/Berlin"
    assert config.models.horizon_days == 730.0 and config.models.gross_margin == 0.4
    assert config.source.column_map == {"order_ts": "occurred_at", "cust": "customer_id"}
    assert config.model_options()["models"] == ("bgnbd", "mbgnbd")
    assert config.segments.value_tiers == {"top": 0.1, "rest": 1.0}
    assert config.source.s3.bucket == "exports" and config.source.postgres.table == "sales.orders"
    assert config.origin("models.horizon_days") == "env CLV_HORIZON_DAYS"
    assert config.origin("models.penalizer") == "default"


def test_precedence_flag_env_file_default(tmp_path: Path) -> None:
    (tmp_path / "clv.toml").write_text(
        'start_date = 1997-01-01\ntimezone = "Europe/Paris"\n'
        "[models]\nhorizon_days = 100\npenalizer = 0.5\n"
        "[scale]\nstate_rebuild = 'auto'\n"
    )
    env = {"CLV_HORIZON_DAYS": "200", "CLV_STATE_REBUILD": "auto"}
    config = load_config(tmp_path, environ=env, overrides={"scale.state_rebuild": "full"})
    assert config.start_date == date(1997, 1, 1) and config.origin("start_date") == "clv.toml"
    assert config.timezone == "Europe/Paris"
    assert config.models.penalizer == 0.5 and config.origin("models.penalizer") == "clv.toml"
    assert config.models.horizon_days == 200 and config.origin("models.horizon_days").startswith(
        "env"
    )
    assert config.scale.state_rebuild == "full" and config.origin("scale.state_rebuild") == "flag"
    assert config.models.min_customers == 50 and config.origin("models.min_customers") == "default"
    shown = {s.path: (value, origin) for s, value, origin in effective_settings(config)}
    assert shown["models.horizon_days"] == (200.0, "env CLV_HORIZON_DAYS")
    assert shown["home"] == (tmp_path.resolve(), "flag")


def test_home_from_env_then_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert load_config(environ={"CLV_HOME": str(tmp_path)}).home == tmp_path.resolve()
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={})
    assert config.home == tmp_path / "data" and config.origin("home") == "default"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CLV_TIMEZONE": "Mars/Olympus"}, "timezone .*env CLV_TIMEZONE.*unknown timezone"),
        ({"CLV_GROSS_MARGIN": "1.5"}, "models.gross_margin.*less than or equal to 1"),
        ({"CLV_START_DATE": "2024-13-01"}, "start_date .*CLV_START_DATE"),
        ({"CLV_HORIZON_DAYS": "soon"}, "models.horizon_days.*valid number"),
        ({"CLV_COLUMN_MAP": "order_ts"}, "CLV_COLUMN_MAP.*source_name=contract_name"),
        ({"CLV_OWNERS": "data team"}, "operations.owners .*'data team'.*email.*team:<name>"),
        ({"CLV_OWNERS": "team:"}, "operations.owners .*'team:'"),
        ({"CLV_FRESHNESS_DEADLINE_HOUR": "1"}, "CLV_FRESHNESS_DEADLINE_HOUR.*from 3 to 23.*02:00"),
        ({"CLV_FRESHNESS_DEADLINE_HOUR": "24"}, "freshness_deadline_hour.*from 3 to 23"),
    ],
)
def test_bad_settings_name_the_setting_and_origin(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path, environ=env)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[models]\nslection = 'bic'\n", "unknown setting 'models.slection'"),
        ("horizon_days = 10\n", "did you mean 'models.horizon_days'"),
        ("[operations]\nalert_webhook_url = 'https://x'\n", "secret, set CLV_ALERT_WEBHOOK_URL"),
        ("start_date = \n", "not valid TOML"),
        ("[models]\ngross_margin = 2\n", "clv.toml: .*less than or equal to 1"),
    ],
)
def test_bad_settings_file_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "clv.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path, environ={})


def test_secrets_come_from_the_environment_only(tmp_path: Path) -> None:
    config = load_config(tmp_path, environ={"CLV_ALERT_WEBHOOK_URL": "https://hooks/x?token=s3"})
    assert config.operations.alert_webhook_url == "https://hooks/x?token=s3"
    shown = {s.path: value for s, value, _ in effective_settings(config)}
    assert "token" not in str(shown["operations.alert_webhook_url"])
    with pytest.raises(ConfigError, match="cannot be stored"):
        save_settings(tmp_path, {"operations.alert_webhook_url": "https://x"})


def test_owners_and_freshness_deadline_from_file_and_env(tmp_path: Path) -> None:
    assert load_config(tmp_path, environ={}).operations.owners == ["team:data"]
    (tmp_path / "clv.toml").write_text(
        "[operations]\nowners = ['team:growth', 'ana@example.com']\nfreshness_deadline_hour = 8\n"
    )
    config = load_config(tmp_path, environ={"CLV_FRESHNESS_DEADLINE_HOUR": "9"})
    assert config.operations.owners == ["team:growth", "ana@example.com"]
    assert config.operations.freshness_deadline_hour == 9
    assert config.origin("operations.owners") == "clv.toml"
    assert load_config(tmp_path, environ={"CLV_OWNERS": "bo@example.org"}).operations.owners == [
        "bo@example.org"
    ]


def test_save_settings_keeps_comments_validates_and_removes(tmp_path: Path) -> None:
    path = tmp_path / "clv.toml"
    path.write_text("# our shop\ntimezone = 'Europe/Berlin'  # stores close at 20:00\n")
    save_settings(tmp_path, {"start_date": date(1997, 1, 1), "models.horizon_days": 730})
    text = path.read_text()
    assert "# our shop" in text and "# stores close at 20:00" in text
    config = load_config(tmp_path, environ={})
    assert config.start_date == date(1997, 1, 1) and config.models.horizon_days == 730
    with pytest.raises(ConfigError, match="gross_margin"):
        save_settings(tmp_path, {"models.gross_margin": 3})
    assert load_config(tmp_path, environ={}).models.gross_margin == 1.0  # file untouched
    save_settings(tmp_path, {"models.horizon_days": None})
    assert load_config(tmp_path, environ={}).models.horizon_days == 365.0


def test_every_setting_has_a_unique_env_variable_and_a_description() -> None:
    envs = [s.env for s in SETTINGS.values()]
    assert len(envs) == len(set(envs))
    assert all(env.startswith("CLV_") for env in envs)
    assert [s.path for s in SETTINGS.values() if not s.description] == []
    # the variables documented before sections existed keep working
    for env in ("CLV_MODELS", "CLV_MODEL_SELECTION", "CLV_SOURCE", "CLV_S3_BUCKET"):
        assert env in envs
    for env in ("CLV_SOURCE_QUERY", "CLV_STATE_FULL_EVERY_DAYS", "CLV_NAIVE_TIMEZONE"):
        assert env in envs


def test_parse_mapping_rejects_garbage() -> None:
    assert parse_mapping(["a=b", " c = d "]) == {"a": "b", "c": "d"}
    with pytest.raises(ValueError, match="source_name=contract_name"):
        parse_mapping("order_ts")


@pytest.mark.parametrize("name", ["dagster.yaml", "dagster.postgres.yaml"])
def test_packaged_instance_yaml_matches_repo_root(name: str) -> None:
    packaged = ROOT / "clv_pipeline" / "resources" / name
    assert packaged.read_text() == (ROOT / name).read_text()
    text = packaged.read_text()
    assert "telemetry:\n  enabled: false" in text and "run_retries:\n  enabled: true" in text
    # no env variable is needed to load the instance: storage defaults to its DAGSTER_HOME
    assert "CLV_DAGSTER_STORAGE" not in text


def test_data_contract_document_is_current() -> None:
    committed = (ROOT / "docs" / "data_contract.md").read_text()
    assert committed == render_markdown(), "run `clv docs` and commit docs/data_contract.md"


def test_with_overrides_validates_and_marks_the_origin(tmp_path: Path) -> None:
    config = load_config(tmp_path, environ={"CLV_PENALIZER": "0.1"})
    full = config.with_overrides({"scale.state_rebuild": "full"})
    assert full.scale.state_rebuild == "full" and config.scale.state_rebuild == "auto"
    assert full.origin("scale.state_rebuild") == "flag"
    assert full.origin("models.penalizer") == "env CLV_PENALIZER"
    with pytest.raises(ConfigError, match="state_rebuild"):
        config.with_overrides({"scale.state_rebuild": "sometimes"})
    with pytest.raises(ConfigError, match="unknown"):
        config.with_overrides({"scale.rebuild": "full"})


def test_settings_document_is_current() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == render_settings_markdown(), (
        "run `clv docs` and commit docs/configuration.md"
    )


def test_the_documented_example_file_loads(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "clv.toml").write_text(example)
    config = load_config(tmp_path, environ={})
    assert (config.start_date, config.end_date) == (date(1997, 1, 1), date(1998, 6, 30))
    assert config.source.column_map["CustomerID"] == "customer_id"
    assert config.models.candidates == ["bgnbd", "pareto_nbd", "mbgnbd"]
    assert config.segments.value_tiers == {"platinum": 0.01, "gold": 0.05}


def test_model_selection_setting(tmp_path: Path) -> None:
    default = load_config(tmp_path, environ={})
    assert (
        default.models.selection == "holdout" and default.model_options()["selection"] == "holdout"
    )
    env = load_config(tmp_path, environ={"CLV_MODEL_SELECTION": "bic"})
    assert (
        env.models.selection == "bic"
        and env.origin("models.selection") == "env CLV_MODEL_SELECTION"
    )
    (tmp_path / "clv.toml").write_text("[models]\nselection = 'pareto_nbd'\n")
    assert load_config(tmp_path, environ={}).model_options()["selection"] == "pareto_nbd"
    flag = load_config(
        tmp_path, environ={"CLV_MODEL_SELECTION": "bic"}, overrides={"models.selection": "holdout"}
    )
    assert flag.models.selection == "holdout" and flag.origin("models.selection") == "flag"
    with pytest.raises(ConfigError, match="models.selection .*CLV_MODEL_SELECTION.*'holdout'"):
        load_config(tmp_path, environ={"CLV_MODEL_SELECTION": "aic"})
