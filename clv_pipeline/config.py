"""The settings of one data home: one typed, immutable object in sections, loaded once.

Where a setting comes from, highest first::

    command-line flag  >  CLV_* environment variable  >  $CLV_HOME/clv.toml  >  default

``clv.toml`` is the data home's own settings file (written by ``clv init``, ``clv import`` and
``clv demo``, read by every entry point: the CLI, ``dg dev`` / ``dagster dev``, the daemon, cron).
Its tables are the sections below::

    start_date = 2020-01-01          # first daily partition
    timezone = "UTC"                 # partition days and purchase-day boundaries
    [source]    kind, column_map, read options (delimiter, decimal_comma, encoding, date_format,
                day_first, amount, order_id), naive_timezone, lookback_days, [source.s3], ...
    [validation] amounts, currencies, statuses, max_bad_row_share, max_bad_rows, zero_amount, ...
    [models]    candidates, selection, horizon_days, discount_rate, gross_margin, ...
    [segments]  value_tiers, risk_bands, active_window_days, cost_to_serve_per_order, ...
    [operations] owners, freshness_deadline_hour, alert_format, alert_timeout_seconds; its
                secrets (alert webhook, Dagster PostgreSQL URL) come from the environment only
    [scale]     state_full_every_days, state_rebuild, backtest_holdout_days, ...
    [report]    currency (CLV_CURRENCY, e.g. EUR: written on every amount of the HTML report)

Every setting also has an environment variable, listed by ``clv config`` (``CLV_TIMEZONE``,
``CLV_HORIZON_DAYS``, ``CLV_COLUMN_MAP="order_ts=occurred_at,cust=customer_id"``,
``CLV_MODELS=bgnbd,pareto_nbd``, ...). Secrets (the alert webhook, the PostgreSQL URL of the Dagster
instance) are read from the environment only and are never written to ``clv.toml``.

Stages never see this object: :mod:`clv_pipeline.pipeline` hands them the plain values they need.
"""

from __future__ import annotations

import os
import re
import tomllib
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl
import tomlkit
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from clv_pipeline.errors import ClvError
from clv_pipeline.paths import DEFAULT_HOME, Layout, resolve_home
from clv_pipeline.segments.churn import DEFAULT_RISK_BANDS
from clv_pipeline.segments.tiers import DEFAULT_TIERS
from clv_pipeline.sources.shape import ReadOptions
from clv_pipeline.validation.rules import ValidationRules

ENV_PREFIX = "CLV_"
SETTINGS_FILE = "clv.toml"

Origin = str  # "default" | "clv.toml" | "env CLV_X" | "flag"
#: A Dagster owner: an email address (Dagster's own pattern) or ``team:<name>``.
OWNER = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,7}|team:\S+")
FIRST_DEADLINE_HOUR = 3  # the daily schedule runs at 02:00 (defs/jobs.py)


class ConfigError(ClvError):
    """A setting is invalid; the message names the setting, where it came from and the fix."""


