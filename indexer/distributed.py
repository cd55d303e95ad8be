"""index_with_ray(): the indexing pipeline with decode → embed on Ray Data, for big libraries.

The driver does what needs the library's single writer: lock, scan, SQL rows, the index. The
per-file work (read, hash, decode, preprocess, thumbnail) and the model run in an actor pool
(``map_batches`` with a class: each actor loads the encoder once from its checkpoint). Each
batch's vectors go to a shard in ``LIB/shards/gN/`` (``.npy`` float32 vectors + ``.parquet``
with ids and paths), made durable *before* the driver commits the batch's rows, so a crash
loses nothing: the next run adds the shards of committed rows. At the end one index is built
from the shards: an approximate kind is trained on a sample drawn across all of them, then
the shards are added one by one.

Local Ray by default (``address=None``); ``address="ray://head:10001"`` or ``"auto"`` for a
cluster, whose workers must see the photos, the library folder and the checkpoint at the same
paths (a shared file system).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from encoders.encoder import Encoder
from encoders.errors import VitrieveError
from indexer.decode import DecodeSettings, decode_file
from indexer.generations import GenerationIndex, switch_to_building
from indexer.layout import (
    Manifest,
    atomic_write_bytes,
    default_library,
    thumb_relpath,
    write_manifest,
    writer_lock,
)
from indexer.pipeline import (  # the local engine's steps, shared so both engines agree
    IndexOptions,
    IndexProgress,
    IndexReport,
    ProgressCallback,
    _apply_scan,
    _counts,
    _prepare_manifest,
    _repair_counts,
    _target_generation,
)
from indexer.scan import scan
from indexer.shards import build_from_shards, write_shard
from indexer.store import MetadataStore

log = logging.getLogger(__name__)


def shard_dir(library: Path, generation: int) -> Path:
    return library / "shards" / f"g{generation}"


class EmbedActor:
    """One Ray actor: loads the encoder once, then decodes and embeds batches of files."""

    def __init__(
        self,
        model_ref: str,
        model_id: str,
        precision: str,
        library: str,
        shards: str,
        options: IndexOptions,
    ) -> None:
        import torch

        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
        self.encoder = Encoder.load(model_ref, precision=precision)
        if self.encoder.model_id != model_id:
            raise VitrieveError(f"{model_ref} on this worker is not the driver's model")
        self.settings = DecodeSettings(
            self.encoder.transform, self.encoder.image_size, options.max_pixels, options.thumb_size
        )
        self.library, self.shards = Path(library), Path(shards)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        ids, paths = batch["id"].astype(np.int64), [str(p) for p in batch["path"]]
        decoded = [
            decode_file(int(i), Path(p), self.settings) for i, p in zip(ids, paths, strict=True)
        ]
        good = [d for d in decoded if d.error is None]
        shard = ""
        if good:
            pixels = torch.from_numpy(np.stack([d.pixels for d in good]))
            vectors = self.encoder.encode_image_tensors(pixels)
            for d in good:
                atomic_write_bytes(self.library / thumb_relpath(d.id), d.thumb or b"")
            where = {int(i): p for i, p in zip(ids, paths, strict=True)}
            good_ids = np.array([d.id for d in good], np.int64)
            shard = write_shard(self.shards, good_ids, vectors, [where[d.id] for d in good])
        facts = [json.dumps(d.facts, default=_iso) if d.error is None else "" for d in decoded]
        return {
            "id": ids,
            "error": np.array([d.error or "" for d in decoded], dtype=object),
            "facts": np.array(facts, dtype=object),
            "shard": np.array([shard if d.error is None else "" for d in decoded], dtype=object),
        }


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def index_with_ray(
    photos: Path,
    encoder: Encoder,
    *,
    model_ref: str,
    library: Path | None = None,
    db_url: str | None = None,
    options: IndexOptions = IndexOptions(),
    progress: ProgressCallback | None = None,
    address: str | None = None,
    concurrency: int | None = None,
) -> IndexReport:
    """Like ``index_library``, with decode → embed on Ray (``address`` None: local Ray).

    ``model_ref`` must be a checkpoint directory the workers can read; ``concurrency`` is the
    number of actors (default: ``options.workers``, at least 1)."""
    photos = photos.resolve()
    if not photos.is_dir():
        raise VitrieveError(f"photo folder not found: {photos}")
    if not Path(model_ref).is_dir():
        raise VitrieveError(f"--engine ray needs a checkpoint directory, not {model_ref!r}")
    library = (library or default_library(photos)).resolve()
    started = time.monotonic()
    with writer_lock(library):
        manifest = _prepare_manifest(library, photos, db_url)
        store = MetadataStore.for_library(library, manifest.database)
        try:
            ray_args = (address, concurrency or max(1, options.workers))
            report = _run(
                photos, library, store, manifest, encoder, model_ref, options, progress, ray_args
            )
        finally:
            store.close()
    report.seconds = time.monotonic() - started
    return report


def _run(
    photos: Path,
    library: Path,
    store: MetadataStore,
    manifest: Manifest,
    encoder: Encoder,
    model_ref: str,
    options: IndexOptions,
    progress: ProgressCallback | None,
    ray_args: tuple[str | None, int],
) -> IndexReport:
    """The steps of ``pipeline._run`` with the embedding loop on Ray and shards for staging."""
    if manifest.switching and manifest.building is not None:
        switch_to_building(library, store, manifest)
    target, building = _target_generation(
        library, store, manifest, encoder, model_ref, options.index_kind
    )
    report = IndexReport(str(library), str(photos), encoder.model_id, building=building)
    indexes = [GenerationIndex(library, store, manifest.active, building=False)]
    if building:
        indexes.append(GenerationIndex(library, store, target, building=True))
    folder = shard_dir(library, target.generation)
    merge_shards(indexes[-1], folder, store)  # what a crashed run left behind
    report.repaired = _repair_counts([ix.open() for ix in indexes])
    notify = progress or (lambda _p: None)
    notify(IndexProgress("scan"))
    result = scan(photos, store.all_files(), exclude=[library])
    _apply_scan(store, indexes, result, report)
    work = store.work_list(target.generation)
    state = IndexProgress("embed", found=result.found, todo=len(work), skipped=report.unchanged)
    notify(state)
    if work:
        batches = _embed_on_ray(
            work, photos, library, folder, encoder, model_ref, options, ray_args
        )
        embed_started = time.monotonic()
        for batch in batches:
            _record(batch, store, target.generation, encoder.model_id, not building, report, state)
            state.elapsed = time.monotonic() - embed_started
            notify(state)
    notify(IndexProgress("merge", **_counts(state)))
    merge_shards(indexes[-1], folder, store)
    kinds = [ix.finish() for ix in indexes]
    if building and not store.work_list(target.generation):
        switch_to_building(library, store, manifest)
        report.switched, report.building = True, False
    write_manifest(library, manifest)
    report.vectors, report.index_kind = len(indexes[-1]), kinds[-1]
    report.failures += [(p, r) for p, r in result.unreadable]
    notify(IndexProgress("done", **_counts(state)))
    return report


def merge_shards(target: GenerationIndex, folder: Path, store: MetadataStore) -> int:
    """Build the generation's index from the shards of committed rows; then drop the shards."""
    if not folder.is_dir():
        return 0
    before = len(target.index)
    committed = store.embedded_ids(target.generation.generation)
    target.index = build_from_shards(target.index, folder, committed, target.generation.index_kind)
    target.index.save(target.path)  # the index holds them: only now may the shards go
    shutil.rmtree(folder)
    return len(target.index) - before


