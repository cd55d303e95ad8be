"""The approximate side of the approximate kinds: a FAISS index proposing candidates.

An ``IVF…,PQ…`` or ``HNSW…,SQ8`` index over *positions* (``positions.PositionStore`` maps them
to file ids and scores them exactly). Here: its settings, its (cheap) training and its
filtered candidate search, where filters and removed positions are excluded by an
``IDSelectorBitmap`` inside the FAISS search.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any

import faiss
import numpy as np

from indexer.vectors.container import gpu_available

log = logging.getLogger(__name__)

KINDS = ("ivfpq", "hnsw")


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

    def sample_size(self) -> int:
        """Training vectors to draw when the caller gives no sample."""
        return 64 * self.nlist if self.kind == "ivfpq" else 65_536


def train_index(params: ApproxParams, dim: int, sample: np.ndarray) -> Any:
    """An empty approximate index of ``params`` (already ``sized``), trained on ``sample``."""
    index = faiss.index_factory(dim, params.factory(dim), faiss.METRIC_INNER_PRODUCT)
    if params.kind == "hnsw":
        faiss.downcast_index(index).hnsw.efConstruction = params.ef_construction
    else:
        _cheap_training(index)
    log.info("training %s on %d vectors", params.factory(dim), len(sample))
    _train_maybe_on_gpu(index, np.ascontiguousarray(sample, dtype=np.float32))
    return index


def bitmap_selector(mask: np.ndarray) -> tuple[Any, np.ndarray]:
    """An ``IDSelectorBitmap`` over ``mask`` and its bytes (they must outlive the search)."""
    bitmap = np.packbits(mask, bitorder="little")
    return faiss.IDSelectorBitmap(bitmap), bitmap


def search_candidates(
    index: Any, params: ApproxParams, queries: np.ndarray, wanted: int, selector: Any
) -> np.ndarray:
    """``wanted`` candidate positions per query (-1 where fewer pass ``selector``)."""
    sel = selector[0] if selector else None
    if params.kind == "hnsw":
        search = faiss.SearchParametersHNSW(efSearch=max(params.ef_search, wanted))
    else:
        search = faiss.SearchParametersIVF(nprobe=min(params.nprobe, params.nlist))
    if sel is not None:
        search.sel = sel
    _, positions = index.search(queries, wanted, params=search)
    return positions


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
