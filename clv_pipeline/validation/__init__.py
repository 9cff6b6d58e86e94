"""Validation of raw transactions: typing, normalisation, deduplication and quarantine."""
