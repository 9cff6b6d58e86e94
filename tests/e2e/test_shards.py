"""Customer-hash shards (``scale.shards``): the sharded valuation (map inputs -> reduce fit ->
map values -> gather) publishes what the unsharded one does, and the shard of a customer is a
specified hash (FNV-1a 64), stable across versions."""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from clv_pipeline import pipeline
from clv_pipeline.config import ClvConfig, load_config, save_settings
from clv_pipeline.defs.jobs import DAILY_JOB
from clv_pipeline.demo import generate_history
from clv_pipeline.errors import InputError
from clv_pipeline.paths import Layout
from clv_pipeline.publish.warehouse import read_published
from clv_pipeline.runs import operations
from clv_pipeline.runs.execute import execute
from clv_pipeline.runs.instance import get_instance
from clv_pipeline.schema import TABLES
from clv_pipeline.segments.lifecycle import ChurnBasis
from clv_pipeline.shards import fnv1a64, in_shard, shard_of
from clv_pipeline.sources.landing import import_files
from tests.conftest import build_through_features, land_demo_history

END = date(2024, 6, 30)
DAYS = 200
CLV_TABLES = ("customer_clv", "model_params", "model_diagnostics")


def test_fnv1a64_reference_values() -> None:
    # the FNV-1a 64 test vectors (www.isthe.com/chongo/tech/comp/fnv), and UTF-8 bytes
    got = fnv1a64(pl.Series(["", "a", "foobar", None, "é"]))
    assert [hex(int(v)) for v in got[:3]] == [
        "0xcbf29ce484222325",
        "0xaf63dc4c8601ec8c",
        "0x85944171f73967e8",
    ]
    assert got[3] == got[0]  # null hashes as ""
    assert int(got[4]) == _fnv_reference("é".encode())


def _fnv_reference(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) % 2**64
    return h


def test_shards_partition_the_customers() -> None:
    ids = pl.Series([f"C{i}" for i in range(5000)] + ["ü-7", "a-much-longer-customer-id-0042"])
    shards = shard_of(ids, 4).to_numpy()
    assert set(np.unique(shards)) == {0, 1, 2, 3}
    assert all(int(h) % 4 == s for h, s in zip(fnv1a64(ids), shards, strict=True))
    assert [_fnv_reference(i.encode()) % 4 for i in ids[:50]] == shards[:50].tolist()
    frame = pl.DataFrame({"customer_id": ids, "n": range(ids.len())})
    parts = [in_shard(frame, k, 4) for k in range(4)]
    assert sum(p.height for p in parts) == frame.height
    assert_frame_equal(pl.concat(parts).sort("n"), frame)
    assert shard_of(ids, 1).unique().to_list() == [0]


def _home(root: Path, monkeypatch: pytest.MonkeyPatch, shards: int, tmp: Path) -> ClvConfig:
    layout = Layout(root)
    land_demo_history(layout, tmp, n_customers=800, days=DAYS, end=END, seed=23)
    monkeypatch.setenv("CLV_SHARDS", str(shards))
    config = load_config(root)
    build_through_features(config, END, DAYS)
    return config


@pytest.mark.parametrize("selection", ["bic", "holdout", "pareto_nbd"])
def test_sharded_valuation_equals_unsharded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, selection: str
) -> None:
    monkeypatch.setenv("CLV_SELECTION", selection)
    monkeypatch.setattr(pipeline, "SHARD_READ_BATCH", 97)  # shards read many batches
    one = _home(tmp_path / "one", monkeypatch, 1, tmp_path)
    pipeline.build_customer_clv(one, END)
    four = _home(tmp_path / "four", monkeypatch, 4, tmp_path)
    sizes = [pipeline.build_shard_inputs(four, END, k).stats["customers"] for k in range(4)]
    features = read_published(four.layout, "customer_features", END)
    assert features is not None
    assert sum(sizes) == features.height and min(sizes) > 0
    pipeline.fit_shards(four, END)
    pipeline.build_shard_activity(four, END)
    for k in range(4):
        pipeline.value_shard(four, END, k)
    _, valuation = pipeline.publish_sharded_clv(four, END)
    assert valuation.selected_model is not None
    for table in CLV_TABLES:
        a = read_published(one.layout, table, END)
        b = read_published(four.layout, table, END)
        assert a is not None and b is not None
        assert_frame_equal(a, b, check_exact=True)  # same rows, order, values bit for bit
    assert not pipeline.shard_dir(four.layout, END).exists()  # spent once published