class Section(BaseModel):
    """A group of settings; ``env_prefix`` + the field name (upper case) is its env variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    env_prefix: ClassVar[str] = ENV_PREFIX
    env_names: ClassVar[dict[str, str]] = {}  # field -> env variable when not prefix + FIELD
    secrets: ClassVar[frozenset[str]] = frozenset()  # env only: never read from / written to file

    @classmethod
    def env_name(cls, field: str) -> str:
        return cls.env_names.get(field, cls.env_prefix + field.upper())


class S3Settings(Section):
    env_prefix: ClassVar[str] = "CLV_S3_"

    bucket: str = Field(default="", description="Bucket holding the daily deliveries.")
    prefix: str = Field(default="", description="Key prefix.")
    pattern: str = Field(
        default="", description="Key template with {date}; empty = date=YYYY-MM-DD/ folders."
    )
    endpoint_url: str = Field(default="", description="Endpoint of an S3-compatible store.")


class PostgresSettings(Section):
    env_prefix: ClassVar[str] = "CLV_SOURCE_"

    url_env: str = Field(
        default="CLV_SOURCE_URL", description="NAME of the env variable holding the URL (secret)."
    )
    table: str = Field(default="", description="Table or schema.table.")
    query: str = Field(default="", description="SELECT with %(start)s / %(end)s.")
    timestamp_column: str = Field(default="", description="Event-time column of the table.")
    batch_size: int = Field(default=100_000, ge=1, description="Rows per fetch.")


class SourceSettings(Section):
    env_names: ClassVar[dict[str, str]] = {"kind": "CLV_SOURCE"}

    kind: Literal["landing", "s3", "postgres"] = Field(
        default="landing", description="Where raw_transactions pulls a day from (docs/sources.md)."
    )
    column_map: dict[str, str] = Field(
        default_factory=dict, description="Input column renames, source name -> contract name."
    )
    naive_timezone: str = Field(
        default="UTC", description="Timezone assumed for input timestamps without an offset."
    )
    lookback_days: int = Field(
        default=0, ge=0, description="Also re-pull the previous N days on each run (late rows)."
    )
    delimiter: str = Field(
        default=",", description="CSV field separator (one character; '\\t' for tabs)."
    )
    decimal_comma: bool = Field(
        default=False, description="Numbers are written 1.234,56 (comma decimals)."
    )
    encoding: str = Field(
        default="utf8", description="Text encoding of CSV files (utf8, latin-1, cp1252, ...)."
    )
    date_format: str = Field(
        default="",
        description="strftime format of occurred_at (e.g. %d-%m-%Y %H:%M), or 'unix' for epoch "
        "seconds; empty = ISO-8601.",
    )
    day_first: bool = Field(
        default=False, description="Dates are written day first (31/12/2010, 31.12.2010 10:03)."
    )
    amount: str = Field(
        default="",
        description="Expression of delivered columns giving amount, e.g. Quantity * UnitPrice.",
    )
    order_id: str = Field(
        default="",
        description="Column naming each line's order: one transaction per order (order lines).",
    )
    s3: S3Settings = Field(default_factory=S3Settings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)

    @field_validator("naive_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return known_timezone(value)

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str) -> str:
        ReadOptions(delimiter=value).separator  # noqa: B018 - raises when not one character
        return value

    @field_validator("amount")
    @classmethod
    def _expression(cls, value: str) -> str:
        if value:
            try:
                pl.sql_expr(value)
            except Exception as exc:  # polars' SQL parser raises several types
                raise ValueError(f"not an expression of columns: {exc}") from None
        return value


class ValidationSettings(Section):
    amount_min: float = Field(default=-1_000_000.0, description="Smallest accepted amount.")
    amount_max: float = Field(default=1_000_000.0, description="Largest accepted amount.")
    currencies: list[str] = Field(
        default_factory=list,
        description="Accepted currency codes; empty = any three-letter upper-case code.",
    )
    known_statuses: list[str] = Field(
        default_factory=lambda: list(ValidationRules.known_statuses),
        description="Accepted `status` values (case-insensitive); others are quarantined.",
    )
    non_revenue_statuses: list[str] = Field(
        default_factory=lambda: list(ValidationRules.non_revenue_statuses),
        description="`status` values (case-insensitive) whose rows never count as revenue.",
    )
    max_bad_row_share: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="A day fails when more than this share of its rows is quarantined "
        "(and more than max_bad_rows).",
    )
    max_bad_rows: int = Field(
        default=10,
        ge=0,
        description="A day fails only when more than this many of its rows are quarantined "
        "(and more than max_bad_row_share): small days are not failed by one bad row.",
    )
    zero_amount: Literal["purchase", "ignore"] = Field(
        default="purchase",
        description="A zero-amount order (free items, voucher): a purchase with zero revenue, "
        "or ignored.",
    )
    on_empty_day: Literal["warn", "fail"] = Field(
        default="warn", description="A day with no rows: publish it empty with a warning, or fail."
    )


class ModelSettings(Section):
    env_names: ClassVar[dict[str, str]] = {
        "candidates": "CLV_MODELS",
        "selection": "CLV_MODEL_SELECTION",
    }

    candidates: list[str] = Field(
        default_factory=lambda: ["bgnbd", "pareto_nbd"],
        description="Transaction models fitted: bgnbd, pareto_nbd, mbgnbd.",
    )
    selection: Literal["holdout", "bic", "bgnbd", "pareto_nbd", "mbgnbd"] = Field(
        default="holdout",
        description="How the purchase model is chosen among the candidates that pass their "
        "diagnostics: 'holdout' = lowest error predicting the last backtest_holdout_days "
        "(fitted on the history before them; BIC when the history is shorter than twice the "
        "holdout), 'bic' = lowest BIC, or a model name to force it.",
    )
    penalizer: float = Field(default=0.0, ge=0, description="L2 penalty on model parameters.")
    min_customers: int = Field(default=50, ge=1, description="Fewer customers: no model fit.")
    min_repeat_customers: int = Field(
        default=20, ge=1, description="Fewer repeat customers: no model fit."
    )
    horizon_days: float = Field(default=365.0, gt=0, description="Predictive CLV horizon (days).")
    discount_rate: float = Field(default=0.10, ge=0, description="Discount rate per period.")
    discount_period: Literal["annual", "monthly"] = Field(
        default="annual", description="Period of discount_rate."
    )
    gross_margin: float = Field(default=1.0, gt=0, le=1, description="Share of revenue kept.")
    churn_window_days: int = Field(
        default=180,
        ge=1,
        description="Unused since 2026-12 (kept so older clv.toml files load): churn is "
        "measured per segments.active_window_days period (docs/metrics.md).",
    )
    max_lifespan_days: float = Field(
        default=3650.0,
        gt=0,
        description="Unused since 2026-12 (kept so older clv.toml files load): the formula CLV "
        "is cut at models.horizon_days.",
    )
    fit_by: str = Field(
        default="",
        description="Customer attribute whose groups get their own model fit: 'first_channel' "
        "(channel of the first purchase), or a column of the landing/customers files (e.g. "
        "acquisition_channel). A group with too few repeat customers is valued with the fit "
        "over all customers. Empty = one fit for everyone.",
    )
    fit_by_min_repeat_customers: int = Field(
        default=100,
        ge=1,
        description="With fit_by: fewer repeat customers in a group = no fit of its own (pooled "
        "with everyone).",
    )


class SegmentSettings(Section):
    value_tiers: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_TIERS),
        description="Value tiers by predicted-CLV rank: name -> upper cumulative share.",
    )
    risk_bands: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_RISK_BANDS),
        description="Churn risk bands: name -> upper churn probability.",
    )
    active_window_days: int = Field(
        default=90,
        ge=1,
        description="The churn period W (days): a customer is active with a purchase in the "
        "last W days; period churn, retention, ARPU and the formula CLVs use it "
        "(docs/metrics.md).",
    )
    cost_to_serve_per_order: float = Field(
        default=0.0, ge=0, description="Unit economics: cost per order, subtracted from CLV."
    )
    clv_cac_benchmark: float = Field(default=3.0, gt=0, description="CLV:CAC flag threshold.")


class OperationsSettings(Section):
    secrets: ClassVar[frozenset[str]] = frozenset({"alert_webhook_url", "dagster_postgres_url"})

    alert_webhook_url: str = Field(
        default="",
        description="POST every alert (failed run, day not published by the deadline) here "
        "(secret: env only).",
    )
    dagster_postgres_url: str = Field(
        default="", description="PostgreSQL run storage for Dagster (secret: env only)."
    )
    owners: list[str] = Field(
        default_factory=lambda: ["team:data"],
        description="Owners of every asset in Dagster: email addresses or teams (team:data).",
    )
    alert_format: Literal["json", "slack", "teams"] = Field(
        default="json",
        description="Body POSTed to the alert webhook: 'json' = the whole alert (its `text` "
        "field included), 'slack' = {\"text\": ...} for a Slack incoming webhook, 'teams' = a "
        "MessageCard for a Microsoft Teams incoming webhook.",
    )
    alert_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=120,
        description="Seconds the alert webhook gets to answer; slower or down, the delivery is "
        "recorded as failed in alerts/alerts.jsonl and the run goes on.",
    )
    freshness_deadline_hour: int = Field(
        default=6,
        description="Hour (timezone of the partitions) by which the day that just ended must be "
        "published (customer_clv, clv_snapshot, report); later, their freshness checks fail and "
        "alert. 3..23: after the 02:00 schedule.",
    )

    @field_validator("owners")
    @classmethod
    def _dagster_owners(cls, value: list[str]) -> list[str]:
        bad = [owner for owner in value if not OWNER.fullmatch(owner)]
        if bad:
            raise ValueError(
                f"owner(s) {', '.join(map(repr, bad))}: each owner must be an email address "
                "(jane@example.com) or a team written team:<name> (team:data)"
            )
        return value

    @field_validator("freshness_deadline_hour")
    @classmethod
    def _after_the_schedule(cls, value: int) -> int:
        if not FIRST_DEADLINE_HOUR <= value <= 23:
            raise ValueError(
                f"{value} is not an hour from {FIRST_DEADLINE_HOUR} to 23: the daily schedule "
                f"runs at 02:00, so the day's snapshot cannot be due before "
                f"{FIRST_DEADLINE_HOUR:02d}:00"
            )
        return value


class ScaleSettings(Section):
    secrets: ClassVar[frozenset[str]] = frozenset({"celery_broker"})
    state_full_every_days: int = Field(
        default=28,
        ge=0,
        description="customer_state: recompute from the whole history every N days (0 = never).",
    )
    state_rebuild: Literal["auto", "full"] = Field(
        default="auto",
        description="customer_state: 'auto' = incremental when possible; 'full' = recompute.",
    )
    backtest_holdout_days: int = Field(
        default=90,
        ge=7,
        description="model_backtest and models.selection = holdout: days held out after the "
        "calibration period.",
    )
    backtest_max_customers: int = Field(
        default=200_000,
        ge=0,
        description="model_backtest and models.selection = holdout: customers scored at most "
        "(deterministic hash sample; 0 = all).",
    )
    shards: int = Field(
        default=1,
        ge=1,
        le=256,
        description="Per-customer work (state, features, valuation, segments, churn, cohorts) "
        "split into N shards by a stable hash of customer_id, each its own Dagster step; the "
        "fit, the ranks and the cohort sums reduce over the shards (docs/scaling.md).",
    )
    executor: Literal["in_process", "multiprocess", "celery", "k8s"] = Field(
        default="in_process",
        description="Dagster executor of the jobs: in_process (one process), multiprocess "
        "(a process per step), celery (the `celery` extra + a broker), k8s (the `k8s` extra).",
    )
    max_concurrent: int = Field(
        default=0,
        ge=0,
        description="multiprocess executor: steps at once (0 = the machine's cores).",
    )
    celery_broker: str = Field(
        default="",
        description="celery executor: the broker URL, e.g. redis://host:6379/0 (secret: env only; "
        "empty = Celery's default, a local RabbitMQ).",
    )


class ReportSettings(Section):
    currency: str = Field(
        default="",
        description="ISO-4217 code (e.g. EUR) written on every amount of the HTML report; empty "
        "= the only code of validation.currencies when it lists one, else amounts are labelled "
        "'currency units'.",
    )

    @field_validator("currency")
    @classmethod
    def _currency_code(cls, value: str) -> str:
        code = value.strip().upper()
        if code and not (len(code) == 3 and code.isascii() and code.isalpha()):
            raise ValueError(f"{value!r} is not a three-letter ISO-4217 code such as EUR or USD")
        return code


class ClvConfig(Section):
    """Every setting of one data home. Build it with :func:`load_config`."""

    home: Path = Field(default_factory=resolve_home, description="The data home.")
    start_date: date = Field(default=date(2020, 1, 1), description="First daily partition.")
    end_date: date | None = Field(
        default=None,
        description="Last daily partition of a closed history; empty = yesterday (daily runs).",
    )
    timezone: str = Field(
        default="UTC", description="Timezone of the daily partitions and of purchase-day bounds."
    )
    source: SourceSettings = Field(default_factory=SourceSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    segments: SegmentSettings = Field(default_factory=SegmentSettings)
    operations: OperationsSettings = Field(default_factory=OperationsSettings)
    scale: ScaleSettings = Field(default_factory=ScaleSettings)
    report: ReportSettings = Field(default_factory=ReportSettings)

    _origins: dict[str, Origin] = PrivateAttr(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return known_timezone(value)

    @property
    def layout(self) -> Layout:
        return Layout(self.home)

    def origin(self, path: str) -> Origin:
        """Where the setting at dotted ``path`` (e.g. ``models.horizon_days``) came from."""
        return self._origins.get(path, "default")

    def with_overrides(self, overrides: Mapping[str, Any]) -> ClvConfig:
        """A copy with ``{dotted path: value}`` set (validated; their origin becomes "flag")."""
        values = dict(_flatten(self.model_dump()))
        unknown = set(overrides) - set(SETTINGS)
        if unknown:
            raise ConfigError(f"unknown setting(s) {sorted(unknown)}")
        values.update(overrides)
        origins = {**self._origins, **dict.fromkeys(overrides, "flag")}
        return _validated(values, origins, self.layout.settings)

    def read_options(self) -> ReadOptions:
        """How every delivery of this data home is read (:mod:`clv_pipeline.sources.shape`)."""
        s = self.source
        return ReadOptions(
            column_map=dict(s.column_map),
            delimiter=s.delimiter,
            decimal_comma=s.decimal_comma,
            encoding=s.encoding,
            date_format=s.date_format,
            day_first=s.day_first,
            amount=s.amount,
            order_id=s.order_id,
            naive_timezone=s.naive_timezone,
            timezone=self.timezone,
        )

    def validation_rules(self) -> ValidationRules:
        """The validation settings as the pure stage expects them."""
        v = self.validation
        return ValidationRules(
            timezone=self.timezone,
            naive_timezone=self.source.naive_timezone,
            amount_min=v.amount_min,
            amount_max=v.amount_max,
            currencies=tuple(c.upper() for c in v.currencies),
            known_statuses=tuple(s.lower() for s in v.known_statuses),
            non_revenue_statuses=tuple(s.lower() for s in v.non_revenue_statuses),
            max_bad_row_share=v.max_bad_row_share,
            max_bad_rows=v.max_bad_rows,
            zero_amount=v.zero_amount,
            on_empty_day=v.on_empty_day,
        )

    def model_options(self) -> dict[str, Any]:
        """Keyword options for :func:`clv_pipeline.models.fit_and_predict`."""
        m = self.models
        return {
            "discount_rate": m.discount_rate,
            "discount_period": m.discount_period,
            "models": tuple(m.candidates),
            "selection": m.selection,
            "penalizer": m.penalizer,
            "min_customers": m.min_customers,
            "min_repeat_customers": m.min_repeat_customers,
        }

    def report_currency(self) -> str:
        """The code the report writes on amounts: ``report.currency``, else the only code of
        ``validation.currencies``, else "" (amounts labelled "currency units")."""
        if self.report.currency:
            return self.report.currency
        codes = {code.upper() for code in self.validation.currencies}
        return codes.pop() if len(codes) == 1 else ""


def known_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {value!r} (use an IANA name like 'UTC')") from exc
    return value


# ---------------------------------------------------------------------------------------------
# the settings tree: every leaf with its dotted path, env variable and description


@dataclass(frozen=True)
class Setting:
    path: str  # dotted, e.g. "models.horizon_days"
    env: str
    description: str
    secret: bool
    annotation: Any


def settings_tree(model: type[Section] = ClvConfig, prefix: str = "") -> Iterator[Setting]:
    """Every leaf setting of ``model`` (depth first, in declaration order)."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, Section):
            yield from settings_tree(annotation, f"{prefix}{name}.")
            continue
        yield Setting(
            path=prefix + name,
            env=model.env_name(name),
            description=field.description or "",
            secret=name in model.secrets,
            annotation=annotation,
        )


