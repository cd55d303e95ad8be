"""index_library(): scan → decode (worker processes) → embed (batches) → store, resumable.

Every batch is committed as one unit: thumbnails and staged vectors are written first, then
the rows in one transaction, so a run killed at any instant resumes with nothing lost and
nothing embedded twice (see ``generations`` for the vector side). Re-runs embed only new and
changed files; moved files keep their id, vector and labels. A different model builds a new
index beside the searchable one and replaces it only when complete. The steps around decoding
and embedding are ``run``'s, shared with the Ray engine (``distributed``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from encoders.encoder import Encoder
from indexer.decode import Decoded, DecodePool, DecodeSettings
from indexer.layout import Manifest, atomic_write_bytes, thumb_relpath
from indexer.reports import IndexOptions, IndexProgress, IndexReport, ProgressCallback
from indexer.run import Request, Run, begin_run, finish_run, open_library, resolve_paths
from indexer.store import MetadataStore

log = logging.getLogger(__name__)

__all__ = [
    "IndexOptions",
    "IndexProgress",
    "IndexReport",
    "ProgressCallback",
    "index_library",
]


def index_library(
    photos: Path,
    encoder: Encoder,
    *,
    model_ref: str,
    library: Path | None = None,
    db_url: str | None = None,
    options: IndexOptions = IndexOptions(),
    progress: ProgressCallback | None = None,
) -> IndexReport:
    """Index the photo folder ``photos`` into ``library`` (default ``photos/.vitrieve``)."""
    photos, library = resolve_paths(photos, library)
    request = Request(photos, library, db_url, encoder, model_ref, options, progress)
    with open_library(request) as (store, manifest):
        return _run(request, store, manifest)


def _run(request: Request, store: MetadataStore, manifest: Manifest) -> IndexReport:
    """Decode in worker processes, embed a batch at a time in this one."""
    encoder, options = request.encoder, request.options
    settings = DecodeSettings(
        encoder.transform, encoder.image_size, options.max_pixels, options.thumb_size
    )
    with DecodePool(settings, options.workers, options.timeout, 2 * options.batch_size) as pool:
        pool.warm_up()  # workers start while the indexes are opened and the folder scanned
        run = begin_run(request, store, manifest)
        writer = _BatchWriter(run, encoder)
        paths = dict(run.work)
        for decoded in pool.imap_unordered((i, request.photos / p) for i, p in run.work):
            writer.add(decoded, paths[decoded.id], options.batch_size)
        writer.flush()
        return finish_run(run)


class _BatchWriter:
    """Collects decoded files; embeds and commits them a batch at a time."""

    def __init__(self, run: Run, encoder: Encoder) -> None:
        self.run, self.encoder = run, encoder
        self.decoded: list[Decoded] = []
        self.failed: list[tuple[int, str, str | None]] = []
        self.started = time.monotonic()

    def add(self, decoded: Decoded, path: str, batch_size: int) -> None:
        if decoded.error is None:
            self.decoded.append(decoded)
        else:
            self.failed.append((decoded.id, decoded.error, decoded.facts.get("content_hash")))
            self.run.report.failures.append((path, decoded.error))
        if len(self.decoded) >= batch_size or len(self.failed) >= batch_size:
            self.flush()

    def flush(self) -> None:
        """Embed the batch; thumbnails and staged vectors first, then one SQL commit."""
        run, rows = self.run, []
        if self.decoded:
            ids = np.array([d.id for d in self.decoded], dtype=np.int64)
            pixels = torch.from_numpy(np.stack([d.pixels for d in self.decoded]))
            vectors = self.encoder.encode_image_tensors(pixels)
            for d in self.decoded:
                relpath = thumb_relpath(d.id)
                atomic_write_bytes(run.library / relpath, d.thumb or b"", fsync=False)
                rows.append({"id": d.id, "thumb": relpath, "error": None, **d.facts})
            run.index.stage(ids, vectors)
        run.store.record_batch(
            run.target.generation, self.encoder.model_id, rows, self.failed, run.active
        )
        run.state.done += len(rows)
        run.state.failed += len(self.failed)
        run.report.embedded += len(rows)
        self.decoded, self.failed = [], []
        run.state.elapsed = time.monotonic() - self.started
        run.notify(run.state)
