"""The exact kind's storage: a half-precision scan proposes, the float32 vectors decide.

One query against ``IndexFlatIP`` reads every float32 vector (205 MB at 100k × 512) on one
thread: memory-bound, ~14 ms. Here the scan reads an ``SQfp16`` copy (half the bytes) over
*positions* 0..n-1, and the ``PositionStore`` (file ids, live flags, float32 vectors) scores
its candidates exactly. The result is *certified* equal to exact search: fp16 moves any
score by at most ``error`` (the largest ``‖x − fp16(x)‖`` of a stored vector, ~3e-4) times
the query's norm, so once the k-th exact score of the candidates beats the last
candidate's half-precision score plus that bound, no vector outside the candidates can
belong to the top k. Queries where it does not (near-ties at the cut) widen the candidates
until it does, or until the whole filter was scored.

``set_scan_threads(n)`` (process-wide, like FAISS's own thread count; ``retrieval.serving``
sets it) splits a large scan into ``n`` position ranges searched at once: the calling thread
takes the first, a small persistent pool of plain threads the others (FAISS releases the GIL;
its OpenMP is pinned to one thread in each pool thread, so no second OpenMP team spins), and
the parts' candidates are merged before the same float32 re-scoring and certificate.

On disk it is the approximate kinds' single-file container (``vector_io``), header kind
``flat``; a library whose ``vectors.faiss`` is a plain ``IndexIDMap2(IndexFlatIP)`` (the
older storage of this kind) still opens as ``flat.FlatBackend``.
"""

from __future__ import annotations

import itertools
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from indexer.ann import EXACT_LIMIT
from indexer.candidates import bitmap_selector
from indexer.positions import PositionStore, StoredBackend
from indexer.vector_io import read_container, write_container

log = logging.getLogger(__name__)

STORAGE = "SQfp16"  # FAISS factory string of the scanned copy
MIN_CANDIDATES = 64  # candidates per query at least (and 4·k): the certificate holds at once
WIDEN = 8  # candidate growth for the queries whose certificate failed
SLACK = 1e-5  # float32 rounding of a 512-d inner product, with a wide margin
BATCH_QUERIES = 16  # range queries from this many on: exact matrix products, not fp16 scans
RANGE_BLOCK = 16_384  # stored vectors per product block (bounds its memory)
PARALLEL_MIN = 32_768  # positions from which a scan is split across the scan threads

_scan = {"threads": 1, "pool": None}  # process-wide, like faiss.omp_set_num_threads
_scan_lock = threading.Lock()


def set_scan_threads(threads: int) -> None:
    """Search large scans in ``threads`` parts at once (1: one part, no pool)."""
    if threads < 1:
        raise ValueError(f"scan threads must be at least 1, not {threads}")
    with _scan_lock:
        if threads == _scan["threads"]:
            return
        old = _scan["pool"]
        _scan["threads"], _scan["pool"] = threads, None
    if old is not None:
        old.shutdown(wait=False)


def scan_threads() -> int:
    return int(_scan["threads"])


def _pool() -> ThreadPoolExecutor:
    with _scan_lock:
        if _scan["pool"] is None:
            _scan["pool"] = ThreadPoolExecutor(
                _scan["threads"] - 1, "vitrieve-scan", faiss.omp_set_num_threads, (1,)
            )  # OpenMP thread counts are per thread: each pool thread pins its own
        return _scan["pool"]


def _part_params(params: Any, start: int, end: int) -> tuple[Any, list[Any]]:
    """Search parameters restricted to positions ``start..end-1`` (and the objects the
    FAISS selectors point to, which must outlive the search)."""
    part = faiss.IDSelectorRange(start, end)
    if params is None:
        return faiss.SearchParameters(sel=part), [part]
    both = faiss.IDSelectorAnd(part, params.sel)
    return faiss.SearchParameters(sel=both), [part, both]


