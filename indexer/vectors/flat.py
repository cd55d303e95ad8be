"""The exact kind of the VectorIndex: ``IndexIDMap2(IndexFlatIP)``, a standard FAISS file."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from indexer.vectors.container import gpu_available, split_range_result

log = logging.getLogger(__name__)


class FlatBackend:
    """Exact search: ``IndexIDMap2(IndexFlatIP)``, serialised as a standard FAISS file."""

    kind = "flat"

    def __init__(self, index: faiss.IndexIDMap2) -> None:
        self.index = index
        self.dim = int(index.d)
        self._gpu: Any = None  # a GPU copy for unfiltered search, dropped on every change

    @classmethod
    def empty(cls, dim: int) -> FlatBackend:
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)))

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self.index.id_map).astype(np.int64, copy=False)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        present = np.isin(ids, self.ids())
        if present.any():  # an id names one file: its new vector replaces the old one
            self.remove(ids[present])
        self.index.add_with_ids(vectors, ids)
        self._gpu = None

    def remove(self, ids: np.ndarray) -> int:
        self._gpu = None
        return int(self.index.remove_ids(faiss.IDSelectorBatch(ids)))

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if allowed_ids is None:
            return self._searcher().search(queries, k)
        selector = faiss.IDSelectorBatch(allowed_ids)  # IndexIDMap2 translates it to positions
        return self.index.search(queries, k, params=faiss.SearchParameters(sel=selector))

    def _searcher(self) -> Any:
        if self._gpu is None and gpu_available() and len(self) > 0:
            try:
                self._gpu = faiss.index_cpu_to_all_gpus(self.index)
            except Exception as exc:  # out of GPU memory etc.: the CPU index still answers
                log.warning("GPU search unavailable (%s); searching on the CPU", exc)
                self._gpu = self.index
        return self._gpu or self.index

    def range_search(
        self, queries: np.ndarray, threshold: float
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        lims, scores, ids = self.index.range_search(queries, float(threshold))
        return split_range_result(lims, scores, ids)

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        for row, key in enumerate(ids.tolist()):
            try:
                out[row] = self.index.reconstruct(key)
            except RuntimeError as exc:  # FAISS raises for an unknown key
                raise KeyError(f"no vector with id {key}") from exc
        return out

    def content(self) -> tuple[np.ndarray, np.ndarray]:
        """All ``(ids, vectors)``, in storage order."""
        return self.ids(), self.index.index.reconstruct_n(0, len(self))

    def write(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))

    def describe(self) -> dict[str, Any]:
        return {"factory": "IDMap2,Flat", "metric": "inner_product"}
