"""The parsers, kept importable here; they live in the leaf :mod:`clv_pipeline.parse` so that
``sources`` can split imports by event date without importing ``validation``."""

from clv_pipeline.parse import (
    clean_text,
    event_date,
    parse_integer,
    parse_number,
    parse_timestamp,
    parse_timestamps,
)

__all__ = [
    "clean_text",
    "event_date",
    "parse_integer",
    "parse_number",
    "parse_timestamp",
    "parse_timestamps",
]