def _merge(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of the parts' results per query; ties keep the lower part first."""
    scores = np.concatenate([s for s, _ in parts], axis=1)
    found = np.concatenate([f for _, f in parts], axis=1)
    scores = np.where(found < 0, -np.inf, scores)  # missing results sort last
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(found, order, axis=1)


def _scan_index(dim: int) -> Any:
    return faiss.IndexScalarQuantizer(
        dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
    )


def _code_error(index: Any, vectors: np.ndarray) -> float:
    """The largest ``‖x − decode(encode(x))‖`` among ``vectors`` (chunked: bounded memory)."""
    worst = 0.0
    for start in range(0, len(vectors), 65_536):
        chunk = np.ascontiguousarray(vectors[start : start + 65_536], dtype=np.float32)
        decoded = index.sa_decode(index.sa_encode(chunk))
        worst = max(worst, float(np.linalg.norm(chunk - decoded, axis=1).max()))
    return worst


class ExactBackend(StoredBackend):
    """Exact top-k and range search: an fp16 scan over positions, re-scored in float32."""

    kind = "flat"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.error = 0.0  # bound on |q·x − q·fp16(x)| / ‖q‖ over every stored vector
        self._store = PositionStore(dim)
        self._index = _scan_index(dim)  # position p holds the fp16 copy of store.vec[p]
        self._live_bitmap: Any = None

    @classmethod
    def empty(cls, dim: int) -> ExactBackend:
        return cls(dim)

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray) -> ExactBackend:
        backend = cls(vectors.shape[1])
        if len(ids):
            backend.add(ids, vectors)
        return backend

    # --- contents ------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._store.append(ids, vectors)  # a re-added id's old position dies
        self._index.add(vectors)
        self.error = max(self.error, _code_error(self._index, vectors))
        self._live_bitmap = None

    def _compact(self) -> None:
        """Rebuild positions and the scan without the removed vectors."""
        log.info("compacting: %d of %d positions removed", self._store.n - len(self), self._store.n)
        ids, vectors = self.content()
        self.__init__(self.dim)  # type: ignore[misc]
        if len(ids):
            self.add(ids, vectors)

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        return self._store.reconstruct(ids)

    def content(self) -> tuple[np.ndarray, np.ndarray]:
        return self._store.content()

    # --- search --------------------------------------------------------------------------

    def _params(self, mask: np.ndarray | None) -> tuple[Any, Any]:
        """FAISS search parameters excluding removed (and unselected) positions, and the
        bitmap they point into (it must outlive the search); None when all are eligible."""
        if mask is not None:
            selector = bitmap_selector(mask)
        elif len(self) == self._store.n:
            return None, None
        else:
            if self._live_bitmap is None:
                self._live_bitmap = bitmap_selector(self._store.live[: self._store.n])
            selector = self._live_bitmap
        return faiss.SearchParameters(sel=selector[0]), selector

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        store = self._store
        mask = None if allowed is None else store.mask(allowed)
        count = len(self) if mask is None else int(np.count_nonzero(mask))
        if count <= EXACT_LIMIT:  # small filters: brute force over their float32 vectors
            scores, positions = store.exact(queries, k, store.selected(mask))
            return scores, store.file_ids(positions)
        params, _keep = self._params(mask)
        margin = self.error * np.linalg.norm(queries, axis=1) + SLACK
        scores = np.full((len(queries), k), -np.inf, np.float32)
        positions = np.full((len(queries), k), -1, np.int64)
        todo, wanted, last = np.arange(len(queries)), max(4 * k, MIN_CANDIDATES), min(k, count) - 1
        while len(todo) and wanted < count:
            approx, candidates = self._scan(queries[todo], wanted, params)
            top, found = store.rerank(queries[todo], candidates, k)
            # certified: every vector outside the candidates scores below the k-th found
            done = (candidates[:, -1] < 0) | (top[:, last] > approx[:, -1] + margin[todo])
            scores[todo[done]], positions[todo[done]] = top[done], found[done]
            todo, wanted = todo[~done], wanted * WIDEN
        if len(todo):  # near-ties all the way down: score the whole selection
            scores[todo], positions[todo] = store.exact(queries[todo], k, store.selected(mask))
        return scores, store.file_ids(positions)

    def _scan(self, queries: np.ndarray, k: int, params: Any) -> tuple[np.ndarray, np.ndarray]:
        """The fp16 scan's top ``k`` positions, in parts on the scan threads when large."""
        n, threads = self._store.n, scan_threads()
        if threads < 2 or n < PARALLEL_MIN:
            return self._index.search(queries, k, params=params)
        bounds = [n * part // threads for part in range(threads + 1)]
        parts = [_part_params(params, lo, hi) for lo, hi in itertools.pairwise(bounds)]
        pending = [
            _pool().submit(self._index.search, queries, k, params=part) for part, _ in parts[1:]
        ]
        first = self._index.search(queries, k, params=parts[0][0])
        return _merge([first, *(future.result() for future in pending)], k)

    def range_search(
        self, queries: np.ndarray, threshold: float
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every vector scoring ≥ ``threshold``, best first. A few queries: the fp16 scan at
        ``threshold`` minus the error bound finds a superset, the float32 scores decide;
        a batch (near-duplicates of the whole library): float32 matrix products by block."""
        if len(queries) >= BATCH_QUERIES:
            return self._range_by_blocks(queries, threshold)
        params, _keep = self._params(None)
        out = []
        for query in queries:
            lowered = threshold - self.error * float(np.linalg.norm(query)) - SLACK
            lims, _, candidates = self._index.range_search(query[None], lowered, params=params)
            exact = self._store.vec[candidates] @ query if len(candidates) else np.empty(0)
            keep = exact >= threshold
            order = np.argsort(-exact[keep], kind="stable")
            found = candidates[keep][order]
            out.append((self._store.file_ids(found), exact[keep][order].astype(np.float32)))
        return out

    def _range_by_blocks(
        self, queries: np.ndarray, threshold: float
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        store = self._store
        found: list[list[np.ndarray]] = [[] for _ in queries]
        scored: list[list[np.ndarray]] = [[] for _ in queries]
        for start in range(0, store.n, RANGE_BLOCK):
            end = min(start + RANGE_BLOCK, store.n)
            scores = queries @ np.asarray(store.vec[start:end]).T  # (nq, block)
            scores[:, ~store.live[start:end]] = -np.inf
            rows, cols = np.nonzero(scores >= threshold)  # row-major: grouped by query
            bounds = np.searchsorted(rows, np.arange(len(queries) + 1))
            for row in np.flatnonzero(np.diff(bounds)):
                hit = cols[bounds[row] : bounds[row + 1]]
                found[row].append(hit + start)
                scored[row].append(scores[row, hit])
        out = []
        for positions, values in zip(found, scored, strict=True):
            positions = np.concatenate(positions) if positions else np.empty(0, np.int64)
            values = np.concatenate(values) if values else np.empty(0, np.float32)
            order = np.argsort(-values, kind="stable")
            out.append((store.file_ids(positions[order]), values[order].astype(np.float32)))
        return out

    # --- persistence ---------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {
            "factory": STORAGE,
            "rerank": "float32, certified exact",
            "positions": self._store.n,
            "error_bound": self.error,
        }

    def write(self, path: Path) -> None:
        store, n = self._store, self._store.n
        header = {"kind": self.kind, "storage": STORAGE, "dim": self.dim, "n": n}
        header["error"] = self.error
        write_container(path, header, store.ext[:n], store.live[:n], store.vec[:n], self._index)

    @classmethod
    def read(cls, path: Path) -> ExactBackend:
        header, ext, live, vectors, index = read_container(path)
        backend = cls(header["dim"])
        backend._store = PositionStore.from_arrays(ext, live, vectors)
        backend._index, backend.error = index, float(header["error"])
        if index is None or index.ntotal != len(ext):
            raise ValueError(f"{path}: the fp16 scan does not match the stored vectors")
        return backend
