"""Segments and churn tables built from features and CLV."""