@pytest.mark.parametrize("basis", ["selected", "recency"])
def test_sharded_segments_and_churn_equal_unsharded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, basis: str
) -> None:
    """Map counts -> reduce population -> map rows -> gather: customer_segments and
    customer_churn are the unsharded tables, and the working files are spent once both are
    published; a file from other inputs is refused."""
    if basis == "recency":  # the rhythm-and-silence churn: the population rhythm matters
        monkeypatch.setattr(
            pipeline, "churn_basis", lambda config, as_of: ChurnBasis("recency", "forced")
        )
    monkeypatch.setattr(pipeline, "SHARD_READ_BATCH", 97)  # shards read many batches
    homes = {}
    for shards in (1, 3):
        config = _home(tmp_path / f"s{shards}", monkeypatch, shards, tmp_path)
        pipeline.build_customer_clv(config, END)
        pipeline.build_model_backtest(config, END)
        homes[shards] = config
    one, three = homes[1], homes[3]
    pipeline.build_customer_segments(one, END)
    pipeline.build_customer_churn(one, END)
    with pytest.raises(InputError, match="counts-0-r_score.parquet .* missing"):
        pipeline.build_customer_population(three, END)
    sizes = [
        pipeline.build_customer_shard_counts(three, END, k).stats["customers"] for k in range(3)
    ]
    assert (
        min(sizes) > 0
        and sum(sizes) == read_published(three.layout, "customer_features", END).height
    )  # type: ignore[union-attr]
    pipeline.build_customer_population(three, END)
    for k in range(3):
        pipeline.build_customer_shard_rows(three, END, k)
    pipeline.publish_sharded_churn(three, END)
    folder = pipeline.customer_shard_dir(three.layout, END)
    assert folder.exists()  # the segments' rows are still to gather
    pipeline.publish_sharded_segments(three, END)
    assert not folder.exists()
    for table in ("customer_segments", "customer_churn"):
        a = read_published(one.layout, table, END)
        b = read_published(three.layout, table, END)
        assert a is not None and b is not None and a.height > 500
        assert_frame_equal(a, b, check_exact=True)  # same rows, order, values bit for bit
    # a shard file from other inputs (customer_clv republished) is never mixed in
    pipeline.build_customer_shard_counts(three, END, 0)
    clv = read_published(three.layout, "customer_clv", END)
    assert clv is not None
    from clv_pipeline.publish.warehouse import publish_table

    publish_table(three.layout, "customer_clv", clv.head(clv.height - 1), day=END)
    with pytest.raises(InputError, match="other customer_features / customer_clv"):
        pipeline.build_customer_population(three, END)


