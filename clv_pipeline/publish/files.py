"""Atomic parquet writes, kept importable here; they live in the leaf :mod:`clv_pipeline.parquet`
so that ``sources`` can write landing files without importing ``publish``."""

from clv_pipeline.parquet import ROW_GROUP_SIZE, fsync_dir, write_parquet, write_parquet_atomic

__all__ = ["ROW_GROUP_SIZE", "fsync_dir", "write_parquet", "write_parquet_atomic"]
