"""HTML report and out-of-time model backtest (see ``docs/report.md``).

* :func:`~clv_pipeline.report.backtest.run_backtest` — BTYD models vs a naive baseline on a
  holdout; frames conform to :mod:`clv_pipeline.report.tables`.
* :func:`~clv_pipeline.report.html.render_report` — one self-contained HTML page (inline
  plotly.js and CSS); :func:`~clv_pipeline.report.html.publish_report` writes it atomically.
"""

from clv_pipeline.report.backtest import BacktestResult, backtest_lift, run_backtest
from clv_pipeline.report.html import (
    CHART_IDS,
    publish_report,
    render_report,
    report_paths,
    write_report,
)
from clv_pipeline.report.tables import (
    BACKTEST_CALIBRATION,
    BACKTEST_DECILES,
    BACKTEST_METRICS,
    MODEL_BACKTEST,
    REPORT_TABLES,
)

__all__ = [
    "BACKTEST_CALIBRATION",
    "BACKTEST_DECILES",
    "BACKTEST_METRICS",
    "CHART_IDS",
    "MODEL_BACKTEST",
    "REPORT_TABLES",
    "BacktestResult",
    "backtest_lift",
    "publish_report",
    "render_report",
    "report_paths",
    "run_backtest",
    "write_report",
]
