"""The daily job on Dagster's Celery executor (issue 23): a real Redis server as broker and result
backend, two dagster-celery workers (one step at a time each), the run started by
``clv_pipeline.runs.execute.execute`` with ``CLV_EXECUTOR=celery`` and ``CLV_SHARDS=2``. Both workers
execute steps, and the published tables equal those of an in-process, unsharded run of the same
history.

Without ``redis-server`` (Debian package ``redis-server``; ``.ci/run`` installs it) or the
``celery`` extra the test is skipped, except under CI, where it fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import dagster as dg
import pytest

from clv_pipeline.config import load_config
from clv_pipeline.defs import build_defs
from clv_pipeline.defs.jobs import DAILY_JOB
from clv_pipeline.runs.instance import get_instance
from tests.e2e.test_executors import assert_same_tables, export_history, run_daily

pytestmark = [
    pytest.mark.timeout(900),
    # dagster-celery registers its execute_plan task again for each step it submits (same body)
    pytest.mark.filterwarnings("ignore:Task name 'execute_plan' is already registered"),
]
WORKERS = ("clv-w1", "clv-w2")
READY_SECONDS = 120


def _on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _missing(reason: str) -> NoReturn:
    """Skip for a missing server or package on a developer machine; fail under CI."""
    if _on_ci():
        pytest.fail(f"{reason} (CI is set: it must be installed)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes], *, group: bool = False) -> None:
    """SIGTERM (a Celery worker's warm shutdown), then SIGKILL; ``group``: its pool too."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if group:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # pool processes left behind, if any
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throw-away Redis server on 127.0.0.1 (no persistence, temp dir); yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("redis-server not installed (Debian package `redis-server`; .ci/run installs it)")
    try:
        import redis
    except ImportError:
        _missing("the celery extra is not installed: pip install -e '.[celery]'")
    root = tmp_path_factory.mktemp("redis")
    port = _free_port()
    log = root / "redis.log"
    args = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root)]
    args += ["--save", "", "--appendonly", "no", "--logfile", str(log)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if redis.Redis.from_url(url, socket_timeout=1).ping():
                    break
            except redis.RedisError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                text = log.read_text() if log.exists() else ""
                raise RuntimeError(f"redis-server did not start: {args}\n{text}")
            time.sleep(0.1)
        yield url
    finally:
        _stop(process)


@dataclass(frozen=True)
class Workers:
    home: Path  # the data home the workers were started for (CLV_HOME)
    names: tuple[str, ...]  # Celery node names, e.g. clv-w1@host
    logs: tuple[Path, ...]

    def log_text(self) -> str:
        return "\n".join(f"== {p}\n{p.read_text(errors='replace')}" for p in self.logs)


#: The valuation's shards in the Celery run (the in-process reference has one).
SHARDS = 2


def worker_command(name: str, url: str, log: Path) -> list[str]:
    """A dagster-celery worker running one step at a time (what docs/scaling.md shows)."""
    return [
        *(sys.executable, "-m", "celery", "-A", "dagster_celery.app"),
        *("--broker", url, "--result-backend", url),
        *("worker", "--concurrency", "1", "--prefetch-multiplier", "1", "--queues", "dagster"),
        *("--hostname", f"{name}@%h", "--loglevel", "INFO", "--logfile", str(log)),
        *("--without-gossip", "--without-mingle"),
    ]


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Workers]:
    """Two workers on ``redis_url`` for a new data home; ready (they answer a ping) when yielded."""
    from celery import Celery

    root = tmp_path_factory.mktemp("celery")
    home = root / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLV_", "DAGSTER_HOME"))}
    env |= {
        "CLV_HOME": str(home),
        "CLV_EXECUTOR": "celery",
        "CLV_CELERY_BROKER": redis_url,
        "CLV_SHARDS": str(SHARDS),
    }
    logs = tuple(root / f"{name}.log" for name in WORKERS)
    processes = []
    try:
        for name, log in zip(WORKERS, logs, strict=True):
            processes.append(
                subprocess.Popen(  # noqa: S603 - our own interpreter and Celery
                    worker_command(name, redis_url, log),
                    env=env,
                    stdout=log.with_suffix(".out").open("wb"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: the pool is killed with it
                )
            )
        app = Celery("clv-test", broker=redis_url, backend=redis_url)
        host = socket.gethostname()
        names = tuple(f"{name}@{host}" for name in WORKERS)
        deadline = time.monotonic() + READY_SECONDS
        while True:
            answered = {n for reply in app.control.ping(timeout=1.0) for n in reply}
            if set(names) <= answered:
                break
            dead = [p.args for p in processes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                text = "\n".join(
                    p.read_text(errors="replace")
                    for log in logs
                    for p in (log, log.with_suffix(".out"))
                    if p.exists()
                )
                raise RuntimeError(
                    f"workers not ready (answered: {answered}, dead: {dead})\n{text}"
                )
        yield Workers(home, names, logs)
    finally:
        for process in processes:
            _stop(process, group=True)


def step_workers(home: Path, run_id: str) -> dict[str, str]:
    """Step key -> the Celery worker that executed it (the executor's engine events)."""
    instance = get_instance(load_config(home))
    out = {}
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        data = event.engine_event_data if event else None
        if event and data and "Celery worker" in data.metadata:
            out[event.step_key or "?"] = str(data.metadata["Celery worker"].value)
    return out


def test_daily_job_on_two_celery_workers(
    workers: Workers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    for name in [n for n in os.environ if n.startswith("CLV_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    export = export_history(tmp_path / "export")
    reference = tmp_path / "in_process"
    run_daily(reference, export)

    monkeypatch.setenv("CLV_EXECUTOR", "celery")
    monkeypatch.setenv("CLV_CELERY_BROKER", redis_url)
    monkeypatch.setenv("CLV_SHARDS", str(SHARDS))  # the valuation's shards spread over workers
    started = time.monotonic()
    outcome = run_daily(workers.home, export)
    seconds = time.monotonic() - started
    config = load_config(workers.home)
    job = build_defs(config).resolve_job_def(DAILY_JOB)
    assert job.executor_def.name == "celery"
    by_step = step_workers(workers.home, outcome.run_id)
    steps = {node.name for node in job.nodes_in_topological_order}
    assert set(by_step) == steps, workers.log_text()
    assert {f"clv_shard_{k}_values" for k in range(SHARDS)} | {"clv_fit"} <= steps
    assert set(by_step.values()) == set(workers.names), (by_step, workers.log_text())
    for name, log in zip(workers.names, workers.logs, strict=True):
        assert "execute_plan" in log.read_text(), f"{name} received no step"
    assert_same_tables(reference, workers.home)
    print(f"celery run: {len(steps)} steps in {seconds:.1f} s, by worker {by_step}")  # noqa: T201
