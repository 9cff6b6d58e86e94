"""Run-failure sensor: a structured alert naming asset, partition, error and the rerun command."""

import dagster as dg

from clv_pipeline.config import ClvConfig
from clv_pipeline.runs.alerts import alert_failed_run


def build_failure_sensor(config: ClvConfig) -> dg.SensorDefinition:
    """Alerts for runs that fail outside the CLI (schedule, UI); one alert per run, whoever
    notices the failure first (the CLI or this sensor)."""

    @dg.run_failure_sensor(
        name="clv_failure_alert",
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Appends <home>/alerts/alerts.jsonl (and POSTs to the alert webhook).",
    )
    def clv_failure_alert(context: dg.RunFailureSensorContext) -> None:
        alert_failed_run(context.instance, context.dagster_run, config)

    return clv_failure_alert
