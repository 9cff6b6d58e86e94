"""The jobs on the executor of ``CLV_EXECUTOR`` (issue 23): a run on the multiprocess executor
(every step in a child process that rebuilds the definitions itself) publishes the same tables as
the default in-process run; step processes get the run's command-line flags but read secrets from
their own environment; a missing extra is a ConfigError that says how to install it."""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from clv_pipeline.config import ConfigError, load_config
from clv_pipeline.defs import build_defs
from clv_pipeline.defs.jobs import DAILY_JOB, build_executor
from clv_pipeline.demo import generate_history
from clv_pipeline.paths import Layout
from clv_pipeline.runs.execute import execute, flag_overrides, job_of_home
from clv_pipeline.runs.instance import get_instance
from clv_pipeline.runs.records import RunOutcome
from clv_pipeline.schema import TABLES
from clv_pipeline.sources.landing import import_files

END = date(2024, 6, 30)
N_CUSTOMERS, DAYS = 300, 120


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No CLV_* or DAGSTER_HOME from outside: each home uses its own instance."""
    for name in [n for n in os.environ if n.startswith("CLV_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    yield monkeypatch


def export_history(folder: Path) -> Path:
    """The same small synthetic history for every home (one export file: same lineage)."""
    folder.mkdir(parents=True, exist_ok=True)
    export = folder / "history.parquet"
    generate_history(n_customers=N_CUSTOMERS, days=DAYS, end=END, seed=23).write_parquet(export)
    return export


def run_daily(home: Path, export: Path, **progress: list[tuple[str, int, int]]) -> RunOutcome:
    """Import ``export`` into a new data home and run the daily job for END (it catches up the
    ingest of every earlier day in the same run), with the executor of the environment."""
    import_files([export], Layout(home))
    config = load_config(home)
    seen = progress.get("seen")
    report = None if seen is None else (lambda *args: seen.append(args))
    outcome = execute(config, DAILY_JOB, partition=END, progress=report)
    assert outcome.success, (outcome.failures, outcome.details)
    return outcome


def published_tables(home: Path) -> dict[str, pl.DataFrame]:
    """Every file readers find under ``warehouse/`` for END, read with polars, by path."""
    layout = Layout(home)
    out = {}
    for name, table in TABLES.items():
        for day in layout.published_days(name, table.partition_key):
            if table.partition_key == "as_of" and day != END:
                continue
            path = layout.public_file(name, table.partition_key, day)
            if path.exists():
                out[str(path.relative_to(layout.warehouse))] = pl.read_parquet(path)
    return out


def assert_same_tables(expected: Path, actual: Path) -> None:
    want, got = published_tables(expected), published_tables(actual)
    assert sorted(got) == sorted(want)
    assert any(key.startswith("customer_clv/") for key in want), sorted(want)
    for key, frame in want.items():
        try:
            assert_frame_equal(got[key], frame, check_exact=True)
        except AssertionError as exc:
            raise AssertionError(f"{key}: {exc}") from None


def step_pids(home: Path, run_id: str) -> set[int]:
    """The process ids that started the run's steps (from the instance's event log)."""
    instance = get_instance(load_config(home))
    records = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
    return {r.dagster_event.pid for r in records if r.dagster_event and r.dagster_event.pid}


def test_multiprocess_run_publishes_what_in_process_does(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    export = export_history(tmp_path / "export")
    reference = tmp_path / "in_process"
    first = run_daily(reference, export)
    assert step_pids(reference, first.run_id) == {os.getpid()}

    clean_env.setenv("CLV_EXECUTOR", "multiprocess")  # inherited by the step processes
    clean_env.setenv("CLV_MAX_CONCURRENT", "2")
    home = tmp_path / "multiprocess"
    seen: list[tuple[str, int, int]] = []
    outcome = run_daily(home, export, seen=seen)
    config = load_config(home)
    job = build_defs(config).resolve_job_def(DAILY_JOB)
    assert job.executor_def.name == "multiprocess"
    run = get_instance(config).get_run_by_id(outcome.run_id)
    assert run is not None and run.tags["dagster/partition"] == END.isoformat()
    assert run.tags["dagster/max_retries"] == "0"
    pids = step_pids(home, outcome.run_id)
    assert len(pids) > 1 and os.getpid() not in pids, pids  # a process per step
    assert sorted(outcome.materialized) == sorted(first.materialized)
    # progress from the instance while the steps ran elsewhere: one report per finished step
    assert [done for _, done, _ in seen] == list(range(1, len(seen) + 1))
    assert len(seen) == len(job.nodes_in_topological_order)
    assert all(message.endswith("step_success") for message, _, _ in seen)
    assert_same_tables(reference, home)


def test_max_concurrent_zero_means_the_cores(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("CLV_EXECUTOR", "multiprocess")
    executor = build_executor(load_config(tmp_path))
    assert executor.name == "multiprocess"
    resolved = executor.config_schema.resolve_config({})  # type: ignore[attr-defined]
    assert resolved.value["config"]["max_concurrent"] == os.cpu_count()
    assert build_executor(load_config(tmp_path, environ={})) is dg.in_process_executor


def test_k8s_executor_or_the_missing_extra(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("CLV_EXECUTOR", "k8s")
    config = load_config(tmp_path)
    if importlib.util.find_spec("dagster_k8s") is None:
        with pytest.raises(ConfigError) as error:
            build_defs(config)
        message = str(error.value)
        assert "scale.executor = 'k8s'" in message
        assert "CLV_EXECUTOR" in message and "env CLV_EXECUTOR" in message
        assert "dagster-k8s" in message
        assert "pip install 'clv-pipeline[k8s]'" in message
        assert "CLV_EXECUTOR=in_process" in message
    else:
        job = build_defs(config).resolve_job_def(DAILY_JOB)
        assert job.executor_def.name == "k8s"


def test_step_processes_get_the_runs_flags_but_no_secret(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("CLV_CELERY_BROKER", "redis://:password@broker:6379/0")
    clean_env.setenv("CLV_PENALIZER", "0.1")
    config = load_config(
        tmp_path,
        overrides={"scale.state_rebuild": "full", "source.encoding": "latin-1", "end_date": None},
    )
    flags = flag_overrides(config)
    assert json.loads(flags) == {"scale.state_rebuild": "full", "source.encoding": "latin-1"}
    clean_env.delenv("CLV_PENALIZER")  # a worker's own environment: not the starting process's
    job = job_of_home(str(tmp_path), DAILY_JOB, flags)
    with dg.build_resources({"clv": job.resource_defs["clv"]}) as resources:
        rebuilt = resources.clv
    assert rebuilt.home == config.home
    assert rebuilt.scale.state_rebuild == "full" and rebuilt.source.encoding == "latin-1"
    assert rebuilt.models.penalizer != 0.1
    assert rebuilt.scale.celery_broker == "redis://:password@broker:6379/0"  # its own env
