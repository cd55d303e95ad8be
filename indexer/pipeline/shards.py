"""Embedding shards of a distributed run, and one index built from them.

A shard is ``NAME.npy`` (float32 vectors, one row per file) + ``NAME.parquet`` (``id``,
``path``), written by a worker and made durable before the driver commits the rows; the
parquet file is written last, atomically, and marks the shard complete. Names start with the
creation time in nanoseconds, so the newest vector of an id wins when shards are merged.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np

from encoders.atomic import atomic_write
from indexer.vectors.index import APPROX_THRESHOLD, VectorIndex, resolve_kind

SAMPLE_SIZE = 262_144  # training vectors drawn across shards (64 per list at 4096 lists)


def write_shard(folder: Path, ids: np.ndarray, vectors: np.ndarray, paths: list[str]) -> str:
    """Durably write ``name.npy`` (vectors) then ``name.parquet`` (ids, paths); the parquet
    file marks the shard complete. Names sort by creation time (newest vector wins)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
    array = np.ascontiguousarray(vectors, dtype=np.float32)
    atomic_write(folder / f"{name}.npy", lambda tmp: _save_npy(tmp, array))
    table = pa.table({"id": pa.array(ids, pa.int64()), "path": pa.array(paths, pa.string())})
    atomic_write(folder / f"{name}.parquet", lambda tmp: pq.write_table(table, tmp))
    return name


def _save_npy(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as handle:  # a handle: given a path, np.save would append ".npy"
        np.save(handle, array)


def read_shards(folder: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Complete shards, newest first: ``(ids, vectors)`` with vectors memory-mapped."""
    import pyarrow.parquet as pq

    out = []
    for meta in sorted(folder.glob("*.parquet"), reverse=True) if folder.is_dir() else []:
        ids = pq.read_table(meta, columns=["id"]).column("id").to_numpy().astype(np.int64)
        vectors = np.load(meta.with_suffix(".npy"), mmap_mode="r")
        out.append((ids, vectors))
    return out


def build_from_shards(
    index: VectorIndex,
    folder: Path,
    committed: np.ndarray,
    kind: str,
    threshold: int = APPROX_THRESHOLD,
) -> VectorIndex:
    """Add the shards' vectors of ``committed`` ids not yet in ``index`` (newest shard wins).

    When the result outgrows ``index``'s kind (``auto``), a new approximate index is trained
    on a sample drawn across the existing vectors and all shards, then everything is added."""
    shards = read_shards(folder)
    seen = index.ids()
    keep = []
    for ids, _ in shards:
        mask = np.isin(ids, committed) & ~np.isin(ids, seen)
        keep.append(mask)
        seen = np.concatenate([seen, ids[mask]])
    total = len(seen)
    target = index
    if index.kind == "flat" and resolve_kind(kind, total, threshold) != "flat":
        target = VectorIndex.create(index.dim, kind, expected_size=total, threshold=threshold)
        target.train(_sample(index, shards, keep))
        if len(index):
            old_ids = index.ids()
            target.add(old_ids, index.reconstruct(old_ids))
    for (ids, vectors), mask in zip(shards, keep, strict=True):
        if mask.any():
            target.add(ids[mask], np.asarray(vectors[mask], dtype=np.float32))
    return target


def _sample(
    index: VectorIndex, shards: list[tuple[np.ndarray, np.ndarray]], keep: list[np.ndarray]
) -> np.ndarray:
    rng = np.random.default_rng(0)
    total = len(index) + sum(int(m.sum()) for m in keep)
    rate = min(1.0, SAMPLE_SIZE / max(total, 1))
    parts = []
    if len(index):
        ids = index.ids()
        parts.append(index.reconstruct(ids[rng.random(len(ids)) < rate]))
    for (_, vectors), mask in zip(shards, keep, strict=True):
        rows = np.flatnonzero(mask & (rng.random(len(mask)) < rate))
        parts.append(np.asarray(vectors[rows], dtype=np.float32))
    return np.concatenate(parts)
