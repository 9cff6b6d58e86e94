"""clv_pipeline: a daily customer-lifetime-value pipeline (Dagster + polars + DuckDB)."""

__version__ = "0.1.0"
