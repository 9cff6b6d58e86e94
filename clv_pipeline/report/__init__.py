"""HTML report and out-of-time model backtest (see ``docs/report.md``).

* :func:`~clv_pipeline.report.backtest.run_backtest` — BTYD models vs a naive baseline on a
  holdout; frames conform to :mod:`clv_pipeline.schema.report`.
* :func:`~clv_pipeline.report.html.render_report` — one HTML page (inline CSS; plotly.js inline,
  or loaded from ``reports/_assets/`` for the daily pages);
  :func:`~clv_pipeline.report.html.publish_report` writes it and the shared plotly.js atomically.

Submodules are imported where used (plotly takes a while to import).
"""
