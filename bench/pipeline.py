"""Benchmark: the daily pipeline on a synthetic history of 1M / 10M / 100M transactions.

Usage (see bench/README.md)::

    .venv/bin/python bench/pipeline.py --size 1M
    .venv/bin/python bench/pipeline.py --size target      # 1M customers, ~6M transactions
    .venv/bin/python bench/pipeline.py --size 100M        # 10M customers, 100M transactions

What it does, in a data home of its own (``--home``, default ``/tmp/clv-bench/<size>``):

1. **Seed** (not timed as part of the pipeline): a seeded BG/NBD + Gamma-Gamma history
   (``clv_pipeline.demo.generate_history``, one block of customers at a time, never the whole
   history in memory) over 730 days ending the day before ``AS_OF``, written as the
   ``validated_transactions`` partitions earlier daily runs would have published (rows typed as the
   validation stage types them; ``revenue_kind`` by the documented rule). Then the delivery of
   ``AS_OF`` lands in ``landing/`` as a raw parquet file with ``--new-share`` (1%) of the history's
   row count: repeat purchases of existing customers, first purchases of new ones, refunds.
   ``customer_state`` of the day before is built (a full recompute, timed) so ``AS_OF`` can be
   incremental.
2. **Stages**: every pipeline step for ``AS_OF`` called in one child process, one after the other,
   with wall time, peak RSS of the step (``VmHWM`` reset between steps) and rows/s.
3. **Daily runs**: ``clv run --date AS_OF`` as a fresh process, as the schedule runs it (Dagster
   run in process, SQLite storage, GX import, every asset, commit, report) — once with
   ``--full-recompute`` (state from the whole history) and once incremental (state of the day
   before + the day), with wall time and the peak RSS of the process.

Prints one table with the machine's cores and memory; ``--json`` writes the figures.

**Newcomer mode** (``--newcomer``): what a new user's first day costs. ``bench/models.py``'s
seeded 1M-customer history (5.7M transactions over 730 days) is written as a CSV export
(``order_id, customer_id, occurred_at, amount``), then, each in a fresh process, ``clv import``
of that file into an empty data home and the first ``clv run --date`` of its last day (catch-up
ingest of every day, validation, every table, the commit, the report). The reference is
lifetimes' modelling alone on the same transactions in the same bench run (``bench/models.py``'s
lifetimes worker under ``--lifetimes-python``: summary with ``freq="D"``, BG/NBD, Gamma-Gamma,
P(alive), expected purchases, expected spend, discounted CLV; the sum of its timed stages, without
its interpreter start or imports). Prints both sides, the ratio and each process's peak RSS, and
the first run's Dagster steps.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AS_OF = date(2026, 10, 31)
DAYS = 730
HISTORY_START = AS_OF - timedelta(days=DAYS)
SIZES = {  # transactions, customers
    "1M": (1_000_000, 170_000),
    "target": (6_000_000, 1_000_000),
    "10M": (10_000_000, 1_200_000),
    "100M": (100_000_000, 10_000_000),
}
BLOCK_CUSTOMERS = 500_000


# ----------------------------------------------------------------------------- machine
def machine() -> dict[str, Any]:
    mem_kb = 0
    model = platform.processor() or platform.machine()
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    try:
        with open("/proc/cpuinfo") as handle:
            model = next(
                (line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")),
                model,
            )
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024**2, 1),
        "cpu": model,
        "python": platform.python_version(),
        "polars": pl.__version__,
    }


def reset_peak() -> None:
    """Reset this process's peak RSS (Linux: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def peak_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------- seed
def _tx_per_customer(target: float, seed: int) -> float:
    """DemoParams.alpha giving ``target`` transactions per customer (bisection on a pilot)."""
    from clv_pipeline.demo import DemoParams, generate_history

    lo, hi = 2.0, 400.0  # smaller alpha = higher purchase rate
    for _ in range(14):
        mid = (lo * hi) ** 0.5
        pilot = generate_history(
            n_customers=20_000, days=DAYS, end=AS_OF, seed=seed, params=DemoParams(alpha=mid)
        )
        if pilot.height / 20_000 > target:
            lo = mid
        else:
            hi = mid
    return (lo * hi) ** 0.5


