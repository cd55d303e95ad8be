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
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from encoders.errors import VitrieveError
from encoders.runtime.encoder import Encoder
from indexer.decode.workers import DecodeSettings, decode_file
from indexer.generations import GenerationIndex
from indexer.layout import Manifest, thumb_relpath, write_thumbnail
from indexer.pipeline.facts import Placer, complete_facts
from indexer.pipeline.reports import IndexOptions, IndexReport, ProgressCallback
from indexer.pipeline.run import Request, Run, begin_run, finish_run, open_library, resolve_paths
from indexer.pipeline.shards import build_from_shards, write_shard
from indexer.store.metadata import MetadataStore

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
        threads: int,
    ) -> None:
        import torch

        torch.set_num_threads(threads)
        self.encoder = Encoder.load(model_ref, precision=precision, device=options.device)
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
                write_thumbnail(self.library, d.id, d.thumb or b"")
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


@dataclass(frozen=True)
class RayPlan:
    """Where and how wide the actor pool runs."""

    address: str | None  # None: a local Ray instance started (and stopped) for this run
    concurrency: int  # actors
    threads: int  # torch threads per actor (each actor reserves as many Ray CPUs)


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
    threads: int = 1,
) -> IndexReport:
    """Like ``index_library``, with decode → embed on Ray (``address`` None: local Ray).

    ``model_ref`` must be a checkpoint directory the workers can read; ``concurrency`` is the
    number of actors (default: the decoder count of ``options.schedule``, divided by
    ``threads``; at least 1), ``threads`` the torch threads (and Ray CPUs) of each."""
    photos, library = resolve_paths(photos, library)
    request = Request(photos, library, db_url, encoder, model_ref, options, progress)
    if not Path(model_ref).is_dir():
        raise VitrieveError(f"the Ray engine needs a checkpoint directory, not {model_ref!r}")
    if threads < 1:
        raise VitrieveError(f"threads per Ray actor must be at least 1, got {threads}")
    workers, _ = options.schedule()
    plan = RayPlan(address, concurrency or max(1, workers // threads), threads)
    with open_library(request) as (store, manifest):
        return _run(request, store, manifest, plan)


def _run(request: Request, store: MetadataStore, manifest: Manifest, plan: RayPlan) -> IndexReport:
    """Decode and embed on Ray; each batch's vectors are staged in a shard, not the index."""
    run = begin_run(request, store, manifest, recover=_merge_own_shards)  # a crash's leftovers
    placer = Placer()  # places are found here, on the committing side, a batch at a time
    if run.work:
        folder = shard_dir(run.library, run.target.generation)
        batches = _embed_on_ray(run, folder, plan)
        embed_started = time.monotonic()
        for batch in batches:
            _record(batch, run, placer)
            run.state.elapsed = time.monotonic() - embed_started
            run.notify(run.state)
    complete_facts(store, request.photos, placer, run.report, run.notify)
    return finish_run(run, merge=_merge_own_shards)


def _merge_own_shards(target: GenerationIndex) -> None:
    folder = shard_dir(target.library, target.generation.generation)
    merge_shards(target, folder, target.store)


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


def _embed_on_ray(run: Run, folder: Path, plan: RayPlan) -> Iterator[dict[str, np.ndarray]]:
    """Stream result batches (ids, errors, facts) from the actor pool as they complete."""
    import ray
    import torch

    request, encoder, options = run.request, run.request.encoder, run.request.options
    started_here = not ray.is_initialized()
    if started_here:
        cpus = plan.concurrency * plan.threads + 1
        local = {} if plan.address else {"num_cpus": cpus, "object_store_memory": 2**28}
        ray.init(
            address=plan.address,
            include_dashboard=False,
            log_to_driver=False,  # workers' output stays in Ray's log files
            logging_level=logging.WARNING,
            **local,
        )
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        items = [{"id": i, "path": str(request.photos / p)} for i, p in run.work]
        precision = "bf16" if encoder.dtype == torch.bfloat16 else "fp32"
        library, model_ref = str(run.library), request.model_ref
        args = (model_ref, encoder.model_id, precision, library, str(folder), options, plan.threads)
        dataset = ray.data.from_items(items).map_batches(
            EmbedActor,
            fn_constructor_args=args,
            batch_size=options.batch(),
            batch_format="numpy",
            concurrency=plan.concurrency,
            num_cpus=plan.threads,
        )
        yield from dataset.iter_batches(batch_size=None, batch_format="numpy")
    finally:
        if started_here:
            ray.shutdown()


def _record(batch: dict[str, np.ndarray], run: Run, placer: Placer) -> None:
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
    placer.place(rows)
    run.store.record_batch(
        run.target.generation, run.request.encoder.model_id, rows, failed, run.active
    )
    paths = {r.id: r.path for r in run.store.get_files([i for i, _ in failed])}
    run.report.failures += [(paths.get(i, str(i)), reason) for i, reason in failed]
    run.report.embedded += len(rows)
    run.state.done += len(rows)
    run.state.failed += len(failed)
