"""Customer shards: a stable hash of ``customer_id`` splits per-customer work into N parts.

The hash is 64-bit FNV-1a over the id's UTF-8 bytes (http://www.isthe.com/chongo/tech/comp/fnv/),
computed here with numpy: unlike polars' or DuckDB's ``hash``, it is specified, so a customer's
shard never moves between library versions, machines or runs. ``shard = fnv1a64(id) % N``.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
#: The column a sharded step adds while it works (never published).
SHARD = "_shard"


def fnv1a64(ids: pl.Series) -> np.ndarray:
    """64-bit FNV-1a of each string of ``ids`` (UTF-8 bytes); a null hashes as the empty string."""
    array = ids.cast(pl.String).fill_null("").to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    array = array.cast(pa.large_string())
    n = len(array)
    hashes = np.full(n, FNV_OFFSET, dtype=np.uint64)
    if n == 0:
        return hashes
    _, offsets_buf, data_buf = array.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[array.offset : array.offset + n + 1]
    data = (
        np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    )
    starts = offsets[:-1]
    lengths = offsets[1:] - starts
    with np.errstate(over="ignore"):  # FNV multiplies modulo 2**64 on purpose
        for position in range(int(lengths.min())):  # every id has this byte
            hashes ^= data[starts + position]
            hashes *= FNV_PRIME
        for position in range(int(lengths.min()), int(lengths.max())):
            rows = np.flatnonzero(lengths > position)
            byte = data[starts[rows] + position].astype(np.uint64)
            hashes[rows] = (hashes[rows] ^ byte) * FNV_PRIME
    return hashes


def shard_of(ids: pl.Series, shards: int) -> pl.Series:
    """The shard (0 .. ``shards`` - 1) of each customer id."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    if shards == 1:
        return pl.Series(SHARD, np.zeros(ids.len(), dtype=np.uint32))
    return pl.Series(SHARD, (fnv1a64(ids) % np.uint64(shards)).astype(np.uint32))


def in_shard(frame: pl.DataFrame, shard: int, shards: int) -> pl.DataFrame:
    """The rows of ``frame`` whose ``customer_id`` falls in ``shard`` of ``shards``, in order."""
    if shards == 1:
        return frame
    mask = shard_of(frame.get_column("customer_id"), shards) == shard
    return frame.filter(mask)