def _validated(raw: pl.DataFrame, block: int) -> pl.DataFrame:
    """Type a generated block as validated_transactions (validation's rules, vectorised)."""
    from clv_pipeline.schema import VALIDATED_TRANSACTIONS
    from clv_pipeline.validation.rules import ValidationRules
    from clv_pipeline.validation.transactions import revenue_kind

    non_revenue = ValidationRules().non_revenue_statuses
    return raw.select(
        pl.format("B{}{}", pl.lit(f"{block:03d}"), pl.col("transaction_id")).alias(
            "transaction_id"
        ),
        pl.format("B{}{}", pl.lit(f"{block:03d}"), pl.col("customer_id")).alias("customer_id"),
        pl.col("occurred_at"),
        pl.col("occurred_at").dt.date().alias("event_date"),
        pl.col("amount"),
        revenue_kind(pl.col("status"), pl.col("amount"), non_revenue).alias("revenue_kind"),
        "currency",
        "quantity",
        "status",
        "channel",
        "product_category",
        pl.lit(None, pl.String).alias("refund_of"),
        pl.lit(f"bench-block-{block:03d}.parquet").alias("_source_file"),
    ).select(VALIDATED_TRANSACTIONS.names)


def seed(home: Path, transactions: int, customers: int, new_share: float, seed_: int) -> dict:
    """Write the validated history and the new day's delivery (see the module docstring)."""
    from clv_pipeline.demo import DemoParams, generate_history
    from clv_pipeline.paths import Layout
    from clv_pipeline.publish.files import write_parquet

    if home.exists():
        shutil.rmtree(home)
    layout = Layout(home)
    scratch = home / "bench-scratch"
    alpha = _tx_per_customer(transactions / customers, seed_)
    params = DemoParams(alpha=alpha)
    t0 = time.perf_counter()
    blocks = (customers + BLOCK_CUSTOMERS - 1) // BLOCK_CUSTOMERS
    rows = 0
    for block in range(blocks):
        n = min(BLOCK_CUSTOMERS, customers - block * BLOCK_CUSTOMERS)
        raw = generate_history(
            n_customers=n,
            days=DAYS,
            end=AS_OF - timedelta(days=1),
            seed=seed_ + block,
            params=params,
        )
        frame = _validated(raw, block)
        rows += frame.height
        for (day,), part in frame.partition_by("event_date", as_dict=True).items():
            target = scratch / f"date={day}" / f"block-{block:03d}.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            part.write_parquet(target)
        print(f"  seed: block {block + 1}/{blocks}, {rows:,} rows", flush=True)
    for folder in sorted(scratch.iterdir()):
        day = date.fromisoformat(folder.name[5:])
        day_rows = pl.read_parquet(sorted(folder.glob("*.parquet"))).sort("occurred_at")
        target = layout.partition_file("validated_transactions", "date", day)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_parquet(day_rows, target)
    shutil.rmtree(scratch)
    new_rows = _new_day(layout, customers, blocks, int(transactions * new_share), seed_)
    return {
        "history_rows": rows,
        "customers_generated": customers,
        "alpha": round(alpha, 3),
        "new_day_rows": new_rows,
        "seed_s": round(time.perf_counter() - t0, 1),
    }


