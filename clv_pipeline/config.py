"""The one typed configuration of the pipeline, with sane defaults.

Every field can be set from the environment as ``CLV_<FIELD>`` (upper case), e.g.
``CLV_HOME=/srv/clv``, ``CLV_TIMEZONE=Europe/Berlin``, ``CLV_HORIZON_DAYS=730``,
``CLV_COLUMN_MAP="order_ts=occurred_at,cust=customer_id"``, ``CLV_MODELS=bgnbd,pareto_nbd``.
Secrets never live here; later sources read credentials from their own env vars.
"""

from __future__ import annotations

import os
import typing
from datetime import date
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg
from pydantic import Field, field_validator

from clv_pipeline.paths import Layout, resolve_home
from clv_pipeline.segments.churn import DEFAULT_RISK_BANDS
from clv_pipeline.segments.tiers import DEFAULT_TIERS
from clv_pipeline.sources.base import LandingSource, TransactionSource
from clv_pipeline.validation.rules import ValidationRules

ENV_PREFIX = "CLV_"


class ClvConfig(dg.ConfigurableResource):
    """Settings shared by every asset and the CLI (Dagster resource key: ``clv``)."""

    home: str = Field(default="", description="Data home; empty = $CLV_HOME or ./data.")
    timezone: str = Field(
        default="UTC",
        description="Timezone of the daily partitions and of purchase-day boundaries.",
    )
    naive_timezone: str = Field(
        default="UTC", description="Timezone assumed for input timestamps without an offset."
    )
    start_date: str = Field(default="2020-01-01", description="First daily partition (YYYY-MM-DD).")
    source: Literal["landing", "s3", "postgres"] = Field(
        default="landing", description="Where raw_transactions pulls a day from (docs/sources.md)."
    )
    lookback_days: int = Field(
        default=0, ge=0, description="Also re-pull the previous N days on each run (late rows)."
    )
    s3_bucket: str = Field(default="", description="s3: bucket.")
    s3_prefix: str = Field(default="", description="s3: key prefix.")
    s3_pattern: str = Field(
        default="", description="s3: key template with {date}; empty = date= folders."
    )
    s3_endpoint_url: str = Field(default="", description="s3: endpoint of an S3-compatible store.")
    source_url_env: str = Field(
        default="CLV_SOURCE_URL", description="postgres: NAME of the env var with the URL."
    )
    source_table: str = Field(default="", description="postgres: table or schema.table.")
    source_query: str = Field(default="", description="postgres: SELECT with %(start)s/%(end)s.")
    source_timestamp_column: str = Field(default="", description="postgres: event-time column.")
    source_batch_size: int = Field(default=100_000, ge=1, description="postgres: rows per fetch.")
    column_map: dict[str, str] = Field(
        default_factory=dict, description="Input column renames, source name -> contract name."
    )
    non_revenue_statuses: list[str] = Field(
        default_factory=lambda: list(ValidationRules.non_revenue_statuses),
        description="`status` values (case-insensitive) whose rows never count as revenue.",
    )
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
    max_bad_row_share: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Fail the partition when more than this share of its rows is quarantined.",
    )
    on_empty_day: Literal["warn", "fail"] = Field(
        default="warn", description="A day with no rows: publish it empty with a warning, or fail."
    )
    churn_window_days: int = Field(
        default=180, ge=1, description="Days without a purchase after which a customer is churned."
    )
    max_lifespan_days: float = Field(
        default=3650.0, gt=0, description="Cap on the estimated customer lifespan (seed formula)."
    )
    value_tiers: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_TIERS),
        description="Value tiers by predicted-CLV rank: name -> upper cumulative share.",
    )
    risk_bands: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_RISK_BANDS),
        description="Churn risk bands: name -> upper churn probability.",
    )
    active_window_days: int = Field(
        default=90, ge=1, description="KPIs: a customer is active with a purchase in this window."
    )
    cost_to_serve_per_order: float = Field(
        default=0.0, ge=0, description="Unit economics: cost per order, subtracted from CLV."
    )
    clv_cac_benchmark: float = Field(default=3.0, gt=0, description="CLV:CAC flag threshold.")
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
        default=90, ge=7, description="model_backtest: days held out after the calibration period."
    )
    backtest_max_customers: int = Field(
        default=200_000,
        ge=0,
        description="model_backtest: customers scored at most (a deterministic hash sample; "
        "0 = all).",
    )
    horizon_days: float = Field(default=365.0, gt=0, description="Predictive CLV horizon (days).")
    discount_rate: float = Field(default=0.10, ge=0, description="Discount rate per period.")
    discount_period: Literal["annual", "monthly"] = "annual"
    gross_margin: float = Field(default=1.0, gt=0, le=1, description="Share of revenue kept.")
    models: list[str] = Field(default_factory=lambda: ["bgnbd", "pareto_nbd"])
    model_selection: str = Field(default="bic", description="'bic' or a model name to force.")
    penalizer: float = Field(default=0.0, ge=0, description="L2 penalty on model parameters.")
    min_customers: int = Field(default=50, ge=1)
    min_repeat_customers: int = Field(default=20, ge=1)

    @field_validator("timezone", "naive_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r} (use an IANA name like 'UTC')") from exc
        return value

    @field_validator("start_date")
    @classmethod
    def _iso_date(cls, value: str) -> str:
        date.fromisoformat(value)
        return value

    @property
    def layout(self) -> Layout:
        return Layout(resolve_home(self.home or None))

    def transaction_source(self) -> TransactionSource:
        """The configured source of raw transactions."""
        if self.source == "s3":
            from clv_pipeline.sources.object_store import ObjectStoreSource

            if not self.s3_bucket:
                raise ValueError("CLV_SOURCE=s3 needs CLV_S3_BUCKET")
            return ObjectStoreSource(
                bucket=self.s3_bucket,
                prefix=self.s3_prefix,
                pattern=self.s3_pattern or None,
                endpoint_url=self.s3_endpoint_url or None,
                column_map=self.column_map,
            )
        if self.source == "postgres":
            from clv_pipeline.sources.sql import SqlSource

            return SqlSource(
                url_env=self.source_url_env,
                table=self.source_table or None,
                query=self.source_query or None,
                timestamp_column=self.source_timestamp_column or None,
                column_map=self.column_map,
                batch_size=self.source_batch_size,
            )
        return LandingSource(self.layout, self.column_map)

    def validation_rules(self) -> ValidationRules:
        """The validation settings as the pure stage expects them."""
        return ValidationRules(
            timezone=self.timezone,
            naive_timezone=self.naive_timezone,
            amount_min=self.amount_min,
            amount_max=self.amount_max,
            currencies=tuple(c.upper() for c in self.currencies),
            known_statuses=tuple(s.lower() for s in self.known_statuses),
            non_revenue_statuses=tuple(s.lower() for s in self.non_revenue_statuses),
            max_bad_row_share=self.max_bad_row_share,
            on_empty_day=self.on_empty_day,
        )

    def model_options(self) -> dict[str, Any]:
        """Keyword options for :func:`clv_pipeline.models.fit_and_predict`."""
        return {
            "discount_rate": self.discount_rate,
            "discount_period": self.discount_period,
            "models": tuple(self.models),
            "selection": self.model_selection,
            "penalizer": self.penalizer,
            "min_customers": self.min_customers,
            "min_repeat_customers": self.min_repeat_customers,
        }

    @classmethod
    def from_env(
        cls, environ: typing.Mapping[str, str] | None = None, **overrides: Any
    ) -> ClvConfig:
        """Build the config from ``CLV_*`` variables; explicit ``overrides`` win.

        ``home`` is only taken from ``environ`` when one is passed: by default it stays empty and
        :attr:`layout` resolves ``$CLV_HOME`` when used, so a long-lived process (the Dagster
        code server, tests) follows the current environment.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            if name == "home" and environ is None:
                continue
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is None or raw == "":
                continue
            annotation = typing.get_origin(field.annotation)
            if annotation is dict:
                values[name] = parse_mapping(raw)
            elif annotation is list:
                values[name] = [item.strip() for item in raw.split(",") if item.strip()]
            else:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)


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