def test_sharded_state_and_features_equal_unsharded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """State shards, full recompute and incremental (from the state of 25 days before):
    customer_state and customer_features are the unsharded files, footer included."""
    monkeypatch.setattr(pipeline, "SHARD_READ_BATCH", 97)
    one = _home(tmp_path / "one", monkeypatch, 1, tmp_path)  # the state built in one piece
    home = tmp_path / "three"
    layout = Layout(home)
    land_demo_history(layout, tmp_path, n_customers=800, days=DAYS, end=END, seed=23)
    monkeypatch.setenv("CLV_SHARDS", "3")
    monkeypatch.setenv("CLV_STATE_FULL_EVERY_DAYS", "0")  # END merges into the earlier state
    three = load_config(home)
    span = [END - timedelta(days=i) for i in range(DAYS + 1)][::-1]
    pipeline.pull_raw_days(three, span)
    pipeline.validate_days(three, span)
    earlier = END - timedelta(days=25)
    for as_of, mode in ((earlier, "full"), (END, "incremental")):
        with pytest.raises(InputError, match="state shard 0 .* is missing"):
            pipeline.publish_sharded_state(three, as_of)
        modes = {pipeline.build_state_shard(three, as_of, k).stats["mode"] for k in range(3)}
        assert modes == {mode}
        pipeline.publish_sharded_state(three, as_of)
        pipeline.publish_sharded_features(three, as_of)
        assert not pipeline.state_shard_dir(three.layout, as_of).exists()
    for table in ("customer_state", "customer_features"):
        a = one.layout.partition_file(table, "as_of", END)
        b = three.layout.partition_file(table, "as_of", END)
        assert a.read_bytes() == b.read_bytes(), table
    # a shard of another plan (a validated day republished with other rows) is refused
    pipeline.build_state_shard(three, END, 0)
    day = END - timedelta(days=3)
    rows = read_published(three.layout, "validated_transactions", day)
    assert rows is not None and rows.height > 1
    from clv_pipeline.publish.warehouse import publish_table

    publish_table(three.layout, "validated_transactions", rows.head(rows.height - 1), day=day)
    for k in (1, 2):
        pipeline.build_state_shard(three, END, k)
    with pytest.raises(InputError, match="summarises other validated days"):
        pipeline.publish_sharded_state(three, END)


