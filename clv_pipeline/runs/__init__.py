"""Run bookkeeping: the one place that knows how Dagster runs map to days and what to do next.

* :mod:`~clv_pipeline.runs.records` - partition tags <-> days, run outcomes and failure messages;
* :mod:`~clv_pipeline.runs.alerts` - one alert per failed run, whoever notices it first;
* :mod:`~clv_pipeline.runs.instance` - the Dagster instance of a data home;
* :mod:`~clv_pipeline.runs.execute` - run a job in process (one run per data home at a time);
* :mod:`~clv_pipeline.runs.operations` - run a day with catch-up, backfill, rerun;
* :mod:`~clv_pipeline.runs.status` - partition status per asset.

Which days are stale or missing is a question about files, asked by the assets too: it lives in
:mod:`clv_pipeline.history`. ``records`` and ``alerts`` import no Dagster definitions, so the failure sensor in
:mod:`clv_pipeline.defs` can use them; the other modules build the definitions from the config.
"""
