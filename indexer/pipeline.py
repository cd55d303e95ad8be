"""index_library(): scan → decode (worker processes) → embed (batches) → store, resumable.

Every batch is committed as one unit: thumbnails and staged vectors are written first, then
the rows in one transaction, so a run killed at any instant resumes with nothing lost and
nothing embedded twice (see ``generations`` for the vector side). Re-runs embed only new and
changed files; moved files keep their id, vector and labels. A different model builds a new
index beside the searchable one and replaces it only when complete.
"""

from __future__ import annotations

import logging
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch

from encoders.encoder import Encoder
from encoders.errors import VitrieveError
from indexer.decode import Decoded, DecodePool, DecodeSettings
from indexer.generations import GenerationIndex, Repair, discard_building, switch_to_building
from indexer.layout import (
    Generation,
    Manifest,
    atomic_write_bytes,
    default_library,
    read_manifest,
    thumb_relpath,
    write_manifest,
    writer_lock,
)
from indexer.reports import IndexOptions, IndexProgress, IndexReport, ProgressCallback
from indexer.scan import ScanResult, scan
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
    photos = photos.resolve()
    if not photos.is_dir():
        raise VitrieveError(f"photo folder not found: {photos}")
    library = (library or default_library(photos)).resolve()
    started = time.monotonic()
    with writer_lock(library):
        manifest = _prepare_manifest(library, photos, db_url)
        store = MetadataStore.for_library(library, manifest.database)
        try:
            report = _run(photos, library, store, manifest, encoder, model_ref, options, progress)
        finally:
            store.close()
    report.seconds = time.monotonic() - started
    return report


def _prepare_manifest(library: Path, photos: Path, db_url: str | None) -> Manifest:
    manifest = read_manifest(library)
    if manifest is None:
        manifest = Manifest(root=str(photos), database=db_url)
    elif Path(manifest.root) != photos:
        raise VitrieveError(f"library {library} indexes {manifest.root}, not {photos}")
    elif db_url and manifest.database != db_url:
        raise VitrieveError(f"library {library} keeps its metadata in {manifest.database}")
    manifest.versions = _versions()
    write_manifest(library, manifest)
    return manifest