def _new_day(layout: Any, customers: int, blocks: int, n: int, seed_: int) -> int:
    """The delivery of AS_OF: 80% existing customers, 20% new ones, 2% refunds (raw strings)."""
    rng = np.random.default_rng(seed_ + 10_000)
    existing = rng.random(n) < 0.8
    index = rng.integers(0, customers, n)
    block, local = index // BLOCK_CUSTOMERS, index % BLOCK_CUSTOMERS
    ids = np.where(
        existing,
        np.char.add(
            np.char.add("B", np.char.zfill(block.astype(str), 3)),
            np.char.add("C", np.char.zfill(local.astype(str), 7)),
        ),
        np.char.add("N", np.char.zfill(rng.integers(0, max(n // 2, 1), n).astype(str), 9)),
    )
    amount = np.round(rng.gamma(6.25, 6.0, n), 2)
    amount = np.where(rng.random(n) < 0.02, -amount, amount)
    start = np.datetime64(datetime.combine(AS_OF, datetime.min.time()), "us")
    stamps = start + rng.integers(0, 86_400_000_000, n).astype("timedelta64[us]")
    frame = pl.DataFrame(
        {
            "customer_id": ids,
            "occurred_at": pl.Series(stamps).dt.replace_time_zone("UTC"),
            "amount": amount,
            "status": np.where(amount < 0, "refunded", "completed"),
            "channel": rng.choice(np.array(["web", "app", "store"]), n),
        }
    ).select(
        pl.format(
            "D{}-{}", pl.lit(f"{AS_OF:%Y%m%d}"), pl.int_range(pl.len()).cast(pl.String)
        ).alias("transaction_id"),
        "customer_id",
        pl.col("occurred_at").dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ"),
        pl.col("amount").cast(pl.String),
        pl.lit("USD").alias("currency"),
        "status",
        "channel",
    )
    target = layout.landing_day(AS_OF) / "orders.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(target)
    return n


# ----------------------------------------------------------------------------- stages
def _stage_table(home: Path) -> list[dict[str, Any]]:
    """Every step for AS_OF in this process; returns one row per step (child process only)."""
    from clv_pipeline import pipeline
    from clv_pipeline.config import load_config
    from clv_pipeline.publish.warehouse import scan_published

    config = load_config(home, overrides={"start_date": HISTORY_START})
    full = config.with_overrides({"scale.state_rebuild": "full"})
    layout = config.layout
    history_rows = (
        scan_published(layout, "validated_transactions").select(pl.len()).collect().item()
    )
    out: list[dict[str, Any]] = []

    def stage(name: str, rows: Callable[[], int], step: Callable[[], Any]) -> None:
        reset_peak()
        t0 = time.perf_counter()
        step()
        wall = time.perf_counter() - t0
        n = rows()
        out.append(
            {
                "stage": name,
                "wall_s": round(wall, 2),
                "peak_rss_mb": round(peak_mb()),
                "rows": n,
                "rows_per_s": round(n / wall) if wall > 0 else None,
            }
        )
        print(f"  {name:<34} {wall:8.2f} s  {out[-1]['peak_rss_mb']:>7} MB", flush=True)

    def count(table: str) -> Callable[[], int]:
        def rows() -> int:
            frame = pipeline.read_published(layout, table, AS_OF)
            return 0 if frame is None else frame.height

        return rows

    customers = count("customer_state")
    stage(
        "state full recompute (day before)",
        lambda: history_rows,
        lambda: pipeline.build_customer_state(full, AS_OF - timedelta(days=1)),
    )
    stage(
        "cohort state full recompute (day before)",
        lambda: history_rows,
        lambda: pipeline.build_cohort_state(full, AS_OF - timedelta(days=1)),
    )
    stage(
        "raw_transactions (pull the day)",
        count("raw_transactions"),
        lambda: pipeline.pull_raw_transactions(config, AS_OF),
    )
    stage(
        "validated_transactions (GX)",
        count("raw_transactions"),
        lambda: pipeline.validate_days(config, [AS_OF]),
    )
    history_rows = (
        scan_published(layout, "validated_transactions").select(pl.len()).collect().item()
    )
    stage(
        "customer_state: full recompute",
        lambda: history_rows,
        lambda: pipeline.build_customer_state(full, AS_OF),
    )
    stage(
        "customer_state: incremental",
        count("validated_transactions"),
        lambda: pipeline.build_customer_state(config, AS_OF),
    )
    stage("customer_features", customers, lambda: pipeline.build_customer_features(config, AS_OF))
    stage(
        "customer_clv (fits + predictions)",
        customers,
        lambda: pipeline.build_customer_clv(config, AS_OF),
    )
    for name, step in (
        ("customer_segments", pipeline.build_customer_segments),
        ("customer_churn", pipeline.build_customer_churn),
        ("segment_migration", pipeline.build_segment_migration),
        ("unit_economics", pipeline.build_unit_economics),
        ("kpis", pipeline.build_kpis),
    ):
        stage(name, customers, lambda step=step: step(config, AS_OF))
    stage(
        "cohorts: full recompute",
        lambda: history_rows,
        lambda: pipeline.build_cohorts(full, AS_OF),
    )
    stage(
        "cohorts: incremental",
        count("validated_transactions"),
        lambda: pipeline.build_cohorts(config, AS_OF),
    )
    stage(
        "model_backtest", lambda: history_rows, lambda: pipeline.build_model_backtest(config, AS_OF)
    )
    stage("commit (DuckDB catalog)", customers, lambda: pipeline.commit_snapshot(config, AS_OF))
    stage("report (HTML)", customers, lambda: pipeline.build_report(config, AS_OF))
    return out


# ----------------------------------------------------------------------------- newcomer
def _timed(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``command`` as a fresh process: wall time and its peak RSS (``wait4``)."""
    t0 = time.perf_counter()
    process = subprocess.Popen(
        command, env=env or dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output = process.stdout.read().decode() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{output}")
    return {"wall_s": round(wall, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024)}


def _newcomer_export(folder: Path, customers: int, seed_: int) -> tuple[Path, Path, dict]:
    """bench/models.py's seeded history as ``.npz`` (for lifetimes) and a CSV export (for us)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import models as model_bench  # bench/models.py

    folder.mkdir(parents=True, exist_ok=True)
    npz = folder / "history.npz"
    info = model_bench.generate(customers, seed_, npz)
    data = np.load(npz)
    start = datetime.combine(model_bench.START, datetime.min.time())
    frame = pl.DataFrame(
        {
            "customer_id": data["cust"],
            "occurred_at": pl.Series(
                np.datetime64(start, "us") + (data["t"] * 86_400e6).astype("timedelta64[us]")
            ),
            "amount": data["amount"],
        }
    ).select(
        pl.format("O{}", pl.int_range(pl.len())).alias("order_id"),
        pl.format("C{}", "customer_id").alias("customer_id"),
        pl.col("occurred_at").dt.strftime("%Y-%m-%d %H:%M:%S"),
        pl.col("amount").round(2),
    )
    csv = folder / "orders.csv"
    frame.write_csv(csv)
    last = frame.select(pl.col("occurred_at").max().str.slice(0, 10)).item()
    return npz, csv, {**info, "last_day": last, "csv_mb": round(csv.stat().st_size / 1e6)}


def _run_steps(home: Path) -> list[dict[str, Any]]:
    """Wall time of each Dagster step of the latest run in ``home``'s instance."""
    from clv_pipeline.config import load_config
    from clv_pipeline.runs.instance import get_instance

    with get_instance(load_config(home)) as instance:
        run = instance.get_runs(limit=1)[0]
        started: dict[str, float] = {}
        steps = []
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type_value == "STEP_START":
                started[event.step_key] = record.timestamp
            elif event.event_type_value == "STEP_SUCCESS":
                wall = record.timestamp - started[event.step_key]
                steps.append({"step": event.step_key, "wall_s": round(wall, 2)})
    return steps


def newcomer(home: Path, customers: int, seed_: int, lifetimes_python: str | None) -> dict:
    """``clv import`` + the first ``clv run`` vs lifetimes' modelling (see the module docstring)."""
    if home.exists():
        shutil.rmtree(home)
    export = home.parent / f"{home.name}-export"
    t0 = time.perf_counter()
    npz, csv, info = _newcomer_export(export, customers, seed_)
    info["generate_s"] = round(time.perf_counter() - t0, 1)
    print(f"  export: {info}", flush=True)
    clv = str(Path(sys.executable).parent / "clv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLV_")}
    figures: dict[str, Any] = {"export": info}
    figures["import"] = _timed(
        [clv, "import", str(csv), "-c", "order_id=transaction_id", "--home", str(home)], env
    )
    print(f"  clv import: {figures['import']}", flush=True)
    figures["first_run"] = _timed(
        [clv, "run", "--date", info["last_day"], "--home", str(home)], env
    )
    print(f"  first clv run: {figures['first_run']}", flush=True)
    figures["steps"] = _run_steps(home)
    if lifetimes_python:
        sys.path.insert(0, str(ROOT / "bench"))
        import models as model_bench

        result = model_bench._worker(lifetimes_python, "lifetimes", npz, None)
        if "times" not in result:
            raise SystemExit(f"lifetimes worker failed: {result}")
        # the stages of one modelling pass (bench/models.py also times "predict" and "clv"
        # on their own; "predict_clv" is both together)
        stages = ("features", "bgnbd_fit", "gg_fit", "predict_clv")
        result["times"] = {k: result["times"][k] for k in stages}
        modelling = sum(result["times"].values())
        figures["lifetimes"] = {
            "modelling_s": round(modelling, 1),
            "times": {k: round(v, 2) for k, v in result["times"].items()},
            "peak_rss_mb": round(result["peak_rss_mb"]),
        }
        print(f"  lifetimes modelling: {figures['lifetimes']}", flush=True)
    return figures


def render_newcomer(figures: dict[str, Any]) -> str:
    m, nc = figures["machine"], figures["newcomer"]
    ours = nc["import"]["wall_s"] + nc["first_run"]["wall_s"]
    peak = max(nc["import"]["peak_rss_mb"], nc["first_run"]["peak_rss_mb"])
    exp = nc["export"]
    lines = [
        f"newcomer: {exp['customers']:,.0f} customers, {exp['transactions']:,.0f} transactions "
        f"({exp['csv_mb']} MB CSV) | {m['cores']} cores, {m['memory_gib']} GiB, {m['cpu']}",
        "",
        "| side | wall s | peak RSS MB |",
        "|---|---:|---:|",
        f"| `clv import` (fresh process) | {nc['import']['wall_s']:.1f} | "
        f"{nc['import']['peak_rss_mb']:,} |",
        f"| first `clv run --date {exp['last_day']}` (fresh process) | "
        f"{nc['first_run']['wall_s']:.1f} | {nc['first_run']['peak_rss_mb']:,} |",
        f"| **ours: import + first run** | **{ours:.1f}** | **{peak:,}** |",
    ]
    if "lifetimes" in nc:
        ref = nc["lifetimes"]
        lines += [
            f"| lifetimes modelling alone ({', '.join(f'{k} {v}' for k, v in ref['times'].items())})"
            f" | {ref['modelling_s']:.1f} | {ref['peak_rss_mb']:,} |",
            "",
            f"ratio ours / lifetimes: **{ours / ref['modelling_s']:.2f}** (target <= 1.0)",
        ]
    lines += ["", "first run, Dagster steps:", "", "| step | wall s |", "|---|---:|"]
    lines += [f"| {s['step']} | {s['wall_s']:.2f} |" for s in nc.get("steps", [])]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- daily runs
def daily_run(home: Path, *, full: bool) -> dict[str, Any]:
    """``clv run --date AS_OF`` as a fresh process; wall time and the process's peak RSS."""
    clv = Path(sys.executable).parent / "clv"
    command = [str(clv), "run", "--date", str(AS_OF), "--home", str(home)]
    if full:
        command.append("--full-recompute")
    env = {**os.environ, "CLV_START_DATE": str(HISTORY_START)}
    env.pop("CLV_STATE_REBUILD", None)
    return _timed(command, env)


def shard_runs(
    home: Path, plans: list[tuple[int, str]], *, warm: bool = False
) -> list[dict[str, Any]]:
    """``clv run --date AS_OF`` of the seeded home once per (shards, executor) plan, each a fresh
    process: wall time, the peak RSS of the biggest process of the run (``wait4`` counts the
    step processes the run waited for), the valuation's Dagster steps with each step process's
    own peak RSS (``process_peak_rss_mb``), and digests of the sharded tables (the same in
    every plan). ``warm``: a plan with shards first runs the day before (not timed), so each
    shard's cohort state chain exists, as on any day after the first sharded one."""
    from clv_pipeline.config import load_config
    from clv_pipeline.paths import Layout
    from clv_pipeline.runs.instance import get_instance

    clv = Path(sys.executable).parent / "clv"
    command = [str(clv), "run", "--date", str(AS_OF), "--home", str(home)]
    out = []
    for shards, executor in plans:
        env = {
            **os.environ,
            "CLV_START_DATE": str(HISTORY_START),
            "CLV_SHARDS": str(shards),
            "CLV_EXECUTOR": executor,
            "CLV_HOME": str(home),
        }
        env.pop("CLV_STATE_REBUILD", None)
        if warm and shards > 1:
            before = [*command[:3], str(AS_OF - timedelta(days=1)), *command[4:]]
            print(f"  {shards} shard(s), {executor}: the day before ...", flush=True)
            print(f"    {_timed(before, env)}", flush=True)
        print(f"  {shards} shard(s), {executor} ...", flush=True)
        figures: dict[str, Any] = {"shards": shards, "executor": executor, **_timed(command, env)}
        steps = {s["step"]: s["wall_s"] for s in _run_steps(home)}
        valuation = [s for s in steps if s.startswith(SHARD_STEP_PREFIXES) or s in SHARDED_TABLES]
        figures["valuation_steps"] = {s: steps[s] for s in valuation}
        figures["steps_s"] = round(sum(steps.values()), 1)
        with get_instance(load_config(home)) as instance:
            peaks = {}
            for step in valuation:
                event = instance.get_latest_materialization_event(dg_key(step))
                meta = (
                    event.asset_materialization.metadata
                    if event and event.asset_materialization
                    else {}
                )
                if "process_peak_rss_mb" in meta:
                    peaks[step] = meta["process_peak_rss_mb"].value
            figures["step_peak_rss_mb"] = peaks
        for table in SHARDED_TABLES:
            path = Layout(home).partition_file(table, "as_of", AS_OF)
            figures[f"{table}_sha256"] = _sha256(path)[:16]
        print(f"    {figures}", flush=True)
        out.append(figures)
    return out


#: The steps of the sharded plans, and the tables they publish (the same bytes in every plan).
SHARD_STEP_PREFIXES = (
    "state_shard_",
    "clv_",
    "customer_shard_",
    "customer_population",
    "cohort_shard_",
)
SHARDED_TABLES = (
    "customer_state",
    "customer_features",
    "customer_clv",
    "customer_segments",
    "customer_churn",
    "cohorts",
)


def dg_key(step: str) -> Any:
    import dagster as dg

    return dg.AssetKey(step)


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def render_shards(runs: list[dict[str, Any]]) -> str:
    lines = [
        "| shards | executor | run wall s | peak RSS MB (biggest process) | sharded steps (s) | "
        "step process peak RSS MB | sha256 of " + " / ".join(SHARDED_TABLES) + " |",
        "|---:|---|---:|---:|---|---|---|",
    ]
    for r in runs:
        steps = ", ".join(f"{k} {v}" for k, v in r["valuation_steps"].items())
        peaks = ", ".join(f"{k} {v:.0f}" for k, v in r["step_peak_rss_mb"].items()) or "-"
        lines.append(
            f"| {r['shards']} | {r['executor']} | {r['wall_s']} | {r['peak_rss_mb']:,} | "
            f"{steps} | {peaks} | " + " / ".join(r[f"{t}_sha256"] for t in SHARDED_TABLES) + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="1M")
    parser.add_argument("--transactions", type=int, help="override the size's transactions")
    parser.add_argument("--customers", type=int, help="override the size's customers")
    parser.add_argument("--new-share", type=float, default=0.01, help="new day rows / history rows")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--home", type=Path)
    parser.add_argument("--reuse", action="store_true", help="reuse a seeded home (skip seeding)")
    parser.add_argument("--skip-stages", action="store_true")
    parser.add_argument(
        "--warm",
        action="store_true",
        help="--shards: run the day before first (untimed) so each shard's cohort chain exists",
    )
    parser.add_argument("--skip-runs", action="store_true")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--newcomer",
        action="store_true",
        help="clv import + first clv run of a 1M-customer CSV vs lifetimes' modelling",
    )
    parser.add_argument(
        "--lifetimes-python", help="interpreter with lifetimes (see bench/README_models.md)"
    )
    parser.add_argument(
        "--shards",
        help="with --reuse: rerun AS_OF once per plan SHARDS:EXECUTOR, e.g. "
        "1:in_process,2:in_process,2:multiprocess (issue 23)",
    )
    parser.add_argument("--_stages", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._stages:  # child process: the stage table
        print(json.dumps(_stage_table(args._stages)))
        return
    tx, cust = SIZES[args.size]
    tx, cust = args.transactions or tx, args.customers or cust
    home = (
        args.home
        or Path(os.environ.get("CLV_BENCH_HOME") or Path(tempfile.gettempdir()) / "clv-bench")
        / args.size
    )
    figures: dict[str, Any] = {"machine": machine(), "size": args.size, "as_of": str(AS_OF)}
    print(f"machine: {figures['machine']}")
    if args.newcomer:
        home = args.home or home.parent / "newcomer"
        print(f"newcomer: export, clv import, first clv run in {home} ...", flush=True)
        figures["newcomer"] = newcomer(
            home,
            args.customers or 1_000_000,
            42 if args.seed == 7 else args.seed,
            args.lifetimes_python,
        )
        print()
        print(render_newcomer(figures))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(figures, indent=2))
        return
    if args.shards:
        plans = [(int(p.split(":")[0]), p.split(":")[1]) for p in args.shards.split(",")]
        print(f"shard plans on {home}: {plans}", flush=True)
        figures["shard_runs"] = shard_runs(home, plans, warm=args.warm)
        print()
        print(render_shards(figures["shard_runs"]))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(figures, indent=2))
        return
    seed_file = home / "bench-seed.json"
    if not args.reuse:
        print(f"seeding {tx:,} transactions / {cust:,} customers in {home} ...", flush=True)
        figures["seed"] = seed(home, tx, cust, args.new_share, args.seed)
        seed_file.write_text(json.dumps(figures["seed"]))
        print(f"  {figures['seed']}")
    elif seed_file.exists():
        figures["seed"] = json.loads(seed_file.read_text())
    if not args.skip_stages:
        print("stages (one process, one after the other):", flush=True)
        child = subprocess.run(
            [sys.executable, __file__, "--_stages", str(home)],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "CLV_START_DATE": str(HISTORY_START), "CLV_HOME": str(home)},
        )
        lines = child.stdout.strip().splitlines()
        print("\n".join(lines[:-1]))
        figures["stages"] = json.loads(lines[-1])
    if not args.skip_runs:
        print("daily runs (`clv run`, fresh process each):", flush=True)
        figures["run_full"] = daily_run(home, full=True)
        print(f"  full recompute: {figures['run_full']}", flush=True)
        figures["run_incremental"] = daily_run(home, full=False)
        print(f"  incremental:    {figures['run_incremental']}", flush=True)
    print()
    print(render(figures))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))


