"""VectorIndex over FAISS: choose, build, add, remove, search, save atomically.

Vector ids are int64 and equal the primary keys of the files' rows; vectors are float32 and
L2-normalised, so inner product is cosine similarity. Two families of kinds:

* ``flat``: exact search (``indexer.vectors.exact``): an int8 scan (``indexer.vectors.scan8``)
  proposes candidates, the float32 vectors re-score them, with a certificate that the top k
  equals ``IndexFlatIP``'s while reading a quarter of its bytes per query. The right choice
  up to ~200k vectors.
* ``ivfpq`` and ``hnsw`` (``indexer.vectors.ann``): an approximate index proposes candidates,
  which are re-ranked exactly against the stored float32 vectors, so recall@10 stays ≥ 0.98
  of exact search at a fraction of its cost.

Every kind is stored in one container file (``indexer.vectors.container``); any other file
(a plain FAISS index included) is refused with "re-index it".

``auto`` picks ``flat`` up to ``APPROX_THRESHOLD`` vectors and ``ivfpq`` beyond;
``upgrade_if_needed`` moves a grown flat index to the approximate kind. Filters run inside the
FAISS search (an ``IDSelector`` in ``SearchParameters``), so a filtered top-k is full whenever
at least k vectors pass the filter.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import faiss
import numpy as np

from encoders.atomic import atomic_write
from encoders.errors import VitrieveError
from indexer.vectors import ann
from indexer.vectors.ann import ApproxBackend, ApproxParams
from indexer.vectors.container import MAGIC, as_ids, as_vectors, read_header
from indexer.vectors.exact import ExactBackend

log = logging.getLogger(__name__)

APPROX_THRESHOLD = 200_000  # above this many vectors exact search passes ~10 ms per query
DEFAULT_APPROX_KIND = "ivfpq"  # trains in minutes at 1M, removes cheaply, fits in RAM
KINDS = ("auto", "flat", *ann.KINDS)


@runtime_checkable
class VectorSearch(Protocol):
    """What retrieval needs from a vector index (a fake in tests, FAISS in the library)."""

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def range_search(
        self, queries: np.ndarray, threshold: float
    ) -> list[tuple[np.ndarray, np.ndarray]]: ...

    def reconstruct(self, ids: np.ndarray) -> np.ndarray: ...

    def ids(self) -> np.ndarray: ...

    def __len__(self) -> int: ...


class VectorIndex:
    """int64 file ids → L2-normalised float32 vectors, searched by inner product."""

    def __init__(self, backend: ExactBackend | ApproxBackend) -> None:
        self._backend = backend

    # --- construction --------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        dim: int,
        kind: str = "auto",
        expected_size: int | None = None,
        *,
        threshold: int = APPROX_THRESHOLD,
        approx: ApproxParams | None = None,
    ) -> VectorIndex:
        """An empty index; ``auto`` decides by ``expected_size`` against ``threshold``.

        ``approx`` overrides the build/search settings of an approximate kind."""
        if dim <= 0:
            raise VitrieveError(f"vector dimension must be positive, got {dim}")
        resolved = resolve_kind(kind, expected_size or 0, threshold)
        if resolved == "flat":
            return cls(ExactBackend.empty(dim))
        params = _params_for(resolved, approx)
        return cls(ApproxBackend.empty(dim, params, expected_size=expected_size))

    @classmethod
    def load(cls, path: Path | str) -> VectorIndex:
        """Open a saved index (a container of the exact or an approximate kind); any other
        file is refused with a VitrieveError that says to re-index."""
        path = Path(path)
        try:
            with path.open("rb") as handle:
                magic = handle.read(len(MAGIC))
        except OSError as exc:
            raise VitrieveError(f"cannot read vector index {path}: {exc}") from exc
        if not magic.startswith(MAGIC):
            raise VitrieveError(
                f"{path} is not a vector index this vitrieve reads (an unreleased format, or "
                "not an index): re-index it (delete it and run vitrieve index)"
            )
        try:
            exact = _container_kind(path) == ExactBackend.kind
            return cls(ExactBackend.read(path) if exact else ApproxBackend.read(path))
        except VitrieveError:
            raise
        except (RuntimeError, ValueError, KeyError, TypeError, struct.error, OSError) as exc:
            raise VitrieveError(f"{path} is not a readable vector index: {exc}") from exc

    def rebuild(
        self,
        kind: str = "auto",
        *,
        threshold: int = APPROX_THRESHOLD,
        approx: ApproxParams | None = None,
    ) -> VectorIndex:
        """A new index of ``kind`` (``auto``: by the current size) holding the same vectors;
        an approximate kind is trained on them (minutes at 1M vectors)."""
        ids, vectors = self._backend.content()
        resolved = resolve_kind(kind, len(ids), threshold)
        if resolved == "flat":
            return VectorIndex(ExactBackend.build(ids, vectors))
        log.info("building a %s index of %d vectors", resolved, len(ids))
        return VectorIndex(ApproxBackend.build(ids, vectors, _params_for(resolved, approx)))

    def upgrade_if_needed(self, threshold: int = APPROX_THRESHOLD) -> bool:
        """Rebuild in place when the collection outgrew its kind: a flat index past
        ``threshold``, or an IVF index with 8× the vectors it was sized for.

        Call it at the end of an indexing run of an ``auto`` library (it may take minutes)."""
        backend = self._backend
        if backend.kind == "flat":
            needed = len(self) > threshold
        else:
            needed = backend.kind == "ivfpq" and len(self) > 8 * max(backend.trained_size, 1)
        if needed:
            self._backend = self.rebuild("auto", threshold=threshold)._backend
        return needed

    # --- contents ------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        return self._backend.kind

    @property
    def dim(self) -> int:
        return self._backend.dim

    def __len__(self) -> int:
        return len(self._backend)

    def ids(self) -> np.ndarray:
        """The ids held, int64 (order unspecified)."""
        return self._backend.ids()

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add (or replace: an id held already gets the new vector) ``vectors`` under ``ids``."""
        ids, vectors = as_ids(ids), as_vectors(vectors, self.dim, check_norm=True)
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        if len(np.unique(ids)) != len(ids):
            raise ValueError("duplicate ids in one add")
        if len(ids):
            self._backend.add(ids, vectors)

    def train(self, sample: np.ndarray) -> None:
        """Train an approximate kind on ``sample`` before adding (a no-op for ``flat``, and
        for an index already trained). Without it, training happens on the first
        ``train_min`` vectors added."""
        if isinstance(self._backend, ApproxBackend):
            self._backend.train(as_vectors(sample, self.dim))

    def tune(self, **search: int) -> None:
        """Change search-time settings of an approximate kind (``nprobe``, ``ef_search``,
        ``rerank``): the recall/latency trade-off, no rebuild. A no-op for ``flat``."""
        unknown = set(search) - {"nprobe", "ef_search", "rerank"}
        if unknown:
            raise ValueError(f"not search settings: {sorted(unknown)}")
        if isinstance(self._backend, ApproxBackend):
            self._backend.params = replace(self._backend.params, **search)

    def remove(self, ids: np.ndarray) -> int:
        """Remove ``ids`` (unknown ids are ignored); returns how many were removed."""
        ids = as_ids(ids)
        return self._backend.remove(ids) if len(ids) and len(self) else 0

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """The stored float32 vectors of ``ids`` (KeyError for an unknown id)."""
        ids = as_ids(ids)
        return self._backend.reconstruct(ids)

    # --- search --------------------------------------------------------------------------

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(scores, ids)`` per query, best first, both (nq, k).

        ``allowed_ids`` restricts results to those ids. Where fewer than ``k`` vectors qualify,
        the remaining ids are -1 and their scores -inf."""
        queries = as_vectors(queries, self.dim)
        nq = len(queries)
        if k <= 0 or nq == 0:
            return np.zeros((nq, max(k, 0)), np.float32), np.zeros((nq, max(k, 0)), np.int64)
        allowed = None if allowed_ids is None else as_ids(allowed_ids)
        if len(self) == 0 or (allowed is not None and len(allowed) == 0):
            return np.full((nq, k), -np.inf, np.float32), np.full((nq, k), -1, np.int64)
        scores, ids = self._backend.search(queries, k, allowed)
        scores = np.where(ids < 0, -np.inf, scores).astype(np.float32, copy=False)
        return scores, ids.astype(np.int64, copy=False)

    def range_search(
        self, queries: np.ndarray, threshold: float
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each query, ``(ids, scores)`` of every vector with score ≥ ``threshold``, best
        first: near-duplicates are the stored vectors within a cosine threshold."""
        queries = as_vectors(queries, self.dim)
        if len(self) == 0:
            return [(np.empty(0, np.int64), np.empty(0, np.float32)) for _ in queries]
        return self._backend.range_search(queries, threshold)

    # --- persistence ---------------------------------------------------------------------

    def save(self, path: Path | str) -> None:
        """Write atomically (``encoders.atomic``): a crash or an error at any point leaves the
        previous file untouched."""
        atomic_write(Path(path), self._backend.write)

    def describe(self) -> dict[str, Any]:
        """What ``library.json`` records about the index."""
        return {
            "kind": self.kind,
            "dim": self.dim,
            "count": len(self),
            "faiss_version": faiss.__version__,
            **self._backend.describe(),
        }


def resolve_kind(kind: str, size: int, threshold: int = APPROX_THRESHOLD) -> str:
    """The concrete kind for a requested one: ``auto`` decides by ``size``."""
    name = kind.lower()
    if name not in KINDS:
        raise VitrieveError(f"unknown index kind {kind!r}: choose one of {', '.join(KINDS)}")
    if name == "auto":
        return "flat" if size <= threshold else DEFAULT_APPROX_KIND
    return name


def _container_kind(path: Path) -> str:
    """The ``kind`` in a container's JSON header (``vector_io`` layout)."""
    with path.open("rb") as handle:
        return str(read_header(handle)["kind"])


def _params_for(kind: str, approx: ApproxParams | None) -> ApproxParams:
    if approx is None:
        return ApproxParams(kind)
    return replace(approx, kind=kind)
