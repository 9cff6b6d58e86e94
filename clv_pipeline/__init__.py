"""clv_pipeline: a daily customer-lifetime-value pipeline (Dagster + polars + DuckDB).

Layers, lowest first. A module imports from its own layer or lower ones, never from a higher one
(``tests/unit/test_layers.py`` checks it for the leaves, the contract and the stages):

1. leaves: ``numeric``, ``errors``, ``faults``, ``paths``, ``parquet`` (atomic parquet writes,
   footer digests) and ``parse`` (contract strings to types); they import no other layer;
2. the contract: ``schema`` (every table's columns, types and units; ``conform``), which imports
   only ``numeric`` and ``errors``;
3. the stages, pure functions of frames, in pipeline order: ``sources`` -> ``validation`` ->
   ``features`` -> ``models`` -> ``valuation`` -> ``segments``; a stage may use an earlier
   stage (``segments`` uses ``features``), never a later one;
4. ``publish`` (write-audit-publish, DuckDB catalog) and ``report`` (backtest, HTML);
5. orchestration: ``config``, ``pipeline``, ``runs``, the Dagster wiring (``defs``,
   ``definitions``) and ``cli``.
"""

__version__ = "0.1.0"
