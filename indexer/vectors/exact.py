"""The exact kind's storage: an int8 scan proposes, the float32 vectors decide.

One query against ``IndexFlatIP`` reads every float32 vector (205 MB at 100k × 512): memory-
bound. Here the scan reads one byte per dimension (``indexer.vectors.scan8``: a quarter of the
bytes, FAISS's fastest scalar-quantizer kernel) over *positions* 0..n-1, and the
``PositionStore`` (file ids, live flags, float32 vectors) scores its candidates exactly. The
result is *certified* equal to exact search: the int8 codes move any score by at most ``error``
(the largest ``‖x − decode(x)‖`` of a stored vector, ~1e-2 for unit vectors) times the query's
norm, so once the k-th exact score of the candidates beats the last candidate's scan score plus
that bound, no vector outside the candidates can belong to the top k. Queries where it does not
(near-ties at the cut) widen the candidates until it does, or until the whole filter was
scored.

``set_scan_threads(n)`` (process-wide, like FAISS's own thread count; ``retrieval.service.serving``
sets it) splits a large scan into ``n`` position ranges searched at once: the calling thread
takes the first, a small persistent pool of plain threads the others (FAISS releases the GIL;
its OpenMP is pinned to one thread in each pool thread, so no second OpenMP team spins), and
the parts' candidates are merged before the same float32 re-scoring and certificate.

On disk it is the approximate kinds' single-file container (``vector_io``), header kind
``flat``, storage ``SQ8direct`` (its scales in the header); any other storage is refused with
"re-index it".
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

from indexer.vectors.ann import EXACT_LIMIT
from indexer.vectors.candidates import bitmap_selector
from indexer.vectors.container import read_container, write_container
from indexer.vectors.positions import PositionStore, StoredBackend
from indexer.vectors.scan8 import STORAGE, Int8Scan

log = logging.getLogger(__name__)

MIN_CANDIDATES = 256  # candidates per query at least (and 4·k): the certificate mostly holds
WIDEN = 8  # candidate growth for the queries whose certificate failed
SLACK = 1e-5  # float32 rounding of a 512-d inner product, with a wide margin
BATCH_QUERIES = 16  # range queries from this many on: exact matrix products, not int8 scans
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


class ExactBackend(StoredBackend):
    """Exact top-k and range search: an int8 scan over positions, re-scored in float32."""

    kind = "flat"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._store = PositionStore(dim)
        self._codes = Int8Scan(dim)  # position p holds the int8 code of store.vec[p]
        self._live_bitmap: Any = None

    @property
    def error(self) -> float:
        """Bound on |q·x − q·decode(x)| / ‖q‖ over every stored vector."""
        return self._codes.error

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
        self._codes.add(vectors)
        if self._codes.needs_refit():  # the new vectors outgrew the scales: fit them again
            log.info("re-coding the int8 scan (error bound %.4f)", self._codes.error)
            self._codes = Int8Scan.fitted(self._store.vec[: self._store.n])
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
        self._codes.prefer_huge_pages()
        prepared = self._codes.prepare(queries)
        margin = prepared.bound + SLACK
        scores = np.full((len(queries), k), -np.inf, np.float32)
        positions = np.full((len(queries), k), -1, np.int64)
        todo, wanted, last = np.arange(len(queries)), max(4 * k, MIN_CANDIDATES), min(k, count) - 1
        while len(todo) and wanted < count:
            raw, candidates = self._propose(prepared.ints[todo], wanted, params)
            approx = prepared.scores(raw, todo)
            top, found = store.rerank(queries[todo], candidates, k)
            # certified: every vector outside the candidates scores below the k-th found
            done = (candidates[:, -1] < 0) | (top[:, last] > approx[:, -1] + margin[todo])
            scores[todo[done]], positions[todo[done]] = top[done], found[done]
            todo, wanted = todo[~done], wanted * WIDEN
        if len(todo):  # near-ties all the way down: score the whole selection
            scores[todo], positions[todo] = store.exact(queries[todo], k, store.selected(mask))
        return scores, store.file_ids(positions)

    def _propose(self, coded: np.ndarray, k: int, params: Any) -> tuple[np.ndarray, np.ndarray]:
        """The int8 scan's top ``k`` (kernel scores, positions) for prepared queries, in
        parts on the scan threads when large."""
        n, threads, index = self._store.n, scan_threads(), self._codes.index
        if threads < 2 or n < PARALLEL_MIN:
            return index.search(coded, k, params=params)
        bounds = [n * part // threads for part in range(threads + 1)]
        parts = [_part_params(params, lo, hi) for lo, hi in itertools.pairwise(bounds)]
        pending = [_pool().submit(index.search, coded, k, params=part) for part, _ in parts[1:]]
        first = index.search(coded, k, params=parts[0][0])
        return _merge([first, *(future.result() for future in pending)], k)

    def range_search(
        self, queries: np.ndarray, threshold: float
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every vector scoring ≥ ``threshold``, best first. A few queries: the int8 scan at
        ``threshold`` minus the error bound finds a superset, the float32 scores decide;
        a batch (near-duplicates of the whole library): float32 matrix products by block."""
        if len(queries) >= BATCH_QUERIES:
            return self._range_by_blocks(queries, threshold)
        params, _keep = self._params(None)
        out = []
        for query in queries:
            _, _, candidates = self._codes.range_search(query, threshold - SLACK, params)
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
        header = {"kind": self.kind, "dim": self.dim, "n": n, **self._codes.header()}
        index = self._codes.index if n else None
        write_container(path, header, store.ext[:n], store.live[:n], store.vec[:n], index)

    @classmethod
    def read(cls, path: Path) -> ExactBackend:
        header, ext, live, vectors, index = read_container(path)
        backend = cls(header["dim"])
        backend._store = PositionStore.from_arrays(ext, live, vectors)
        storage = header.get("storage")
        if storage != STORAGE:
            raise ValueError(f"scan storage {storage!r} is not one vitrieve reads: re-index it")
        if len(ext):
            backend._codes = Int8Scan.from_header(header, index, backend.dim)
        else:  # an empty index is written without codes
            backend._codes = Int8Scan(backend.dim)
        if backend._codes.ntotal != len(ext):
            raise ValueError(f"{path}: the int8 scan does not match the stored vectors")
        return backend
