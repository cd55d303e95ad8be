"""Near-duplicates: photos whose stored vectors are nearly identical (copies, re-encodes,
resizes, light edits), found with a FAISS range search and grouped as connected components.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from encoders.errors import VitrieveError
from indexer.store import MetadataStore
from indexer.vectors import VectorSearch

DEFAULT_THRESHOLD = 0.97  # cosine; re-encoded and resized copies sit above it
BATCH = 1024


@dataclass
class DuplicateGroup:
    """Images that are near-identical to each other (directly or through a chain)."""

    ids: list[int]
    paths: list[str]
    min_similarity: float  # the weakest link that joined the group

    def to_dict(self) -> dict:
        return {"ids": self.ids, "paths": self.paths, "min_similarity": self.min_similarity}


def duplicate_pairs(
    index: VectorSearch, threshold: float, batch: int = BATCH
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair ``(a, b, similarity)`` with a < b and similarity ≥ ``threshold``."""
    ids = np.sort(np.asarray(index.ids(), np.int64))
    firsts, seconds, sims = [], [], []
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        for query_id, (hits, scores) in zip(
            chunk, index.range_search(index.reconstruct(chunk), threshold), strict=True
        ):
            keep = hits > query_id  # each pair once, and not the image with itself
            firsts.append(np.full(int(keep.sum()), query_id))
            seconds.append(hits[keep])
            sims.append(scores[keep])
    if not firsts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(firsts), np.concatenate(seconds), np.concatenate(sims)


def find_duplicates(
    index: VectorSearch, store: MetadataStore, threshold: float = DEFAULT_THRESHOLD
) -> list[DuplicateGroup]:
    """Groups of near-identical images, largest first (then the tightest first)."""
    if not 0.0 < threshold <= 1.0:
        raise VitrieveError(f"the duplicate threshold is a cosine in (0, 1], got {threshold}")
    first, second, sims = duplicate_pairs(index, threshold)
    if len(first) == 0:
        return []
    nodes, inverse = np.unique(np.concatenate([first, second]), return_inverse=True)
    a, b = inverse[: len(first)], inverse[len(first) :]
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(nodes), len(nodes)))
    _, component = connected_components(graph, directed=False)
    paths = {r.id: r.path for r in store.get_files(nodes)}
    groups = []
    for label in np.unique(component):
        members = nodes[component == label]
        weakest = float(sims[component[a] == label].min())
        ids = [int(i) for i in members]
        groups.append(DuplicateGroup(ids, [paths.get(i, "?") for i in ids], weakest))
    groups.sort(key=lambda g: (-len(g.ids), -g.min_similarity, g.ids[0]))
    return groups
