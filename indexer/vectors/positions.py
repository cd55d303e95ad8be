"""The exact side of the approximate kinds: positions → (file id, live flag, float32 vector).

An approximate FAISS index knows vectors only by their position 0..n-1 (``candidates``); this
store maps positions to file ids, marks removed positions dead (HNSW cannot delete), and
scores vectors exactly: the re-ranking of candidates and the brute-force search of small
filters and of the not-yet-indexed tail.
"""

from __future__ import annotations

import faiss
import numpy as np


class PositionStore:
    """Plain arrays at positions 0..n-1 plus the sorted ids of the live ones."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.n = 0  # positions in use
        self.ext = np.empty(0, np.int64)  # position → file id
        self.live = np.empty(0, bool)
        self.vec: np.ndarray = np.empty((0, dim), np.float32)
        self._keys = np.empty(0, np.int64)  # sorted ids of live positions
        self._keypos = np.empty(0, np.int64)  # their positions
        self._table: np.ndarray | None = None  # id → position, when ids are dense

    @classmethod
    def from_arrays(cls, ext: np.ndarray, live: np.ndarray, vectors: np.ndarray) -> PositionStore:
        """A store over saved arrays (``vectors`` may be a memory map, copied on first add)."""
        store = cls(vectors.shape[1])
        store.ext, store.live, store.n = ext, live, len(ext)
        if len(vectors):
            store.vec = vectors
        alive = np.flatnonzero(live)
        order = np.argsort(ext[alive], kind="stable")
        store._keys, store._keypos = ext[alive][order], alive[order]
        return store

    # --- contents ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._keys)

    def ids(self) -> np.ndarray:
        return self._keys.copy()

    def live_positions(self) -> np.ndarray:
        """Positions of the live vectors, ascending."""
        return np.sort(self._keypos)

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Positions of the live ``ids`` (unknown ids are left out)."""
        where = np.searchsorted(self._keys, ids)
        found = where < len(self._keys)
        found[found] = self._keys[where[found]] == ids[found]
        return self._keypos[where[found]]

    def append(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Put ``vectors`` at new positions; a re-added id's old position dies."""
        self.kill(self.positions(ids))
        start, end = self.n, self.n + len(ids)
        self._reserve(end)
        self.ext[start:end], self.live[start:end], self.vec[start:end] = ids, True, vectors
        self.n = end
        keys = np.concatenate([self._keys, ids])
        order = np.argsort(keys, kind="stable")
        self._keys = keys[order]
        self._keypos = np.concatenate([self._keypos, np.arange(start, end)])[order]
        self._table = None

    def kill(self, positions: np.ndarray) -> None:
        if len(positions):
            self.live[positions] = False
            keep = ~np.isin(self._keypos, positions)
            self._keys, self._keypos = self._keys[keep], self._keypos[keep]
            self._table = None

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        positions = self.positions(ids)
        if len(positions) != len(ids):
            missing = np.setdiff1d(ids, self._keys)
            raise KeyError(f"no vector with id {int(missing[0])}")
        return np.array(self.vec[positions], dtype=np.float32)

    def content(self) -> tuple[np.ndarray, np.ndarray]:
        order = self.live_positions()
        return self.ext[order], np.array(self.vec[order], dtype=np.float32)

    def file_ids(self, positions: np.ndarray) -> np.ndarray:
        """The file ids at ``positions`` (-1 stays -1)."""
        return np.where(positions >= 0, self.ext[np.maximum(positions, 0)], -1)

    def _reserve(self, size: int) -> None:
        """Grow the arrays geometrically (a memory-mapped file becomes a RAM copy here)."""
        if size <= len(self.ext) and self.vec.flags.writeable:
            return
        capacity = max(size, int(len(self.ext) * 1.5) + 1024)
        ext, live = np.empty(capacity, np.int64), np.zeros(capacity, bool)
        vec = np.empty((capacity, self.dim), np.float32)
        ext[: self.n], live[: self.n], vec[: self.n] = (
            self.ext[: self.n],
            self.live[: self.n],
            self.vec[: self.n],
        )
        self.ext, self.live, self.vec = ext, live, vec

    # --- filters -------------------------------------------------------------------------

    def mask(self, ids: np.ndarray) -> np.ndarray:
        """A boolean mask over positions: True where a live vector of ``ids`` sits."""
        mask = np.zeros(self.n, bool)
        mask[self._lookup(ids)] = True
        return mask

    def _lookup(self, ids: np.ndarray) -> np.ndarray:
        """Positions of live ``ids`` through a direct table when ids are dense (row keys
        are), which beats a binary search over 1M keys by ~10x for large filters."""
        if self._table is None and len(self._keys) and self._keys[-1] < 4 * len(self) + 1024:
            self._table = np.full(int(self._keys[-1]) + 1, -1, np.int64)
            self._table[self._keys] = self._keypos
        if self._table is None:
            return self.positions(ids)
        inside = ids[(ids >= 0) & (ids < len(self._table))]
        found = self._table[inside]
        return found[found >= 0]

    def selected(self, mask: np.ndarray | None) -> np.ndarray:
        """Sorted positions a query may return (all live ones without a filter)."""
        return np.flatnonzero(self.live[: self.n] if mask is None else mask)

    # --- exact scoring -------------------------------------------------------------------

    def rerank(
        self, queries: np.ndarray, candidates: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact inner products of the candidates; the best ``k`` per query, best first."""
        scores = np.full((len(queries), k), -np.inf, np.float32)
        positions = np.full((len(queries), k), -1, np.int64)
        step = 64  # queries per gather: bounds the (q, c, d) copy to ~32 MB
        for start in range(0, len(queries), step):
            cand = candidates[start : start + step]
            valid = cand >= 0
            gathered = self.vec[np.where(valid, cand, 0)]  # (q, c, d)
            exact = np.matmul(gathered, queries[start : start + step, :, None])[..., 0]
            exact[~valid] = -np.inf
            top = np.argsort(-exact, axis=1, kind="stable")[:, :k]
            width = top.shape[1]
            scores[start : start + step, :width] = np.take_along_axis(exact, top, axis=1)
            positions[start : start + step, :width] = np.where(
                np.take_along_axis(valid, top, axis=1), np.take_along_axis(cand, top, axis=1), -1
            )
        return scores, positions

    def exact(
        self, queries: np.ndarray, k: int, selected: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Brute force over the vectors at ``selected`` positions: ``(scores, positions)``."""
        found = min(k, len(selected))
        scores = np.full((len(queries), k), -np.inf, np.float32)
        positions = np.full((len(queries), k), -1, np.int64)
        if found:
            base = np.ascontiguousarray(self.vec[selected])
            top_scores, rows = faiss.knn(queries, base, found, metric=faiss.METRIC_INNER_PRODUCT)
            scores[:, :found], positions[:, :found] = top_scores, selected[rows]
        return scores, positions


COMPACT_FRACTION = 0.3  # dead positions tolerated before the index is rebuilt without them


class StoredBackend:
    """What the exact and the approximate backends share: their vectors live in a
    ``PositionStore`` (``self._store``), removal marks positions dead, and once too many are
    dead the subclass's ``_compact`` rebuilds its FAISS index without them."""

    _store: PositionStore
    _live_bitmap: object

    def __len__(self) -> int:
        return len(self._store)

    def ids(self) -> np.ndarray:
        return self._store.ids()

    def remove(self, ids: np.ndarray) -> int:
        store = self._store
        dead = store.positions(ids)
        store.kill(dead)
        self._live_bitmap = None
        if store.n - len(store) > COMPACT_FRACTION * store.n and store.n > 1000:
            self._compact()
        return len(dead)

    def _compact(self) -> None:
        raise NotImplementedError
