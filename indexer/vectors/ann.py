"""Approximate kinds of the VectorIndex: FAISS candidates re-ranked exactly.

An approximate FAISS index (``candidates``: ``IVF…,PQ…`` or ``HNSW…,SQ8``) holds *positions*
0..n-1; the float32 vectors, their file ids and a live flag sit in plain arrays at the same
positions (``positions``). A query asks the approximate index for ``rerank`` candidates
(filters and removed positions excluded by an ``IDSelectorBitmap`` inside the FAISS search),
scores them exactly against the float32 vectors and keeps the top k. Removal marks a position
dead (HNSW cannot delete); when a third of the positions are dead the index is compacted.
Until enough vectors exist to train the approximate index, the not-yet-indexed tail is
searched exactly.

On disk it is one file (``vector_io``), so renaming it is atomic; the vectors are memory-mapped
on load (1M × 512 is 2 GB).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from indexer.vectors.candidates import (
    KINDS,
    ApproxParams,
    bitmap_selector,
    search_candidates,
    train_index,
)
from indexer.vectors.container import read_container, write_container
from indexer.vectors.positions import COMPACT_FRACTION, PositionStore, StoredBackend

__all__ = ["COMPACT_FRACTION", "EXACT_LIMIT", "KINDS", "ApproxBackend", "ApproxParams"]

log = logging.getLogger(__name__)

EXACT_LIMIT = 8192  # a filter this selective is answered by brute force over its vectors


class ApproxBackend(StoredBackend):
    """A ``PositionStore`` (ids, live flags, float32 vectors) plus an approximate FAISS index
    over its positions."""

    def __init__(self, dim: int, params: ApproxParams, expected_size: int | None = None) -> None:
        self.kind, self.dim, self.params = params.kind, dim, params
        self.expected_size = expected_size or 0
        self.trained_size = 0  # the collection size the trained index was sized for
        self._store = PositionStore(dim)
        self._index: Any = None  # trained approximate index over positions [0, _indexed)
        self._indexed = 0
        self._live_bitmap: Any = None

    @classmethod
    def empty(
        cls, dim: int, params: ApproxParams, expected_size: int | None = None
    ) -> ApproxBackend:
        return cls(dim, params, expected_size)

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, params: ApproxParams) -> ApproxBackend:
        """Train on (a sample of) ``vectors`` and index them all at once."""
        params = replace(params, train_min=min(params.train_min, len(ids)))
        backend = cls(vectors.shape[1], params, len(ids))
        backend.add(ids, vectors)
        return backend

    # --- contents ------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._store.append(ids, vectors)  # a re-added id replaces its old vector
        self._live_bitmap = None
        self._index_tail()

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        return self._store.reconstruct(ids)

    def content(self) -> tuple[np.ndarray, np.ndarray]:
        return self._store.content()

    # --- the approximate index -----------------------------------------------------------

    def _index_tail(self) -> None:
        """Train once enough vectors exist, then add every position not yet indexed."""
        if self._index is None:
            if len(self) < self.params.train_min:
                return
            self._train()
        n = self._store.n
        if self._indexed < n:
            self._index.add(np.ascontiguousarray(self._store.vec[self._indexed : n]))
            self._indexed = n

    def train(self, sample: np.ndarray) -> None:
        """Train on ``sample`` now (e.g. drawn across the shards of a distributed run), so the
        vectors added next go straight into the approximate index."""
        if self._index is None:
            self._train(sample)
            self._index_tail()

    def _train(self, sample: np.ndarray | None = None) -> None:
        size = self.trained_size = max(len(self), self.expected_size)
        self.params = self.params.sized(self.dim, size)
        if sample is None:
            rng = np.random.default_rng(0)
            live = self._store.live_positions()
            count = min(len(live), self.params.sample_size())
            sample = self._store.vec[np.sort(rng.choice(live, count, replace=False))]
        self._index, self._indexed = train_index(self.params, self.dim, sample), 0

    def _compact(self) -> None:
        """Rebuild positions and the index without dead vectors (training kept)."""
        n = self._store.n
        log.info("compacting: %d of %d positions are removed vectors", n - len(self), n)
        ids, vectors = self.content()
        index, trained_size = self._index, self.trained_size
        self.__init__(self.dim, self.params, self.expected_size)  # type: ignore[misc]
        if index is not None:
            index.reset()
            self._index, self.trained_size = index, trained_size
        self.add(ids, vectors)

    # --- search --------------------------------------------------------------------------

    def _selector(self, mask: np.ndarray | None) -> Any:
        """An ``IDSelectorBitmap`` over indexed positions, or None when all are eligible."""
        if mask is not None:
            return bitmap_selector(mask[: self._indexed])
        if len(self) == self._store.n:
            return None  # nothing removed, nothing filtered: no selector at all
        if self._live_bitmap is None:
            self._live_bitmap = bitmap_selector(self._store.live[: self._indexed])
        return self._live_bitmap

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        store = self._store
        mask = None if allowed is None else store.mask(allowed)
        count = len(self) if mask is None else int(np.count_nonzero(mask))
        if self._index is None or count <= EXACT_LIMIT:
            scores, positions = store.exact(queries, k, store.selected(mask))
            return scores, store.file_ids(positions)
        wanted = min(max(self.params.rerank, 4 * k), self._indexed)
        candidates = search_candidates(
            self._index, self.params, queries, wanted, self._selector(mask)
        )
        if self._indexed < store.n:  # vectors added before training: searched exactly
            tail = store.selected(mask)
            _, extra = store.exact(queries, k, tail[tail >= self._indexed])
            candidates = np.concatenate([candidates, extra], axis=1)
        scores, found = store.rerank(queries, candidates, k)
        short = (found >= 0).sum(axis=1) < min(k, count)
        if short.any():  # a filter the approximate index could not fill: exact for those rows
            scores[short], found[short] = store.exact(queries[short], k, store.selected(mask))
        return scores, store.file_ids(found)

    def range_search(self, queries: np.ndarray, threshold: float) -> list:
        """Near neighbours above ``threshold``: a batched top-k search, k widened (×4) only
        for the queries whose k-th result still passes the threshold."""
        out: list = [None] * len(queries)
        todo, k = np.arange(len(queries)), 64
        while len(todo):
            width = min(k, len(self))
            scores, ids = self.search(queries[todo], width, None)
            done = (scores[:, -1] < threshold) | (width >= len(self))
            for row, row_scores, row_ids in zip(todo[done], scores[done], ids[done], strict=True):
                keep = (row_ids >= 0) & (row_scores >= threshold)
                out[row] = (row_ids[keep], row_scores[keep])
            todo, k = todo[~done], k * 4
        return out

    # --- persistence ---------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        info = {
            "params": asdict(self.params),
            "positions": self._store.n,
            "trained": self._index is not None,
        }
        if self._index is not None:
            info["factory"] = self.params.factory(self.dim)
        return info

    def write(self, path: Path) -> None:
        store, n = self._store, self._store.n
        header = {
            "kind": self.kind,
            "dim": self.dim,
            "n": n,
            "indexed": self._indexed,
            "expected_size": self.expected_size,
            "trained_size": self.trained_size,
            "params": asdict(self.params),
        }
        write_container(path, header, store.ext[:n], store.live[:n], store.vec[:n], self._index)

    @classmethod
    def read(cls, path: Path) -> ApproxBackend:
        header, ext, live, vectors, index = read_container(path)
        backend = cls(header["dim"], ApproxParams(**header["params"]), header["expected_size"])
        backend._store = PositionStore.from_arrays(ext, live, vectors)
        backend._index, backend._indexed = index, header["indexed"]
        backend.trained_size = header.get("trained_size", 0)
        return backend
