"""Parquet files on disk (a leaf module: stdlib, polars and pyarrow only).

* atomic writes: hidden temp file on the same filesystem, fsync, ``os.replace``;
* the content digest kept in a published file's footer (written by ``publish``, read by the
  incremental state in ``features``).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import TypeVar

import polars as pl
import pyarrow.parquet as pq

ROW_GROUP_SIZE = 256 * 1024
DIGEST_KEY = "clv.content_digest"
# threads writing many small partition files (a first run catching up two years is ~730 days per
# table): parquet encoding, file I/O and fsync release the GIL, so they overlap
IO_WORKERS = min(8, 2 * (os.cpu_count() or 1))

_T = TypeVar("_T")
_R = TypeVar("_R")


def map_in_threads(work: Callable[[_T], _R], items: Sequence[_T], *, workers: int) -> list[_R]:
    """``[work(item) for item in items]``, on ``workers`` threads when more than one.

    Results come back in the order of ``items``; an exception is raised after the running items
    finish (the items not started yet are dropped).
    Each item must write its own files, so the bytes do not depend on the threads' order.
    """
    return list(iter_in_threads(work, items, workers=workers))


def iter_in_threads(
    work: Callable[[_T], _R], items: Sequence[_T], *, workers: int, ahead: int | None = None
) -> Iterator[_R]:
    """:func:`map_in_threads`, each result yielded as soon as it and those before it are done
    (the caller handles the first items while the threads work on the next). ``ahead`` bounds
    the items started and not yet taken by the caller (memory: a catch-up's next days are read
    while the caller validates the current ones, not all 730 at once); default all."""
    if workers <= 1 or len(items) <= 1:
        yield from (work(item) for item in items)
        return
    todo = iter(items)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="clv-io")
    try:
        started = deque(pool.submit(work, item) for item in islice(todo, ahead or len(items)))
        while started:
            result = started.popleft().result()
            for item in islice(todo, 1):
                started.append(pool.submit(work, item))
            yield result
    finally:
        # a failure or an interrupt (Ctrl-C, the caller stopping): the items not started are
        # dropped, the running ones finish (each writes only its own files)
        pool.shutdown(wait=True, cancel_futures=True)


def write_parquet_atomic(
    frame: pl.DataFrame, target: Path, metadata: dict[str, str] | None = None
) -> Path:
    """Write ``frame`` to ``target`` so readers see the old file or the new one, never a part.

    zstd compression, column statistics on, row groups of 256k rows; ``metadata`` goes in the
    footer (replaced atomically with the data).
    """
    return replace_atomically(target, lambda tmp: write_parquet(frame, tmp, metadata))


def replace_atomically(target: Path, write: Callable[[Path], object]) -> Path:
    """``write`` a hidden temp file beside ``target``, then ``os.replace`` it onto ``target``
    (readers see the old file or the new one, never a part); the temp never outlives a failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        write(tmp)
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def write_parquet(frame: pl.DataFrame, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write and fsync one parquet file (not atomic by itself); ``metadata`` goes in the footer.

    polars' multi-threaded writer: about twice as fast as ``pyarrow.parquet.write_table`` on a
    million-row table, and smaller files.
    """
    frame.write_parquet(
        path,
        compression="zstd",
        statistics=True,
        row_group_size=ROW_GROUP_SIZE,
        metadata=metadata or None,
    )
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(folder: Path) -> None:
    """Persist a rename in ``folder`` (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def content_digest(frame: pl.DataFrame) -> str:
    """A digest of the rows' content that stays the same when a day is republished as is.

    Row order and the lineage columns (names starting with ``_``, e.g. ``_source_file``) are left
    out: the same rows delivered in another order or file digest the same, so what is derived
    from them (``customer_state``, whose footer records these digests) is the same bytes too.
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(frame.height).encode())
    content = frame.select(c for c in frame.columns if not c.startswith("_"))
    if frame.height and content.width:
        digest.update(content.hash_rows(seed=0).sort().to_numpy().tobytes())
    return digest.hexdigest()


def read_footer(path: Path | str) -> pq.FileMetaData:
    """A parquet file's footer (row count, schema, key-value metadata), read through an open
    file: ``pq.read_metadata`` of a path resolves a filesystem first, 0.75 ms a file against
    0.15 ms (a catch-up reads hundreds of day files' footers)."""
    with Path(path).open("rb") as handle:
        return pq.read_metadata(handle)


def stored_digest(path: Path) -> str | None:
    """The content digest in a parquet file's footer (None for files without one)."""
    metadata = read_footer(path).metadata or {}
    value = metadata.get(DIGEST_KEY.encode())
    return value.decode() if value else None
