"""Searcher: text, image and mixed queries over one library, filtered inside the index,
with every result calibrated against what unrelated text scores here (``calibration``).

A query is one embedding: the weighted sum of its normalised parts (text, image) minus its
negative terms, normalised again. Query vectors are cached, so paging through results costs
only the index search and a few rows of metadata.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from encoders.errors import VitrieveError
from encoders.runtime.encoder import Encoder
from indexer.decode.images import decode_image
from indexer.store.metadata import MetadataStore
from indexer.store.queries import Label
from indexer.vectors.index import VectorSearch
from retrieval.search.calibration import Calibration, QueryStats, weak_results
from retrieval.search.query import (
    DEFAULT_LIMIT,
    Filters,
    ImageInput,
    Query,
    is_file,
    resolve_filters,
)
from retrieval.search.results import SearchResponse, SearchResult, result_of

log = logging.getLogger(__name__)

SORTS = ("score", "date")
DEFAULT_THRESHOLD = 0.5  # calibrated score of the cut-off (see retrieval.search.calibration)
RELEVANT_CAP = 2000  # most results considered when sorting the relevant set by date
CACHE_SIZE = 256


class Searcher:
    """Searches one library: ``Searcher(encoder, index, store, calibration)``."""

    def __init__(
        self,
        encoder: Encoder,
        index: VectorSearch,
        store: MetadataStore,
        calibration: Calibration,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self.encoder, self.index, self.store = encoder, index, store
        self.calibration = calibration
        self._cache: OrderedDict[tuple, tuple[np.ndarray, QueryStats]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    # --- the query embedding ---------------------------------------------------------------

    def query_vector(self, query: Query) -> tuple[np.ndarray, QueryStats]:
        """The normalised query embedding and its own score distribution (cached)."""
        key = _cache_key(query)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        vector = self._embed(query)
        text_part = query.text_weight if query.text else 0.0
        image_part = query.image_weight if query.image is not None else 0.0
        share = image_part / (text_part + image_part) if text_part + image_part > 0 else 0.0
        entry = (vector, self.calibration.stats(vector, image_share=share))
        with self._lock:  # one Searcher serves every session of the UI server
            self._cache[key] = entry
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return entry

    def _embed(self, query: Query) -> np.ndarray:
        texts = ([query.text] if query.text else []) + list(query.negatives)
        encoded = self.encoder.encode_texts(texts) if texts else None
        total = np.zeros(self.encoder.embed_dim, np.float64)
        if query.text:
            total += query.text_weight * encoded[0]
        if query.image is not None:
            total += query.image_weight * self.image_vector(query.image)
        if query.negatives:
            negatives = encoded[1:] if query.text else encoded
            total -= query.negative_weight * negatives.mean(axis=0)
        norm = np.linalg.norm(total)
        if norm < 1e-8:
            raise VitrieveError("the query's terms cancel out: nothing left to search for")
        return (total / norm).astype(np.float32)

    def image_vector(self, image: ImageInput) -> np.ndarray:
        """An indexed id's stored vector (nothing decoded), or a file's / image's embedding."""
        if isinstance(image, (int, np.integer)) and not isinstance(image, bool):
            try:
                return self.index.reconstruct(np.array([int(image)], np.int64))[0]
            except (KeyError, OverflowError):  # OverflowError: beyond 64-bit ids
                raise VitrieveError(f"unknown image id {int(image)}") from None
        if isinstance(image, (str, Path)):
            path = Path(image).expanduser()
            if not is_file(path):
                raise VitrieveError(f"image not found: {path}")
            image = decode_image(path, target_size=self.encoder.image_size).image
        if not isinstance(image, Image.Image):
            raise VitrieveError(f"cannot search with {type(image).__name__}: not an image")
        return self.encoder.encode_images([image.convert("RGB")])[0]

    # --- search ----------------------------------------------------------------------------

    def search(
        self,
        query: Query | str,
        filters: Filters | None = None,
        *,
        offset: int = 0,
        limit: int = DEFAULT_LIMIT,
        sort: str = "score",
        drop_weak: bool = False,
        threshold: float = DEFAULT_THRESHOLD,
        answered: Collection[int] = (),
    ) -> SearchResponse:
        """A page of results, best first (``sort="date"``: the relevant set, newest first).
        ``answered``: ids that answer the query another way (strong matches of their
        recognised text) — never below the cut-off, so never hidden or flagged."""
        if isinstance(query, str):
            query = Query.parse(query)
        if sort not in SORTS:
            raise VitrieveError(f"unknown sort {sort!r}: choose one of {', '.join(SORTS)}")
        if offset < 0 or limit < 1:
            raise VitrieveError("offset must be ≥ 0 and limit ≥ 1")
        clock = _Clock()
        vector, stats = self.query_vector(query)
        clock.lap("encode")
        allowed = resolve_filters(self.store, filters)
        clock.lap("filter")
        wanted = offset + limit + 1 if sort == "score" else RELEVANT_CAP
        pool = len(self.index) if allowed is None else len(allowed)
        k = max(1, min(wanted, pool))
        scores, ids = self.index.search(vector[None], k, allowed)
        found = ids[0] >= 0
        scores, ids = scores[0][found], ids[0][found]
        vectors = self._result_vectors(ids) if query.text and query.image is None else None
        calibrated = self.calibration.calibrate(scores, stats, vectors)
        weak = weak_results(calibrated, ids, threshold, answered)
        clock.lap("index")
        order = np.arange(len(ids))
        if sort == "date" and (~weak).any():
            order = self._by_date(ids, ~weak)
        if drop_weak:
            order = order[~weak[order]]
        page = order[offset : offset + limit]
        results = self._results(ids[page], scores[page], calibrated[page], weak[page])
        clock.lap("metadata")
        return SearchResponse(
            results=results, no_good_match=bool(weak.all()), offset=offset,
            limit=limit, sort=sort, has_more=len(order) > offset + limit,
            relevant=int((~weak).sum()), timings_ms=clock.laps,
        )  # fmt: skip

    def similar(
        self, image: ImageInput, filters: Filters | None = None, **options: Any
    ) -> SearchResponse:
        """ "More like this": an indexed id, an image file or a decoded image."""
        return self.search(Query(image=image), filters, **options)

    def _result_vectors(self, ids: np.ndarray) -> np.ndarray | None:
        """Stored vectors of ranked results, for the image-side relevance check."""
        try:
            return self.index.reconstruct(ids)
        except KeyError:  # a vector removed since the search (indexing in progress)
            return None

    def _by_date(self, ids: np.ndarray, relevant: np.ndarray) -> np.ndarray:
        """Positions of the relevant results, newest first (taken date, else file time)."""
        positions = np.flatnonzero(relevant)
        records = {r.id: r for r in self.store.get_files(ids[positions])}

        def moment(position: int) -> float:
            record = records.get(int(ids[position]))
            if record is None:
                return 0.0
            if record.taken_at is not None:
                return record.taken_at.timestamp()
            return record.mtime_ns / 1e9

        return np.array(sorted(positions, key=moment, reverse=True), dtype=np.int64)

    def _results(
        self, ids: np.ndarray, scores: np.ndarray, calibrated: np.ndarray, weak: np.ndarray
    ) -> list[SearchResult]:
        """A page's results with their file rows and every label (one query by primary key)."""
        records, labels = self.store.files_with_labels(ids)
        out = []
        for file_id, score, cal, is_weak in zip(ids, scores, calibrated, weak, strict=True):
            record = records.get(int(file_id))
            if record is None:  # a vector whose row vanished (indexing in progress)
                continue
            out.append(result_of(record, float(score), float(cal), bool(is_weak),
                                 labels.get(record.id, [])))  # fmt: skip
        return out

    def labels_of(self, ids: Sequence[int] | np.ndarray) -> dict[int, list[Label]]:
        """Every label of each id (all label sets), best score first."""
        return self.store.read_labels(ids=ids)


def _image_key(image: ImageInput | None) -> tuple:
    if image is None:
        return ()
    if isinstance(image, Image.Image):
        return ("pixels", image.size, hashlib.blake2b(image.tobytes(), digest_size=16).digest())
    if isinstance(image, (str, Path)):
        path = Path(image).expanduser()
        path, stat = (path.resolve(), path.stat()) if is_file(path) else (path, None)
        return ("file", str(path), stat.st_mtime_ns if stat else None)
    return ("id", int(image))


def _cache_key(query: Query) -> tuple:
    return (query.text, query.negatives, _image_key(query.image), query.text_weight,
            query.image_weight, query.negative_weight)  # fmt: skip


class _Clock:
    """Milliseconds spent in each step of a search: wall time, and this thread's CPU time
    (``cpu_<step>``: what the step costs on an idle core, whatever else the machine runs)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = (time.perf_counter(), time.thread_time())

    def lap(self, name: str) -> None:
        now = (time.perf_counter(), time.thread_time())
        self.laps[name] = round((now[0] - self._last[0]) * 1000, 3)
        self.laps[f"cpu_{name}"] = round((now[1] - self._last[1]) * 1000, 3)
        self._last = now
