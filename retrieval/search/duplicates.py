"""Near-duplicates: copies, re-encodes, resizes and light edits of the same photo.

Two stages. A FAISS range search over the stored vectors proposes every pair above a cosine
``threshold`` (cheap, and it never decodes an image); on a CUDA device the same pairs come
from chunked device matrix products (``retrieval.search.scoring``). A semantic embedding, though,
is built
to call two *different* photos of the same thing similar — a small model may put them as
close as a re-encoded copy — so each proposed pair is then confirmed on pixels: the two
library thumbnails, shrunk to 16×16 colour, must differ by at most ``max_rms`` grey levels
(root mean square): resizing and re-encoding change a few levels, a different photo tens.
Confirmed pairs are grouped as connected components, largest groups first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from encoders.errors import VitrieveError
from encoders.runtime.device import resolve_device
from indexer.store.metadata import MetadataStore
from indexer.vectors.index import VectorSearch
from retrieval.search.scoring import pairs_above

DEFAULT_THRESHOLD = 0.95  # cosine; re-encoded and resized copies sit above it
DEFAULT_MAX_RMS = 6.0  # grey levels at 16×16: re-encodes and resizes differ by 2-4
SIGNATURE_SIDE = 16
BATCH = 1024
ThumbnailOf = Callable[[int], Path | None]


@dataclass
class DuplicateGroup:
    """Images that are near-identical to each other (directly or through a chain)."""

    ids: list[int]
    paths: list[str]
    min_similarity: float  # the weakest link that joined the group

    def to_dict(self) -> dict:
        return {"ids": self.ids, "paths": self.paths, "min_similarity": self.min_similarity}


def signature(path: Path) -> np.ndarray | None:
    """A tiny colour copy of an image (``SIGNATURE_SIDE``² RGB, float), None if unreadable."""
    try:
        with Image.open(path) as image:
            small = image.convert("RGB").resize(
                (SIGNATURE_SIDE, SIGNATURE_SIDE), Image.Resampling.BOX
            )
    except (OSError, UnidentifiedImageError):
        return None
    return np.asarray(small, np.float32)


def pixel_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Root-mean-square difference of two signatures, in 0–255 grey levels."""
    return float(np.sqrt(np.mean((a - b) ** 2)))


def _confirmed(
    first: np.ndarray, second: np.ndarray, thumbnail_of: ThumbnailOf, max_rms: float
) -> np.ndarray:
    """Which proposed pairs look alike on pixels too (pairs without thumbnails are kept)."""
    signatures: dict[int, np.ndarray | None] = {}
    for file_id in np.unique(np.concatenate([first, second])).tolist():
        try:
            path = thumbnail_of(file_id)
        except VitrieveError:  # a vector whose row is gone: judged on its vector alone
            path = None
        signatures[file_id] = signature(path) if path is not None else None
    keep = np.ones(len(first), dtype=bool)
    for n, (a, b) in enumerate(zip(first.tolist(), second.tolist(), strict=True)):
        sa, sb = signatures[a], signatures[b]
        if sa is not None and sb is not None:
            keep[n] = pixel_distance(sa, sb) <= max_rms
    return keep


def duplicate_pairs(
    index: VectorSearch, threshold: float, batch: int = BATCH, device: torch.device | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair ``(a, b, similarity)`` with a < b and similarity ≥ ``threshold``: by FAISS
    range search, or, given a ``device``, by matrix products of the stored vectors there."""
    ids = np.sort(np.asarray(index.ids(), np.int64))
    if device is not None:
        first, second, sims = pairs_above(index.reconstruct(ids), threshold, device)
        return ids[first], ids[second], sims
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
    index: VectorSearch,
    store: MetadataStore,
    threshold: float = DEFAULT_THRESHOLD,
    thumbnail_of: ThumbnailOf | None = None,
    max_rms: float = DEFAULT_MAX_RMS,
    device: str | torch.device | None = None,
) -> list[DuplicateGroup]:
    """Groups of near-identical images, largest first (then the tightest first).

    ``thumbnail_of(id)`` (e.g. ``Library.thumbnail_path``) turns on the pixel check; on a CUDA
    ``device`` the candidate pairs are computed there (elsewhere by FAISS)."""
    if not 0.0 < threshold <= 1.0:
        raise VitrieveError(f"the duplicate threshold is a cosine in (0, 1], got {threshold}")
    where = resolve_device(device) if device is not None else None
    on_gpu = where if where is not None and where.type == "cuda" else None
    first, second, sims = duplicate_pairs(index, threshold, device=on_gpu)
    if thumbnail_of is not None and len(first):
        keep = _confirmed(first, second, thumbnail_of, max_rms)
        first, second, sims = first[keep], second[keep], sims[keep]
    if len(first) == 0:
        return []
    nodes, inverse = np.unique(np.concatenate([first, second]), return_inverse=True)
    a, b = inverse[: len(first)], inverse[len(first) :]
    from scipy.sparse import coo_matrix  # here: a GPU machine's offline wheel set stays small
    from scipy.sparse.csgraph import connected_components

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
