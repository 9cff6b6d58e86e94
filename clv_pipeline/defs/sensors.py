"""Sensors: alerts for failed runs and late days, and the freshness checks between runs.

Both alerts are structured (asset, partition, error, the command that fixes it, a readable
``text``, host, data home, delivery) and go through the one alert writer,
:func:`clv_pipeline.runs.alerts.send_alert`: ``<home>/alerts/alerts.jsonl`` (a fallback file
outside a full data home) and the alert webhook, secrets redacted.
"""

import warnings

import dagster as dg

from clv_pipeline.config import ClvConfig
from clv_pipeline.runs.alerts import alert_late_days
from clv_pipeline.runs.recovery import alert_failure, reap_orphans

FRESHNESS_SENSOR = "clv_freshness_checks"
LATE_ALERT_SENSOR = "clv_late_alert"


def build_failure_sensor(config: ClvConfig) -> dg.SensorDefinition:
    """Alerts for runs that fail outside the CLI (schedule, UI); one alert per run, whoever
    notices the failure first (the CLI or this sensor)."""

    @dg.run_failure_sensor(
        name="clv_failure_alert",
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Appends <home>/alerts/alerts.jsonl (and POSTs to the alert webhook).",
    )
    def clv_failure_alert(context: dg.RunFailureSensorContext) -> None:
        alert_failure(context.instance, context.dagster_run, config)  # + the command to finish

    return clv_failure_alert


def build_freshness_sensors(
    config: ClvConfig, checks: list[dg.AssetChecksDefinition]
) -> list[dg.SensorDefinition]:
    """The sensor that runs the freshness ``checks`` once they can be overdue, and the sensor that
    alerts once per late day when they fail."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=".*build_sensor_for_freshness_checks.*",
            category=dg.SupersessionWarning,
        )
        evaluate = dg.build_sensor_for_freshness_checks(
            freshness_checks=checks,
            name=FRESHNESS_SENSOR,
            minimum_interval_seconds=300,
            default_status=dg.DefaultSensorStatus.RUNNING,
        )
    keys = [key for definition in checks for key in definition.check_keys]

    @dg.sensor(
        name=LATE_ALERT_SENSOR,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="A failed freshness check (the day not published by "
        f"{config.operations.freshness_deadline_hour:02d}:00 {config.timezone}): one alert per "
        "day in <home>/alerts/alerts.jsonl (and to the alert webhook).",
    )
    def clv_late_alert(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        # CLI runs whose process died (Dagster's run monitoring only sees runs it launched)
        reap_orphans(config, context.instance)
        sent = alert_late_days(context.instance, config, keys)
        return dg.SkipReason(f"{len(sent)} late-day alert(s) sent")

    return [evaluate, clv_late_alert]