def render(figures: dict[str, Any]) -> str:
    m = figures["machine"]
    seed_ = figures.get("seed", {})
    lines = [
        f"clv_pipeline daily run, size {figures['size']}: "
        f"{seed_.get('history_rows', '?'):,} history rows, "
        f"{seed_.get('new_day_rows', '?'):,} new rows on {figures['as_of']} | "
        f"{m['cores']} cores, {m['memory_gib']} GiB, {m['cpu']}",
        "",
        "| stage | wall s | peak RSS MB | rows | rows/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in figures.get("stages", []):
        rate = f"{row['rows_per_s']:,}" if row["rows_per_s"] else ""
        lines.append(
            f"| {row['stage']} | {row['wall_s']:.2f} | {row['peak_rss_mb']:,} | {row['rows']:,} | {rate} |"
        )
    for key, label in (("run_full", "full recompute"), ("run_incremental", "incremental")):
        if key in figures:
            run = figures[key]
            lines.append(
                f"| **`clv run` ({label})** | **{run['wall_s']:.1f}** | **{run['peak_rss_mb']:,}** | | |"
            )
    stages = {row["stage"]: row["wall_s"] for row in figures.get("stages", [])}
    full, inc = (
        stages.get("customer_state: full recompute"),
        stages.get("customer_state: incremental"),
    )
    if full and inc:
        lines += [
            "",
            f"customer_state incremental / full recompute: {inc / full:.2f} ({full / inc:.1f}x)",
        ]
    if "run_full" in figures and "run_incremental" in figures:
        a, b = figures["run_full"]["wall_s"], figures["run_incremental"]["wall_s"]
        lines.append(f"daily run incremental / full recompute: {b / a:.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
