"""Library: opens a library directory and wires Encoder + VectorIndex + MetadataStore.

It is the one object the CLI and the UI hold. Opening is cheap (manifest, SQL, FAISS file);
the model is loaded on first use, and the relevance calibration is computed on the first
search (then kept in ``calibration.npz``). Files are only ever served through ``file_path`` and
``thumbnail_path``, which refuse anything outside the library, whatever id or row they get.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from encoders.errors import VitrieveError
from encoders.runtime.device import DEFAULT_DEVICE
from encoders.runtime.encoder import Encoder
from indexer.layout import (
    DEFAULT_LIBRARY_DIR,
    Manifest,
    locate_library,
    read_manifest,
    vectors_path,
)
from indexer.store.metadata import DB_FILE, FileRecord, MetadataStore
from indexer.store.queries import Filters, Label
from indexer.vectors.index import VectorIndex
from retrieval.library.label_counts import label_counts
from retrieval.library.model import check_model, load_model
from retrieval.library.paths import image_key, inside
from retrieval.search.calibration import CALIBRATION_FILE, Calibration, load_or_compute
from retrieval.search.searcher import Searcher

log = logging.getLogger(__name__)


@dataclass
class LibraryStats:
    """What a library holds, for ``status``-like pages."""

    path: str
    root: str
    model_ref: str | None
    model_id: str | None
    index_kind: str
    vectors: int
    counts: dict[str, int]  # files per status
    formats: dict[str, int] = field(default_factory=dict)  # indexed files per format
    taken_by_month: dict[str, int] = field(default_factory=dict)  # "2024-07" → images
    label_sets: list[str] = field(default_factory=list)


__all__ = ["DEFAULT_LIBRARY_DIR", "Library", "LibraryStats", "locate_library"]


def _writable(path: Path) -> bool:
    """Whether the library's folder and database can be written (not on a read-only file
    system, not immutable, not someone else's files)."""
    db = path / DB_FILE
    return os.access(path, os.W_OK) and (not db.exists() or os.access(db, os.W_OK))


