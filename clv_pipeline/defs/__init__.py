"""Dagster wiring (assets, jobs, schedules, resources). Logic lives in clv_pipeline.pipeline."""