def _versions() -> dict[str, str]:
    out = {}
    for name in ("vitrieve", "torch", "faiss-cpu", "sqlalchemy", "pillow"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _target_generation(
    library: Path,
    store: MetadataStore,
    manifest: Manifest,
    encoder: Encoder,
    model_ref: str,
    kind: str,
) -> tuple[Generation, bool]:
    """The generation this run embeds into, and whether it is a new model's unfinished index."""
    current = Generation(0, model_ref, encoder.model_id, encoder.embed_dim, kind)
    if manifest.active is None:
        current.generation = 1
        manifest.active = current
    elif manifest.active.model_id == encoder.model_id:
        manifest.active.model_ref = model_ref
        discard_building(library, store, manifest)
    elif manifest.building is None or manifest.building.model_id != encoder.model_id:
        discard_building(library, store, manifest)
        current.generation = manifest.active.generation + 1
        manifest.building = current
    write_manifest(library, manifest)
    building = manifest.building is not None
    return (manifest.building if building else manifest.active), building


def _run(
    photos: Path,
    library: Path,
    store: MetadataStore,
    manifest: Manifest,
    encoder: Encoder,
    model_ref: str,
    options: IndexOptions,
    progress: ProgressCallback | None,
) -> IndexReport:
    settings = DecodeSettings(
        encoder.transform, encoder.image_size, options.max_pixels, options.thumb_size
    )
    with DecodePool(settings, options.workers, options.timeout, 2 * options.batch_size) as pool:
        pool.warm_up()  # workers start while the indexes are opened and the folder scanned
        return _run_with_pool(photos, library, store, manifest, encoder, model_ref, pool, progress,
                              options)  # fmt: skip


def _run_with_pool(
    photos: Path,
    library: Path,
    store: MetadataStore,
    manifest: Manifest,
    encoder: Encoder,
    model_ref: str,
    pool: DecodePool,
    progress: ProgressCallback | None,
    options: IndexOptions,
) -> IndexReport:
    if manifest.switching and manifest.building is not None:
        switch_to_building(library, store, manifest)  # finish a switch a crash interrupted
    target, building = _target_generation(
        library, store, manifest, encoder, model_ref, options.index_kind
    )
    report = IndexReport(str(library), str(photos), encoder.model_id, building=building)
    indexes = [GenerationIndex(library, store, manifest.active, building=False)]
    if building:
        indexes.append(GenerationIndex(library, store, target, building=True))
    repair = [ix.open() for ix in indexes]
    report.repaired = _repair_counts(repair)
    notify = progress or (lambda _p: None)
    notify(IndexProgress("scan"))
    result = scan(photos, store.all_files(), exclude=[library])
    _apply_scan(store, indexes, result, report)
    if options.retry_failed:
        store.retry_failed()
    work = store.work_list(target.generation)
    state = IndexProgress("embed", found=result.found, todo=len(work), skipped=report.unchanged)
    notify(state)
    writer = _BatchWriter(
        library, store, indexes[-1], encoder, report, state, notify, active=not building
    )
    paths = dict(work)
    for decoded in pool.imap_unordered((i, photos / p) for i, p in work):
        writer.add(decoded, paths[decoded.id], options.batch_size)
    writer.flush()
    notify(IndexProgress("merge", **_counts(state)))
    kinds = [ix.finish() for ix in indexes]
    for ix, kind in zip(indexes, kinds, strict=True):
        ix.generation.built_kind = kind
    if building and not store.work_list(target.generation):
        switch_to_building(library, store, manifest)
        report.switched, report.building = True, False
    write_manifest(library, manifest)
    report.vectors, report.index_kind = len(indexes[-1]), kinds[-1]
    report.failures += [(p, r) for p, r in result.unreadable]
    notify(IndexProgress("done", **_counts(state)))
    return report


def _counts(state: IndexProgress) -> dict[str, float]:
    names = ("found", "todo", "done", "failed", "skipped", "elapsed")
    return {k: getattr(state, k) for k in names}


def _repair_counts(repairs: list[Repair]) -> dict[str, int]:
    return {
        "dropped_vectors": sum(r.dropped_vectors for r in repairs),
        "reembedded": sum(r.reembed for r in repairs),
    }


def _apply_scan(
    store: MetadataStore, indexes: list[GenerationIndex], result: ScanResult, report: IndexReport
) -> None:
    """Record what the scan found: the rows first, then the vectors of stale content."""
    stale_paths = {r.path: r.id for r in store.all_files() if r.status == "deleted"}
    in_the_way = [stale_paths[f.path] for _, f in result.moved if f.path in stale_paths]
    store.remove_rows(in_the_way)
    store.update_rows(
        [{"id": i, "path": f.path, "size": f.size, "mtime_ns": f.mtime_ns} for i, f in result.moved]
        + [{"id": i, "size": f.size, "mtime_ns": f.mtime_ns} for i, f in result.touched]
    )
    store.mark_changed([(i, f.size, f.mtime_ns) for i, f in result.changed])
    store.mark_deleted(result.deleted)
    store.add_files((f.path, f.size, f.mtime_ns) for f in result.new)
    stale = [i for i, _ in result.changed] + result.deleted
    for ix in indexes:
        ix.remove(stale)
        ix.save()
    report.found, report.new, report.changed = result.found, len(result.new), len(result.changed)
    report.moved, report.deleted = len(result.moved), len(result.deleted)
    report.unchanged = len(result.unchanged) + len(result.touched)
    report.skipped_links = result.skipped


class _BatchWriter:
    """Collects decoded files; embeds and commits them a batch at a time."""

    def __init__(
        self,
        library: Path,
        store: MetadataStore,
        target: GenerationIndex,
        encoder: Encoder,
        report: IndexReport,
        state: IndexProgress,
        notify: ProgressCallback,
        active: bool,
    ) -> None:
        self.library, self.store, self.target, self.encoder = library, store, target, encoder
        self.report, self.state, self.notify = report, state, notify
        self.active = active  # rows become searchable now, or when a new model's index switches
        self.decoded: list[Decoded] = []
        self.failed: list[tuple[int, str, str | None]] = []
        self.started = time.monotonic()

    def add(self, decoded: Decoded, path: str, batch_size: int) -> None:
        if decoded.error is None:
            self.decoded.append(decoded)
        else:
            self.failed.append((decoded.id, decoded.error, decoded.facts.get("content_hash")))
            self.report.failures.append((path, decoded.error))
        if len(self.decoded) >= batch_size or len(self.failed) >= batch_size:
            self.flush()

    def flush(self) -> None:
        """Embed the batch; thumbnails and staged vectors first, then one SQL commit."""
        rows = []
        if self.decoded:
            ids = np.array([d.id for d in self.decoded], dtype=np.int64)
            pixels = torch.from_numpy(np.stack([d.pixels for d in self.decoded]))
            vectors = self.encoder.encode_image_tensors(pixels)
            for d in self.decoded:
                relpath = thumb_relpath(d.id)
                atomic_write_bytes(self.library / relpath, d.thumb or b"", fsync=False)
                rows.append({"id": d.id, "thumb": relpath, "error": None, **d.facts})
            self.target.stage(ids, vectors)
        self.store.record_batch(
            self.target.generation.generation,
            self.encoder.model_id,
            rows,
            self.failed,
            self.active,
        )
        self.state.done += len(rows)
        self.state.failed += len(self.failed)
        self.report.embedded += len(rows)
        self.decoded, self.failed = [], []
        self.state.elapsed = time.monotonic() - self.started
        self.notify(self.state)