SETTINGS: dict[str, Setting] = {s.path: s for s in settings_tree()}


def parse_text(setting: Setting, raw: str) -> Any:
    """A setting written as text (env variable, ``clv init --set``): lists ``a,b``, mappings
    ``a=b,c=d``, anything else as is (validated by the model)."""
    origin = typing.get_origin(setting.annotation)
    if origin is dict:
        return parse_mapping(raw)
    if origin is list:
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        path = prefix + key
        if isinstance(value, Mapping) and path not in SETTINGS:
            yield from _flatten(value, path + ".")
        else:
            yield path, value


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        *parents, leaf = path.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def settings_path(home: str | os.PathLike[str] | None = None) -> Path:
    return resolve_home(home) / SETTINGS_FILE


def read_settings_file(path: Path) -> dict[str, Any]:
    """The flat ``{dotted path: value}`` of a ``clv.toml``; unknown keys and secrets are errors."""
    if not path.is_file():
        return {}
    try:
        tree = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix or delete the file") from None
    flat = dict(_flatten(tree))
    for key in flat:
        setting = SETTINGS.get(key)
        if setting is None:
            close = [p for p in SETTINGS if p.rsplit(".", 1)[-1] == key.rsplit(".", 1)[-1]]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{path}: unknown setting {key!r}{hint}; `clv config` lists every setting"
            )
        if setting.secret or key == "home":
            raise ConfigError(
                f"{path}: {key!r} does not belong in the file"
                + (
                    f"; it is a secret, set {setting.env} in the environment"
                    if setting.secret
                    else ""
                )
            )
    return flat


