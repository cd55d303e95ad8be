"""Approximate kinds of the VectorIndex: FAISS candidates re-ranked exactly.

An approximate FAISS index (``IVF…,PQ…`` or ``HNSW…,SQ8``) holds *positions* 0..n-1; the
float32 vectors, their file ids and a live flag sit in plain arrays at the same positions.
A query asks the approximate index for ``rerank`` candidates (filters and removed positions
excluded by an ``IDSelectorBitmap`` inside the FAISS search), scores them exactly against the
float32 vectors and keeps the top k. Removal marks a position dead (HNSW cannot delete); when
a third of the positions are dead the index is compacted. Until enough vectors exist to train
the approximate index, the not-yet-indexed tail is searched exactly.

On disk it is one file (``vector_io``), so renaming it is atomic; the vectors are memory-mapped
on load (1M × 512 is 2 GB).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from indexer.vector_io import gpu_available, read_container, write_container

log = logging.getLogger(__name__)

KINDS = ("ivfpq", "hnsw")
EXACT_LIMIT = 8192  # a filter this selective is answered by brute force over its vectors
COMPACT_FRACTION = 0.3  # dead positions tolerated before the index is rebuilt without them


@dataclass(frozen=True)
class ApproxParams:
    """Build and search settings of an approximate index (recorded in library.json)."""

    kind: str
    nlist: int = 0  # IVF lists; 0: chosen from the size at training time (~2·√n)
    pq_m: int = 0  # PQ sub-quantizers (8 bits each); 0: dim / 8
    nprobe: int = 48
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    rerank: int = 256  # candidates scored exactly per query (at least 4·k); 128 loses
    # recall on dense real embeddings (near-identical photos: top-100 all above cosine 0.97)
    train_min: int = 10_000  # vectors needed before training; the tail is exact until then

    def factory(self, dim: int) -> str:
        if self.kind == "hnsw":
            return f"HNSW{self.hnsw_m},SQ8"
        return f"IVF{self.nlist},PQ{self.pq_m}x8"

    def sized(self, dim: int, size: int) -> ApproxParams:
        """Fill the size-dependent settings for a collection of ``size`` vectors."""
        if self.kind != "ivfpq":
            return self
        nlist = self.nlist or int(np.clip(2 ** round(math.log2(2 * math.sqrt(size))), 16, 65536))
        pq_m = self.pq_m or next(m for m in range(max(dim // 8, 1), 0, -1) if dim % m == 0)
        return replace(self, nlist=nlist, pq_m=pq_m)


class ApproxBackend:
    """Positions → (id, live, float32 vector) arrays plus an approximate FAISS index."""

    def __init__(self, dim: int, params: ApproxParams, expected_size: int | None = None) -> None:
        self.kind, self.dim, self.params = params.kind, dim, params
        self.expected_size = expected_size or 0
        self.trained_size = 0  # the collection size the trained index was sized for
        self._n = 0  # positions in use
        self._ext = np.empty(0, np.int64)  # position → file id
        self._live = np.empty(0, bool)
        self._vec: np.ndarray = np.empty((0, dim), np.float32)
        self._keys = np.empty(0, np.int64)  # sorted ids of live positions
        self._keypos = np.empty(0, np.int64)  # their positions
        self._index: Any = None  # trained approximate index over positions [0, _indexed)
        self._indexed = 0
        self._live_bitmap: Any = None
        self._table: np.ndarray | None = None  # id → position, when ids are dense

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

    def __len__(self) -> int:
        return len(self._keys)

    def ids(self) -> np.ndarray:
        return self._keys.copy()

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Positions of the live ``ids`` (unknown ids are left out)."""
        where = np.searchsorted(self._keys, ids)
        found = where < len(self._keys)
        found[found] = self._keys[where[found]] == ids[found]
        return self._keypos[where[found]]

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._kill(self.positions(ids))  # a re-added id replaces its old vector
        start, end = self._n, self._n + len(ids)
        self._reserve(end)
        self._ext[start:end], self._live[start:end], self._vec[start:end] = ids, True, vectors
        self._n = end
        keys = np.concatenate([self._keys, ids])
        order = np.argsort(keys, kind="stable")
        self._keys = keys[order]
        self._keypos = np.concatenate([self._keypos, np.arange(start, end)])[order]
        self._live_bitmap = self._table = None
        self._index_tail()

    def remove(self, ids: np.ndarray) -> int:
        dead = self.positions(ids)
        self._kill(dead)
        if self._n - len(self) > COMPACT_FRACTION * self._n and self._n > 1000:
            self._compact()
        return len(dead)

    def _kill(self, positions: np.ndarray) -> None:
        if len(positions):
            self._live[positions] = False
            keep = ~np.isin(self._keypos, positions)
            self._keys, self._keypos = self._keys[keep], self._keypos[keep]
            self._live_bitmap = self._table = None

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        positions = self.positions(ids)
        if len(positions) != len(ids):
            missing = np.setdiff1d(ids, self._keys)
            raise KeyError(f"no vector with id {int(missing[0])}")
        return np.array(self._vec[positions], dtype=np.float32)

    def content(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.sort(self._keypos)
        return self._ext[order], np.array(self._vec[order], dtype=np.float32)

    def _reserve(self, size: int) -> None:
        """Grow the arrays geometrically (a memory-mapped file becomes a RAM copy here)."""
        if size <= len(self._ext) and self._vec.flags.writeable:
            return
        capacity = max(size, int(len(self._ext) * 1.5) + 1024)
        ext, live = np.empty(capacity, np.int64), np.zeros(capacity, bool)
        vec = np.empty((capacity, self.dim), np.float32)
        ext[: self._n], live[: self._n], vec[: self._n] = (
            self._ext[: self._n],
            self._live[: self._n],
            self._vec[: self._n],
        )
        self._ext, self._live, self._vec = ext, live, vec

    # --- the approximate index -----------------------------------------------------------

    def _index_tail(self) -> None:
        """Train once enough vectors exist, then add every position not yet indexed."""
        if self._index is None:
            if len(self) < self.params.train_min:
                return
            self._train()
        if self._indexed < self._n:
            self._index.add(np.ascontiguousarray(self._vec[self._indexed : self._n]))
            self._indexed = self._n

    def train(self, sample: np.ndarray) -> None:
        """Train on ``sample`` now (e.g. drawn across the shards of a distributed run), so the
        vectors added next go straight into the approximate index."""
        if self._index is None:
            self._train(sample)
            self._index_tail()

    def _train(self, sample: np.ndarray | None = None) -> None:
        size = self.trained_size = max(len(self), self.expected_size)
        self.params = self.params.sized(self.dim, size)
        index = faiss.index_factory(
            self.dim, self.params.factory(self.dim), faiss.METRIC_INNER_PRODUCT
        )
        if self.kind == "hnsw":
            faiss.downcast_index(index).hnsw.efConstruction = self.params.ef_construction
        else:
            _cheap_training(index)
        if sample is None:
            rng = np.random.default_rng(0)
            live = np.sort(self._keypos)
            sample_size = 64 * self.params.nlist if self.kind == "ivfpq" else 65_536
            rows = np.sort(rng.choice(live, min(len(live), sample_size), replace=False))
            sample = self._vec[rows]
        log.info("training %s on %d vectors", self.params.factory(self.dim), len(sample))
        _train_maybe_on_gpu(index, np.ascontiguousarray(sample, dtype=np.float32))
        self._index, self._indexed = index, 0

    def _compact(self) -> None:
        """Rebuild positions and the index without dead vectors (training kept)."""
        log.info("compacting: %d of %d positions are removed vectors", self._n - len(self), self._n)
        ids, vectors = self.content()
        index, trained_size = self._index, self.trained_size
        self.__init__(self.dim, self.params, self.expected_size)  # type: ignore[misc]
        if index is not None:
            index.reset()
            self._index, self.trained_size = index, trained_size
        self.add(ids, vectors)

    # --- search --------------------------------------------------------------------------

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

    def _selected(self, mask: np.ndarray | None) -> np.ndarray:
        """Sorted positions a query may return (all live ones without a filter)."""
        return np.flatnonzero(self._live[: self._n] if mask is None else mask)

    def _selector(self, mask: np.ndarray | None) -> Any:
        """An ``IDSelectorBitmap`` over indexed positions, or None when all are eligible."""
        if mask is None:
            if len(self) == self._n:
                return None  # nothing removed, nothing filtered: no selector at all
            if self._live_bitmap is None:
                bitmap = np.packbits(self._live[: self._indexed], bitorder="little")
                self._live_bitmap = (faiss.IDSelectorBitmap(bitmap), bitmap)
            return self._live_bitmap
        bitmap = np.packbits(mask[: self._indexed], bitorder="little")
        return faiss.IDSelectorBitmap(bitmap), bitmap  # the bytes must outlive the search

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        mask = None
        count = len(self)
        if allowed is not None:
            mask = np.zeros(self._n, bool)
            mask[self._lookup(allowed)] = True
            count = int(np.count_nonzero(mask))
        if self._index is None or count <= EXACT_LIMIT:
            return self._exact(queries, k, self._selected(mask))
        candidates = self._candidates(queries, k, self._selector(mask))
        if self._indexed < self._n:  # vectors added before training: searched exactly
            tail = self._selected(mask)
            _, extra = self._exact_positions(queries, k, tail[tail >= self._indexed])
            candidates = np.concatenate([candidates, extra], axis=1)
        scores, found = self._rerank(queries, candidates, k)
        short = (found >= 0).sum(axis=1) < min(k, count)
        if short.any():  # a filter the approximate index could not fill: exact for those rows
            selected = self._selected(mask)
            scores[short], found[short] = self._exact_positions(queries[short], k, selected)
        return scores, np.where(found >= 0, self._ext[np.maximum(found, 0)], -1)

    def _candidates(self, queries: np.ndarray, k: int, selector: Any) -> np.ndarray:
        wanted = min(max(self.params.rerank, 4 * k), self._indexed)
        sel = selector[0] if selector else None
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.params.ef_search, wanted))
        else:
            params = faiss.SearchParametersIVF(nprobe=min(self.params.nprobe, self.params.nlist))
        if sel is not None:
            params.sel = sel
        _, positions = self._index.search(queries, wanted, params=params)
        return positions

    def _rerank(
        self, queries: np.ndarray, candidates: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact inner products of the candidates; the best ``k`` per query, best first."""
        scores = np.full((len(queries), k), -np.inf, np.float32)
        positions = np.full((len(queries), k), -1, np.int64)
        step = 64  # queries per gather: bounds the (q, c, d) copy to ~32 MB
        for start in range(0, len(queries), step):
            cand = candidates[start : start + step]
            valid = cand >= 0
            gathered = self._vec[np.where(valid, cand, 0)]  # (q, c, d)
            exact = np.matmul(gathered, queries[start : start + step, :, None])[..., 0]
            exact[~valid] = -np.inf
            top = np.argsort(-exact, axis=1, kind="stable")[:, :k]
            width = top.shape[1]
            scores[start : start + step, :width] = np.take_along_axis(exact, top, axis=1)
            positions[start : start + step, :width] = np.where(
                np.take_along_axis(valid, top, axis=1), np.take_along_axis(cand, top, axis=1), -1
            )
        return scores, positions

    def _exact_positions(
        self, queries: np.ndarray, k: int, selected: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Brute force over the vectors at ``selected`` positions."""
        found = min(k, len(selected))
        scores = np.full((len(queries), k), -np.inf, np.float32)
        positions = np.full((len(queries), k), -1, np.int64)
        if found:
            base = np.ascontiguousarray(self._vec[selected])
            top_scores, rows = faiss.knn(queries, base, found, metric=faiss.METRIC_INNER_PRODUCT)
            scores[:, :found], positions[:, :found] = top_scores, selected[rows]
        return scores, positions

    def _exact(
        self, queries: np.ndarray, k: int, selected: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        scores, positions = self._exact_positions(queries, k, selected)
        return scores, np.where(positions >= 0, self._ext[np.maximum(positions, 0)], -1)

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
            "positions": self._n,
            "trained": self._index is not None,
        }
        if self._index is not None:
            info["factory"] = self.params.factory(self.dim)
        return info

    def write(self, path: Path) -> None:
        header = {
            "kind": self.kind,
            "dim": self.dim,
            "n": self._n,
            "indexed": self._indexed,
            "expected_size": self.expected_size,
            "trained_size": self.trained_size,
            "params": asdict(self.params),
        }
        n = self._n
        write_container(path, header, self._ext[:n], self._live[:n], self._vec[:n], self._index)

    @classmethod
    def read(cls, path: Path) -> ApproxBackend:
        header, ext, live, vectors, index = read_container(path)
        backend = cls(header["dim"], ApproxParams(**header["params"]), header["expected_size"])
        backend._ext, backend._live, backend._index = ext, live, index
        if len(vectors):
            backend._vec = vectors
        backend._n, backend._indexed = header["n"], header["indexed"]
        backend.trained_size = header.get("trained_size", 0)
        alive = np.flatnonzero(live)
        order = np.argsort(ext[alive], kind="stable")
        backend._keys, backend._keypos = ext[alive][order], alive[order]
        return backend


def _cheap_training(index: Any) -> None:
    """IVF-PQ training settings that cost seconds, not minutes, with the same recall after
    re-ranking: fewer k-means iterations and points, no polysemous codes (unused here)."""
    ivfpq = faiss.downcast_index(index)
    ivfpq.do_polysemous_training = False
    for clustering in (ivfpq.cp, ivfpq.pq.cp):
        clustering.niter = 10
        clustering.max_points_per_centroid = 64


def _train_maybe_on_gpu(index: Any, sample: np.ndarray) -> None:
    """Train, running IVF k-means on the GPUs when faiss-gpu sees one."""
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None and gpu_available():
        try:
            ivf.clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatIP(index.d))
        except Exception as exc:  # fall back to CPU k-means
            log.warning("GPU k-means unavailable (%s)", exc)
    index.train(sample)
