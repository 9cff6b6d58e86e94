"""The Dagster instance of a data home: ``<home>/dagster`` is its ``DAGSTER_HOME``.

Everything Dagster writes (run and event storage, schedules, compute logs, ``.nux``, ``logs``)
goes under the data home, never into the checkout. ``make dev`` / ``dg dev`` and the daemon use
the same folder, so ``clv status`` and the UI show the same runs.
"""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

import dagster as dg
from dagster._core.instance.ref import InstanceRef

from clv_pipeline.config import ClvConfig
from clv_pipeline.runs.storage import storage_data


def packaged_instance_yaml(postgres: bool = False) -> Path:
    name = "dagster.postgres.yaml" if postgres else "dagster.yaml"
    return Path(str(resources.files("clv_pipeline") / "resources" / name))


def instance_home(config: ClvConfig) -> Path:
    """The folder holding the instance's ``dagster.yaml`` (written from the packaged copy).

    ``<home>/dagster`` with SQLite storage; ``<home>/dagster/postgres`` when the PostgreSQL run
    storage URL is set (``CLV_DAGSTER_POSTGRES_URL``, read by Dagster from the environment).
    """
    postgres = bool(config.operations.dagster_postgres_url)
    folder = config.layout.dagster / "postgres" if postgres else config.layout.dagster
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "dagster.yaml"
    source = packaged_instance_yaml(postgres)
    if not target.exists() or target.read_bytes() != source.read_bytes():
        shutil.copyfile(source, target)
    return folder


def get_instance(config: ClvConfig) -> dg.DagsterInstance:
    """``$DAGSTER_HOME``'s instance when set (a team's daemon-managed instance), else the data
    home's own (:func:`instance_home`)."""
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    ref = InstanceRef.from_dir(str(instance_home(config)))
    # Dagster's SQLite storage with the event log's connections kept open (runs/storage.py);
    # the PostgreSQL storage as it is
    ref = ref._replace(storage_data=storage_data(ref.storage_data))
    return dg.DagsterInstance.from_ref(ref)
