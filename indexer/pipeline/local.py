"""index_library(): scan → decode (worker processes) → embed (batches) → store, resumable.

Every batch is committed as one unit: thumbnails and staged vectors are written first, then
the rows in one transaction, so a run killed at any instant resumes with nothing lost and
nothing embedded twice (see ``generations`` for the vector side). Re-runs embed only new and
changed files; moved files keep their id, vector and labels. A different model builds a new
index beside the searchable one and replaces it only when complete. The steps around decoding
and embedding are ``run``'s, shared with the Ray engine (``distributed``).

Workers send uint8 pixels, normalised here a batch at a time (``pixels``). On a CUDA device
(``IndexOptions.device``) workers only read, hash and plan the JPEGs nvJPEG can take, which are
decoded here on the GPU a batch at a time (``gpu_decode``); the rest decode in the workers as
on a CPU machine. On a CUDA device, each batch's commit (encode, thumbnails, vectors, SQL) runs
in one writer thread while this one receives and decodes the next batch (``writer``). The report's
``cpu`` says where the CPU time went, stage by stage, in the workers and in this process
(approximately where the commit overlaps: see ``writer.lap``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from encoders.runtime.device import resolve_device
from encoders.runtime.encoder import Encoder
from indexer.decode.gpu_decode import GpuJpegDecoder
from indexer.decode.pixels import Batcher, BatchNormalize, split_transform
from indexer.decode.workers import Decoded, DecodePool, DecodeSettings, decode_file
from indexer.layout import Manifest
from indexer.pipeline.reports import IndexOptions, IndexProgress, IndexReport, ProgressCallback
from indexer.pipeline.run import Request, Run, begin_run, finish_run, open_library, resolve_paths
from indexer.pipeline.writer import Batch, Committer, lap
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
    """Decode in worker processes, embed a batch at a time in this one."""
    encoder, options = request.encoder, request.options
    per_image, per_batch = split_transform(encoder.transform)
    device = resolve_device(options.device)
    on_gpu = decodes_jpeg_on(device, per_batch)
    settings = DecodeSettings(
        per_image, encoder.image_size, options.max_pixels, options.thumb_size, gpu_jpeg=on_gpu
    )
    gpu = _gpu_decoder(device, settings) if on_gpu else None
    cpu_start = time.process_time()
    with (
        _torch_threads(options.encoder_threads),
        DecodePool(settings, options.workers, options.timeout, 2 * options.batch()) as pool,
    ):
        pool.warm_up()  # workers start while the indexes are opened and the folder scanned
        run = begin_run(request, store, manifest)
        writer = _BatchWriter(run, encoder, per_batch, gpu, overlaps(encoder.device, gpu))
        paths = dict(run.work)
        try:
            for decoded in pool.imap_unordered((i, request.photos / p) for i, p in run.work):
                writer.add(decoded, paths[decoded.id], options.batch())
            writer.flush()
        finally:
            writer.close()
            if gpu is not None:
                gpu.close()
        report = finish_run(run)
        report.gpu_decoded = gpu.decoded_on_device if gpu is not None else 0
    report.cpu = writer.cpu_by_stage(time.process_time() - cpu_start, options.workers > 0)
    return report


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
    """Run the encoder with ``threads`` torch threads (0: as set), restored afterwards."""
    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _BatchWriter:
    """Collects decoded files; embeds and commits them a batch at a time (``overlap``: in a
    writer thread, while the next batch is collected; see ``writer``)."""

    def __init__(
        self,
        run: Run,
        encoder: Encoder,
        normalize: Batcher,
        gpu: GpuJpegDecoder | None = None,
        overlap: bool = False,
    ) -> None:
        self.run, self.encoder, self.normalize, self.gpu = run, encoder, normalize, gpu
        self.paths: dict[int, str] = {}  # file id → path, of files still to be decoded here
        self.decoded: list[Decoded] = []
        self.failed: list[tuple[int, str, str | None]] = []
        self.started = time.monotonic()
        self.cpu: dict[str, float] = {}  # stage → CPU seconds, workers' and this process's
        self.workers: dict[int, float] = {}  # worker pid → its CPU seconds so far
        self.committer = Committer(run, encoder, self.cpu, overlap, self.started)

    def add(self, decoded: Decoded, path: str, batch_size: int) -> None:
        for stage, seconds in decoded.cpu.items():
            self.cpu[stage] = self.cpu.get(stage, 0.0) + seconds
        if decoded.worker is not None:
            pid, before = decoded.worker
            self.workers[pid] = max(self.workers.get(pid, 0.0), before + sum(decoded.cpu.values()))
        if decoded.jpeg is not None:
            self.paths[decoded.id] = path
        if decoded.error is None:
            self.decoded.append(decoded)
        else:
            self._fail(decoded, path)
        if len(self.decoded) >= batch_size or len(self.failed) >= batch_size:
            self._submit()

    def _fail(self, decoded: Decoded, path: str) -> None:
        assert decoded.error is not None
        self.failed.append((decoded.id, decoded.error, decoded.facts.get("content_hash")))
        self.run.report.failures.append((path, decoded.error))

    def _decode_on_gpu(self) -> None:
        """Decode the batch's planned JPEGs on the GPU (or, where it fails, on the CPU)."""
        assert self.gpu is not None
        completed, self.decoded = self.gpu.complete(self.decoded), []
        for decoded in completed:
            path = self.paths.pop(decoded.id, "")
            if decoded.error is None:
                self.decoded.append(decoded)
            else:
                self._fail(decoded, path)

    def _pixels(self) -> torch.Tensor:
        """The batch's pixels on the encoder's device (normalised there: on a GPU, the uint8
        batch crosses from pinned host memory, a quarter of the bytes of the model input)."""
        device = self.encoder.device
        if self.gpu is None:
            host = torch.from_numpy(np.stack([d.pixels for d in self.decoded]))
            if device.type != "cuda":
                return host
            return host.pin_memory().to(device, non_blocking=True)
        return torch.stack([torch.as_tensor(d.pixels).to(device) for d in self.decoded])

    def _lap(self, stage: str, since: float) -> float:
        return lap(self.cpu, stage, since)  # the whole process: the encoder's threads included

    def cpu_by_stage(self, main_total: float, in_workers: bool) -> dict[str, float]:
        """Stage → CPU seconds; what no stage accounts for goes to the two "other" entries."""
        out = dict(self.cpu)
        timed = sum(out.values())
        workers_total = sum(self.workers.values()) if in_workers else 0.0
        worker_stages = sum(v for k, v in out.items() if not k.startswith("main "))
        if in_workers:  # pickling results, the pool's bookkeeping, start-up
            out["worker other"] = max(workers_total - worker_stages, 0.0)
            timed -= worker_stages  # worker stages ran in other processes
        out["main other"] = max(main_total - timed, 0.0)  # scan, receiving results, merge
        return out

    def flush(self) -> None:
        """Commit what is left, and wait until every batch is committed."""
        self._submit()
        self.committer.drain()

    def close(self) -> None:
        """Wait for a commit in progress and stop the writer thread (also after an error)."""
        self.committer.close()

    def _submit(self) -> None:
        """Decode (on the GPU) and normalise the batch here; hand it to the committer."""
        clock = time.process_time()
        if self.gpu is not None and self.decoded:
            self._decode_on_gpu()
            clock = self._lap("main gpu decode", clock)
        pixels = None
        if self.decoded:
            pixels = self.normalize(self._pixels())
            self._lap("main normalise", clock)
        batch, self.decoded, self.failed = Batch(self.decoded, pixels, self.failed), [], []
        self.committer.submit(batch)