class Library:
    """One opened library: its manifest, metadata store, vector index and (lazily) model."""

    def __init__(
        self, path: Path, manifest: Manifest, store: MetadataStore, index: VectorIndex,
        encoder: Encoder | None = None, device: str = DEFAULT_DEVICE, compile: bool = False,
    ) -> None:  # fmt: skip
        self.path, self.manifest, self.store, self.index = path, manifest, store, index
        self.device, self.compile = device, compile
        self.root = Path(manifest.root).resolve()
        self._encoder = encoder

    @classmethod
    def open(
        cls, path: Path, db_url: str | None = None, encoder: Encoder | None = None,
        device: str = DEFAULT_DEVICE, compile: bool = False,
    ) -> Library:  # fmt: skip
        """Open the library at ``path`` (``locate_library``); VitrieveError when it is
        missing or broken. ``encoder`` overrides the library's own model (it must be the same
        model); ``device`` is where the library's own model runs when it is loaded, ``compile``
        whether it is compiled (``retrieval.service.serving.ServingConfig.compile``)."""
        path = locate_library(path)
        manifest = read_manifest(path)
        if manifest is None:
            raise VitrieveError(f"no library at {path}")
        url = db_url or manifest.database
        read_only = url is None and not _writable(path)
        if read_only:
            log.info("%s is read-only: opening its database without writing", path)
        store = MetadataStore.for_library(path, url, read_only=read_only)
        vectors = vectors_path(path)
        if vectors.exists():
            index = VectorIndex.load(vectors)
        else:  # a library whose first indexing run has not finished: empty, still usable
            dim = manifest.active.embed_dim if manifest.active else 1
            index = VectorIndex.create(dim, kind="flat")
        if encoder is not None and manifest.active is not None:
            check_model(encoder, manifest)
        return cls(path, manifest, store, index, encoder, device=device, compile=compile)

    # --- the collaborators -----------------------------------------------------------------

    @property
    def encoder(self) -> Encoder:
        """The library's model (the checkpoint it keeps, ``retrieval.library.model``), loaded
        on first use."""
        if self._encoder is None:
            self._encoder = load_model(self.path, self.manifest, self.device, self.compile)
        return self._encoder

    @property
    def loaded_encoder(self) -> Encoder | None:
        """The model if it was loaded already (never loads it)."""
        return self._encoder

    @cached_property
    def calibration(self) -> Calibration:
        return load_or_compute(self.path / CALIBRATION_FILE, self.encoder, self.index)

    @cached_property
    def searcher(self) -> Searcher:
        return Searcher(self.encoder, self.index, self.store, self.calibration)

    def duplicates(self, threshold: float | None = None) -> list:
        """Near-duplicate groups (``retrieval.search.duplicates``), confirmed on the thumbnails; the
        similarities are computed on the library's device."""
        from retrieval.search.duplicates import DEFAULT_THRESHOLD, find_duplicates

        return find_duplicates(
            self.index, self.store, threshold or DEFAULT_THRESHOLD, self.thumbnail_path,
            device=self.device,
        )  # fmt: skip

    def label(self, classifier: Any, label_set: str, progress: Any = None) -> Any:
        """Label every image with a ``ZeroShotClassifier`` into ``label_set``, from the stored
        vectors (``retrieval.labels.zeroshot.label_library``); its ``LabelReport``."""
        from retrieval.labels.zeroshot import label_library

        return label_library(self.index, self.store, classifier, label_set, progress=progress)

    def label_rows(self, label_set: str | None = None) -> list[tuple[str, str, str, float]]:
        """``(path, label_set, label, score)`` of every label (of one set), as exported."""
        from retrieval.labels.export import label_rows

        return label_rows(self.store, label_set)

    def labels(self, ids: Any = None, label_set: str | None = None) -> dict[int, list[Label]]:
        """Every label per image (all images or ``ids``; all sets or one), best first."""
        return self.store.read_labels(label_set, ids)

    def label_counts(self, label_set: str, best_only: bool = True) -> dict[str, int]:
        """``{label: images}`` of one label set, counted in SQL, most first; ``best_only``:
        each image under its best label only (``retrieval.library.label_counts``)."""
        return label_counts(self.store, label_set, best_only)

    def failures(self, limit: int | None = None) -> list[tuple[str, str]]:
        """``(path, reason)`` of the files that could not be indexed, by path."""
        return self.store.failures(limit)

    def ids(self, filters: Filters | None = None) -> np.ndarray:
        """Sorted ids of the searchable images (passing ``filters``)."""
        if filters is None or filters.is_empty():
            return np.sort(np.asarray(self.index.ids(), np.int64))
        return self.store.filter_ids(filters)

    def vectors(self, ids: Any) -> np.ndarray:
        """The stored embeddings of ``ids`` (nothing decoded), in order."""
        return self.index.reconstruct(np.asarray(ids, np.int64))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()

    # --- files -----------------------------------------------------------------------------

    def count(self) -> int:
        """Number of searchable images (vectors in the index)."""
        return len(self.index)

    def record(self, file_id: int | str) -> FileRecord:
        """The row of an image in the library; VitrieveError for an unknown or deleted id."""
        key = image_key(file_id)
        rows = self.store.get_files([key])
        if not rows or rows[0].status == "deleted":
            raise VitrieveError(f"unknown image id {key}")
        return rows[0]

    def file_path(self, file_id: int | str) -> Path:
        """The image file of ``file_id``: always a regular file inside the photo root."""
        record = self.record(file_id)
        return inside(self.root, record.path, f"image {record.id}")

    def thumbnail_path(self, file_id: int | str) -> Path | None:
        """The thumbnail of ``file_id``: a ``.webp`` file under the library's ``thumbs/``
        (never ``library.db`` or another file of the library, whatever the row says); None
        when it has none."""
        record = self.record(file_id)
        if not record.thumb:
            return None
        try:
            thumb = inside(self.path, record.thumb, f"thumbnail of {record.id}")
        except VitrieveError:
            return None
        if thumb.suffix != ".webp" or not thumb.is_relative_to((self.path / "thumbs").resolve()):
            log.warning("thumbnail of %s is not under thumbs/: %r", record.id, record.thumb)
            return None
        return thumb

    def id_for_path(self, path: Path | str) -> int | None:
        """The id of an indexed file given its path (absolute or relative to the root)."""
        candidate = Path(path).expanduser()
        try:
            relative = (
                candidate.resolve().relative_to(self.root) if candidate.is_absolute() else candidate
            )
        except (ValueError, OSError):
            return None
        return self.store.indexed_id(relative.as_posix())

    def stats(self) -> LibraryStats:
        """Counts per status and format, dates per month, label sets, model and index."""
        active = self.manifest.active
        months = Counter(d.strftime("%Y-%m") for d in self.store.taken_dates())
        return LibraryStats(
            path=str(self.path), root=str(self.root),
            model_ref=active.model_ref if active else None,
            model_id=active.model_id if active else None,
            index_kind=self.index.kind, vectors=len(self.index),
            counts=self.store.status_counts(), formats=self.store.format_counts(),
            taken_by_month=dict(sorted(months.items())), label_sets=self.store.label_sets(),
        )  # fmt: skip
