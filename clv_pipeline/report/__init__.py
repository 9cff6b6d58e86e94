"""HTML report and out-of-time model backtest (see ``docs/report.md``).

* :func:`~clv_pipeline.report.backtest.run_backtest` — BTYD models vs a naive baseline on a
  holdout; frames conform to :mod:`clv_pipeline.schema.report`.
* :func:`~clv_pipeline.report.html.render_report` — one self-contained HTML page (inline
  plotly.js and CSS); :func:`~clv_pipeline.report.html.publish_report` writes it atomically.

Submodules are imported where used (plotly takes a while to import).
"""
