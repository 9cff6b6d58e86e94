"""Run-failure sensor: a structured alert naming asset, partition, error and the rerun command."""

import dagster as dg

from clv_pipeline.alerts import Alert, send_alert
from clv_pipeline.config import ClvConfig
from clv_pipeline.runner import summarize


@dg.run_failure_sensor(
    name="clv_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Writes <home>/alerts/alerts.jsonl (and POSTs to $CLV_ALERT_WEBHOOK_URL).",
)
def clv_failure_alert(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    outcome = summarize(context.instance, run.run_id)
    start = run.tags.get("dagster/asset_partition_range_start")
    partition = run.tags.get("dagster/partition") or (
        f"{start}..{run.tags.get('dagster/asset_partition_range_end')}" if start else None
    )
    alert = Alert.for_run(
        run_id=run.run_id, job=run.job_name, partition=partition, failures=outcome.failures
    )
    send_alert(alert, ClvConfig.from_env().layout)
