"""index_library(): scan → read and decode (worker processes) → embed → commit, resumable.

Every batch is committed as one unit: thumbnails and staged vectors are written first, then
the rows in one transaction, so a run killed at any instant resumes with nothing lost and
nothing embedded twice (see ``generations`` for the vector side). Re-runs embed only new and
changed files; moved files keep their id, vector and labels. A different model builds a new
index beside the searchable one and replaces it only when complete. The steps around decoding
and embedding are ``run``'s, shared with the Ray engine (``ray_engine``); the stages a batch
goes through, and the one place files become batches, are ``stages``'.

Workers send uint8 pixels, normalised here a batch at a time (``pixels``). On a CUDA device
(``IndexOptions.device``) workers only read, hash and plan the JPEGs nvJPEG can take, which are
decoded here on the GPU a batch at a time (``gpu_decode``); the rest decode in the workers as
on a CPU machine. On a CUDA device, each batch's commit (encode, thumbnails, vectors, SQL) runs
in one writer thread while this one receives and decodes the next batch. How many decoders and
encoder threads share the cores is ``IndexOptions.schedule``'s rule. The report's ``cpu`` says
where the CPU time went, stage by stage, in the workers and in this process (``stopwatch``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import torch

from encoders.runtime.device import resolve_device
from encoders.runtime.encoder import Encoder
from indexer.decode.gpu_decode import GpuJpegDecoder
from indexer.decode.pixels import Batcher, BatchNormalize, split_transform
from indexer.decode.workers import Decoded, DecodePool, DecodeSettings, decode_file
from indexer.layout import Manifest
from indexer.pipeline.facts import Placer, complete_facts
from indexer.pipeline.reports import IndexOptions, IndexProgress, IndexReport, ProgressCallback
from indexer.pipeline.run import Request, Run, begin_run, finish_run, open_library, resolve_paths
from indexer.pipeline.stages import Committer, Stages, Target, batches
from indexer.pipeline.stopwatch import Stopwatch
from indexer.store.metadata import MetadataStore

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
    """Read and decode in worker processes; batch, embed and commit in this one (``stages``)."""
    encoder, options = request.encoder, request.options
    per_image, per_batch = split_transform(encoder.transform)
    device = resolve_device(options.device)
    on_gpu = decodes_jpeg_on(device, per_batch)
    settings = DecodeSettings(
        per_image, encoder.image_size, options.max_pixels, options.thumb_size, gpu_jpeg=on_gpu
    )
    workers, threads = options.schedule()
    size = options.batch()
    watch = Stopwatch()
    gpu = _gpu_decoder(device, settings) if on_gpu else None
    with (
        _torch_threads(threads),
        DecodePool(settings, workers, options.timeout, 2 * size) as pool,
    ):
        pool.warm_up()  # workers start while the indexes are opened and the folder scanned
        run = begin_run(request, store, manifest)
        placer = Placer()  # one geocoder per run, built only if a photo has a position
        stages = Stages(_target(run), encoder, per_batch, gpu, placer)
        overlap = overlaps(encoder.device, gpu)
        committer = Committer(stages.prepare(), stages.commit(), stages.counted, watch, overlap)
        try:
            files = pool.imap_unordered([(i, request.photos / p) for i, p in run.work])
            for batch in batches(files, size):
                committer.submit(batch)
            committer.drain()
        finally:
            committer.close()
            if gpu is not None:
                gpu.close()
        complete_facts(store, request.photos, placer, run.report, run.notify)
        report = finish_run(run)
        report.gpu_decoded = gpu.decoded_on_device if gpu is not None else 0
    report.cpu = watch.by_stage(in_workers=workers > 0)
    return report


def _target(run: Run) -> Target:
    """Where ``run``'s batches go, read once (not a property lookup per batch)."""
    return Target(
        library=run.library,
        index=run.index,
        store=run.store,
        generation=run.target.generation,
        active=run.active,
        paths=dict(run.work),
        report=run.report,
        state=run.state,
        notify=run.notify,
    )


def decodes_jpeg_on(device: torch.device, per_batch: Batcher) -> bool:
    """Whether JPEGs are decoded with nvJPEG: on a CUDA device, when the encoder's
    preprocessing travels as uint8 pixels (the GPU path makes the same uint8 input)."""
    return device.type == "cuda" and isinstance(per_batch, BatchNormalize)


def overlaps(device: torch.device, gpu: GpuJpegDecoder | None) -> bool:
    """Whether batches are committed by a writer thread while the next is received and
    decoded: on a CUDA encoder or with nvJPEG (``gpu``), where the main thread mostly waits on
    the device. On the CPU the commit stays in the main thread (measured: a thread only adds
    contention for the cores the decoders use)."""
    return gpu is not None or device.type == "cuda"


def _gpu_decoder(device: torch.device, settings: DecodeSettings) -> GpuJpegDecoder:
    """nvJPEG for the planned JPEGs; what it cannot decode, the CPU decoder does here."""

    on_cpu_settings = replace(settings, gpu_jpeg=False)

    def on_cpu(item: Decoded) -> Decoded:  # read, hashed and decoded again: all consistent
        assert item.jpeg is not None
        return decode_file(item.id, Path(item.jpeg.path), on_cpu_settings)

    return GpuJpegDecoder(device, settings.target_size, settings.thumb_size, on_cpu)


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """Run the encoder with ``threads`` torch threads, restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