def test_sharded_cohorts_equal_unsharded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cohort shards, each with its own state chain (full at an earlier day, then incremental):
    the sums of the shards give the unsharded cohorts bytes."""
    monkeypatch.setattr(pipeline, "SHARD_READ_BATCH", 97)
    monkeypatch.setenv("CLV_STATE_FULL_EVERY_DAYS", "0")  # END merges into the earlier state
    tables = {}
    for shards in (1, 3):
        config = _home(tmp_path / f"s{shards}", monkeypatch, shards, tmp_path)
        pipeline.build_customer_clv(config, END)
        if shards == 1:
            pipeline.build_cohorts(config, END)
        else:
            earlier = END - timedelta(days=40)
            for k in range(shards):
                _, plan = pipeline.build_cohort_state(config, earlier, k)
                assert plan.mode == "full"
            with pytest.raises(InputError, match="cohort shard 0 .* is missing"):
                pipeline.publish_sharded_cohorts(config, END)
            modes = {
                pipeline.build_cohort_shard(config, END, k).stats["state_mode"]
                for k in range(shards)
            }
            assert modes == {"incremental"}
            pipeline.publish_sharded_cohorts(config, END)
            assert not pipeline.cohort_shard_dir(config.layout, END).exists()
        tables[shards] = config.layout.partition_file("cohorts", "as_of", END).read_bytes()
    assert tables[1] == tables[3]


def test_a_stale_shard_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _home(tmp_path / "two", monkeypatch, 2, tmp_path)
    for k in range(2):
        pipeline.build_shard_inputs(config, END, k)
    pipeline.fit_shards(config, END)
    with pytest.raises(InputError, match="activity of .* is missing"):
        pipeline.value_shard(config, END, 0)
    pipeline.build_shard_activity(config, END)
    pipeline.value_shard(config, END, 0)
    with pytest.raises(InputError, match="customer_clv shard 1 .* is missing"):
        pipeline.publish_sharded_clv(config, END)
    # customer_features rebuilt from other data: every shard file is refused, not mixed in
    monkeypatch.setenv("CLV_STATE_REBUILD", "full")
    state = read_published(config.layout, "customer_features", END)
    assert state is not None
    from clv_pipeline.publish.warehouse import publish_table

    publish_table(config.layout, "customer_features", state.head(700), day=END)
    with pytest.raises(InputError, match="another customer_features"):
        pipeline.value_shard(config, END, 1)


def _run_home(home: Path, export: Path, settings: dict[str, object]) -> dict[str, bytes]:
    """Import ``export``, run the daily job for END with ``settings`` in clv.toml (worker
    processes read them there too); the bytes of every snapshot table file."""
    import_files([export], Layout(home))
    save_settings(home, {**SMALL, **settings})
    config = load_config(home, environ={})
    outcome = execute(config, DAILY_JOB, partition=END)
    assert outcome.success, outcome
    layout = Layout(home)
    files = {}
    for name, table in TABLES.items():
        if table.partition_key == "as_of":
            for day in layout.published_days(name, "as_of"):
                files[f"{name} {day}"] = layout.partition_file(name, "as_of", day).read_bytes()
    return files


SMALL = {
    "start_date": END - timedelta(days=DAYS),
    "scale.backtest_holdout_days": 30,
    "models.min_customers": 20,
    "models.min_repeat_customers": 5,
}


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "history.parquet"
    generate_history(n_customers=600, days=DAYS, end=END, seed=31).write_parquet(path)
    return path


@pytest.fixture(scope="module")
def one_shard(export: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return _run_home(tmp_path_factory.mktemp("one") / "home", export, {})


@pytest.mark.parametrize("executor", ["in_process", "multiprocess"])
def test_four_shards_publish_the_bytes_of_one(
    export: Path,
    one_shard: dict[str, bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    executor: str,
) -> None:
    for name in [n for n in os.environ if n.startswith("CLV_")]:
        monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("CLV_HOME", str(home))  # worker processes find the data home here
    four = _run_home(home, export, {"scale.shards": 4, "scale.executor": executor})
    assert sorted(four) == sorted(one_shard)
    tables = {key.split()[0] for key in four}
    assert {"customer_clv", "customer_segments", "customer_churn", "cohorts", "kpis"} <= tables
    assert [k for k in four if four[k] != one_shard[k]] == []
    instance = get_instance(load_config(home, environ={}))
    steps = {
        e.step_key
        for e in instance.all_logs(
            instance.get_runs(limit=1)[0].run_id, of_type=dg.DagsterEventType.STEP_SUCCESS
        )
    }
    assert {f"clv_shard_{k}_values" for k in range(4)} <= steps and "clv_fit" in steps
    assert {f"customer_shard_{k}_rows" for k in range(4)} | {"customer_population"} <= steps
    assert {f"state_shard_{k}" for k in range(4)} | {f"cohort_shard_{k}" for k in range(4)} <= steps


def test_a_failed_shard_is_rerun_alone(
    export: Path,
    one_shard: dict[str, bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On-call: one shard's step fails (disk full while it writes), `clv rerun <run>` re-executes
    that shard and what follows it only, and the day publishes the bytes of one shard."""
    for name in [n for n in os.environ if n.startswith("CLV_")]:
        monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("CLV_HOME", str(home))
    monkeypatch.setenv("CLV_FAILPOINT", "oserror:shard:2:values")  # step processes inherit it
    import_files([export], Layout(home))
    save_settings(home, {**SMALL, "scale.shards": 4, "scale.executor": "multiprocess"})
    config = load_config(home, environ={})
    failed = execute(config, DAILY_JOB, partition=END)
    assert not failed.success
    instance = get_instance(config)

    def steps(run_id: str, kind: dg.DagsterEventType) -> set[str]:
        return {e.step_key for e in instance.all_logs(run_id, of_type=kind) if e.step_key}

    assert steps(failed.run_id, dg.DagsterEventType.STEP_FAILURE) == {"clv_shard_2_values"}
    assert "clv_shard_3_values" in steps(failed.run_id, dg.DagsterEventType.STEP_SUCCESS)
    assert "customer_clv" not in steps(failed.run_id, dg.DagsterEventType.STEP_SUCCESS)
    monkeypatch.delenv("CLV_FAILPOINT")
    rerun = operations.rerun_run(config, failed.run_id)
    assert rerun.success
    done = steps(rerun.run_id, dg.DagsterEventType.STEP_SUCCESS)
    assert {"clv_shard_2_values", "customer_clv", "clv_snapshot"} <= done
    assert not done & {"clv_fit", "clv_shard_0_values", "clv_shard_0_inputs", "customer_state"}
    files = {}
    layout = Layout(home)
    for name, table in TABLES.items():
        if table.partition_key == "as_of":
            for day in layout.published_days(name, "as_of"):
                files[f"{name} {day}"] = layout.partition_file(name, "as_of", day).read_bytes()
    assert [k for k in files if files[k] != one_shard.get(k)] == []
    assert sorted(files) == sorted(one_shard)