def load_config(
    home: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ClvConfig:
    """The effective settings of the data home ``home`` (default ``$CLV_HOME`` or ``./data``).

    ``overrides`` are command-line flags, as ``{dotted path: value}``; ``None`` values are ignored.
    ``environ`` defaults to ``os.environ`` (read now, never at import time).
    """
    env = os.environ if environ is None else environ
    root = resolve_home(home if home not in (None, "") else env.get("CLV_HOME") or DEFAULT_HOME)
    file = root / SETTINGS_FILE
    values: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    for key, value in read_settings_file(file).items():
        values[key], origins[key] = value, SETTINGS_FILE
    for setting in SETTINGS.values():
        if setting.path == "home":
            continue
        raw = env.get(setting.env)
        if raw is not None and raw != "":
            try:
                values[setting.path] = parse_text(setting, raw)
            except ValueError as exc:
                raise ConfigError(f"{setting.env}={raw!r}: {exc}") from None
            origins[setting.path] = f"env {setting.env}"
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in SETTINGS:
            raise ConfigError(f"unknown setting {key!r}")
        values[key], origins[key] = value, "flag"
    values["home"] = root
    origins["home"] = (
        "flag" if home not in (None, "") else ("env CLV_HOME" if env.get("CLV_HOME") else "default")
    )
    return _validated(values, origins, file)


def _validated(values: Mapping[str, Any], origins: Mapping[str, Origin], file: Path) -> ClvConfig:
    """The config of ``{dotted path: value}``; a validation error names each setting, where it
    came from (``origins``, ``file`` for the settings file) and what is wrong."""
    try:
        config = ClvConfig.model_validate(_nest(values))
    except ValidationError as exc:
        raise ConfigError(_explain(exc, origins, file)) from None
    config._origins.update(origins)
    return config


def _explain(exc: ValidationError, origins: Mapping[str, Origin], file: Path) -> str:
    lines = []
    for error in exc.errors():
        path = ".".join(str(p) for p in error["loc"])
        setting = SETTINGS.get(path)
        origin = origins.get(path, "default")
        where = {"flag": "command-line flag", SETTINGS_FILE: str(file)}.get(origin, origin)
        env = f" (env {setting.env})" if setting else ""
        lines.append(f"setting {path}{env} from {where}: {error['msg']}")
    return "invalid settings: " + "; ".join(lines)


def effective_settings(config: ClvConfig) -> list[tuple[Setting, Any, Origin]]:
    """Every setting with its effective value (secrets masked) and where it came from."""
    out = []
    for setting in SETTINGS.values():
        value: Any = config
        for part in setting.path.split("."):
            value = getattr(value, part)
        if setting.secret and value:
            value = "*** (set)"
        out.append(
            (setting, value, "flag" if setting.path == "home" else config.origin(setting.path))
        )
    return out


def save_settings(home: str | os.PathLike[str] | None, updates: Mapping[str, Any]) -> Path:
    """Set ``{dotted path: value}`` in the data home's ``clv.toml`` (comments and order kept).

    ``None`` removes a setting (back to its default). The values are validated first; the file is
    replaced atomically.
    """
    path = settings_path(home)
    for key in updates:
        setting = SETTINGS.get(key)
        if setting is None or setting.secret or key == "home":
            raise ConfigError(f"{key!r} cannot be stored in {SETTINGS_FILE}")
    current = read_settings_file(path)
    merged = {**current, **{k: v for k, v in updates.items() if v is not None}}
    for key, value in updates.items():
        if value is None:
            merged.pop(key, None)
    _validated({**merged, "home": path.parent}, dict.fromkeys(merged, "flag"), path)
    document = tomlkit.parse(path.read_text()) if path.is_file() else _new_document()
    for key, value in updates.items():
        *parents, leaf = key.split(".")
        node: Any = document
        for part in parents:
            if part not in node:
                node[part] = tomlkit.table()
            node = node[part]
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(tomlkit.dumps(document))
    os.replace(temp, path)
    return path


def _new_document() -> tomlkit.TOMLDocument:
    document = tomlkit.document()
    document.add(tomlkit.comment("Settings of this CLV data home (see `clv config`)."))
    document.add(
        tomlkit.comment("Precedence: command-line flag > CLV_* env variable > this file > default.")
    )
    document.add(tomlkit.comment("Secrets (webhook, database URLs) go in the environment only."))
    return document


def format_value(value: Any) -> str:
    """A setting's value as it is written in a CLV_* variable (``a,b``; ``a=b,c=d``)."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def render_settings_markdown() -> str:
    """``docs/configuration.md``: every setting, its env variable, default and meaning."""
    lines = [
        "# Configuration",
        "",
        "<!-- generated by `clv docs` from clv_pipeline/config.py; a test fails if it drifts -->",
        "",
        "Each data home keeps its settings in `$CLV_HOME/clv.toml`. `clv init` creates it;",
        "`clv import` records the column mapping and moves the partition bounds to the imported",
        "days; `clv demo` sets the demo's days. Every entry point reads it: the CLI, `dg dev` /",
        "`dagster dev`, the daemon, cron. `clv config` prints the effective value of every setting",
        "and where it came from.",
        "",
        "**Precedence:** command-line flag > `CLV_*` environment variable > `clv.toml` > default.",
        "Secrets (marked below) come from the environment only and are refused in the file.",
        "",
        "```toml",
        "# $CLV_HOME/clv.toml",
        "start_date = 1997-01-01",
        "end_date = 1998-06-30          # a closed history; leave out for daily runs",
        'timezone = "Europe/Berlin"',
        "",
        "[source]",
        'kind = "landing"',
        'column_map = { InvoiceDate = "occurred_at", CustomerID = "customer_id" }',
        "",
        "[models]",
        "horizon_days = 730",
        'candidates = ["bgnbd", "pareto_nbd", "mbgnbd"]',
        "",
        "[segments.value_tiers]",
        "platinum = 0.01",
        "gold = 0.05",
        "```",
        "",
        "| setting (`clv.toml`) | env variable | default | meaning |",
        "|---|---|---|---|",
    ]
    defaults = {s.path: value for s, value, _ in effective_settings(ClvConfig())}
    for setting in SETTINGS.values():
        shown = format_value(defaults[setting.path])
        default = "`./data`" if setting.path == "home" else (f"`{shown}`" if shown else "(empty)")
        meaning = setting.description + (" **Secret: environment only.**" if setting.secret else "")
        if setting.path == "home":
            meaning = "The data home (`--home` flag or env only; not in the file)."
        lines.append(f"| `{setting.path}` | `{setting.env}` | {default} | {meaning} |")
    lines += [
        "",
        "Lists are comma-separated in env variables (`CLV_MODELS=bgnbd,pareto_nbd`), mappings are",
        "`a=b,c=d` (`CLV_COLUMN_MAP=order_ts=occurred_at,cust=customer_id`). Days are calendar days",
        "in `timezone`. `clv init --set PATH=VALUE` writes any setting (`PATH=none` removes it).",
        "",
    ]
    return "\n".join(lines)


def parse_mapping(text: str | typing.Iterable[str]) -> dict[str, str]:
    """Parse ``"a=b,c=d"`` (or an iterable of ``"a=b"``) into ``{"a": "b", "c": "d"}``."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: dict[str, str] = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        source, sep, target = item.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise ValueError(f"column mapping {item!r} must look like source_name=contract_name")
        out[source.strip()] = target.strip()
    return out


def yesterday(timezone: str) -> date:
    """The day before today in ``timezone`` (the default partition of `clv run`)."""
    return datetime.now(ZoneInfo(timezone)).date() - timedelta(days=1)