def _embed_on_ray(
    work: list[tuple[int, str]],
    photos: Path,
    library: Path,
    folder: Path,
    encoder: Encoder,
    model_ref: str,
    options: IndexOptions,
    ray_args: tuple[str | None, int],
) -> Iterator[dict[str, np.ndarray]]:
    """Stream result batches (ids, errors, facts) from the actor pool as they complete."""
    import ray
    import torch

    address, concurrency = ray_args
    started_here = not ray.is_initialized()
    if started_here:
        local = {} if address else {"num_cpus": concurrency + 1, "object_store_memory": 2**28}
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,  # workers' output stays in Ray's log files
            logging_level=logging.WARNING,
            **local,
        )
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        items = [{"id": i, "path": str(photos / p)} for i, p in work]
        precision = "bf16" if encoder.dtype == torch.bfloat16 else "fp32"
        args = (model_ref, encoder.model_id, precision, str(library), str(folder), options)
        dataset = ray.data.from_items(items).map_batches(
            EmbedActor,
            fn_constructor_args=args,
            batch_size=options.batch_size,
            batch_format="numpy",
            concurrency=concurrency,
            num_cpus=1,
        )
        yield from dataset.iter_batches(batch_size=None, batch_format="numpy")
    finally:
        if started_here:
            ray.shutdown()


def _record(
    batch: dict[str, np.ndarray],
    store: MetadataStore,
    generation: int,
    model_id: str,
    active: bool,
    report: IndexReport,
    state: IndexProgress,
) -> None:
    """Commit one result batch's rows (its shard is already durable)."""
    rows, failed = [], []
    for file_id, error, facts in zip(batch["id"], batch["error"], batch["facts"], strict=True):
        if error:
            failed.append((int(file_id), str(error)))
            continue
        values = json.loads(facts)
        if values.get("taken_at"):
            values["taken_at"] = datetime.fromisoformat(values["taken_at"])
        rows.append(
            {"id": int(file_id), "thumb": thumb_relpath(int(file_id)), "error": None, **values}
        )
    store.record_batch(generation, model_id, rows, failed, active)
    paths = {r.id: r.path for r in store.get_files([i for i, _ in failed])}
    report.failures += [(paths.get(i, str(i)), reason) for i, reason in failed]
    report.embedded += len(rows)
    state.done += len(rows)
    state.failed += len(failed)
