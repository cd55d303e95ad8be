"""The local engine's stages, reader → decoder → encoder → committer, over batches of files.

* **reader and CPU decoder**: the decode workers (``decode.workers``) read, hash, decode and
  thumbnail each file; their results arrive one file at a time, in completion order.
* **batching**: ``batches`` is the one place files become batches (``IndexOptions.batch``
  files, or as many failures); a batch carries its failures with it to the commit.
* **decoder (GPU)** and **model input**: ``Stages.prepare`` — nvJPEG completes the JPEGs the
  workers only planned, then the uint8 pixels are stacked and normalised a batch at a time
  (``decode.pixels``).
* **encoder** and **committer**: ``Stages.commit`` — encode; thumbnail files, the rows'
  places (``facts.Placer``: one nearest-city query per batch) and staged vectors first, then
  the rows in one SQL transaction, so a run killed at any instant resumes
  with nothing lost and nothing embedded twice (see ``generations`` for the vector side).

Each stage is a plain step on a ``Batch``; the ``Committer`` runs them in order and times
each one from outside (the steps never see a clock): a batch's figures go to the run's
``Stopwatch`` at once, with those its files brought from the workers.

On a CUDA device the main thread's work per batch (receiving from the decoder processes,
nvJPEG decoding, normalising) is queued GPU work and light CPU work, and the commit waits for
the encoder's results and the database: done one after the other, each stage idles while the
other runs. With ``overlap`` the main thread hands each prepared batch over and goes on with
the next one while a single writer thread commits it. Batches are committed in order, one at
a time, always from that one thread, so the SQL session and the FAISS staging are never used
from two threads; at most one batch is being committed while the next is prepared, so memory
stays bounded. Counting stays in the main thread: it runs for a committed batch when the next
one is handed over, or at the drain. An error in the writer thread is raised in the main
thread at the next hand-over or drain; a commit in progress is always waited for, so the
store is never closed under it. On the CPU the commit runs in the main thread
(``overlap=False``): encoding there competes with the decoders for the cores, and a thread
would only add contention.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from encoders.runtime.encoder import Encoder
from indexer.decode.decoded import Decoded
from indexer.decode.gpu_decode import GpuJpegDecoder
from indexer.decode.pixels import Batcher
from indexer.generations import GenerationIndex
from indexer.layout import thumb_relpath, write_thumbnail
from indexer.pipeline.facts import Placer
from indexer.pipeline.reports import IndexProgress, IndexReport, ProgressCallback
from indexer.pipeline.stopwatch import Stopwatch
from indexer.store.metadata import MetadataStore

log = logging.getLogger(__name__)

Step = tuple[str, Callable[["Batch"], None]]  # (stage name, what it does to a batch)


@dataclass
class Batch:
    """One batch of files on its way through the stages."""

    decoded: list[Decoded]  # decoded (or planned for the GPU) files, in the order of ``pixels``
    failed: list[Decoded]  # files that cannot be indexed (``error`` says why)
    pixels: torch.Tensor | None = None  # the model inputs of ``decoded`` (``prepare``)
    vectors: np.ndarray | None = None  # their embeddings (``commit``)
    rows: list[dict] = field(default_factory=list)  # their ``files`` rows (``commit``)


def batches(files: Iterable[Decoded], size: int) -> Iterator[Batch]:
    """Group ``files`` into batches of ``size`` decoded files (or ``size`` failures)."""
    decoded: list[Decoded] = []
    failed: list[Decoded] = []
    for item in files:
        (decoded if item.error is None else failed).append(item)
        if len(decoded) >= size or len(failed) >= size:
            yield Batch(decoded, failed)
            decoded, failed = [], []
    if decoded or failed:
        yield Batch(decoded, failed)


@dataclass
class Target:
    """Where a run's batches go: its library, index, rows and counters."""

    library: Path
    index: GenerationIndex
    store: MetadataStore
    generation: int
    active: bool  # rows become searchable at once (not a new model's index)
    paths: dict[int, str]  # file id → path relative to the photo folder, for the report
    report: IndexReport
    state: IndexProgress
    notify: ProgressCallback
    started: float = field(default_factory=time.monotonic)  # progress' elapsed counts from here


class Stages:
    """The steps of one run, on its encoder, (optional) GPU decoder and target."""

    def __init__(
        self,
        target: Target,
        encoder: Encoder,
        normalize: Batcher,
        gpu: GpuJpegDecoder | None = None,
        placer: Placer | None = None,
    ) -> None:
        self.target, self.encoder, self.normalize, self.gpu = target, encoder, normalize, gpu
        self.placer = placer or Placer()

    def prepare(self) -> list[Step]:
        """The steps that make a batch's model input (run by the caller's thread)."""
        steps: list[Step] = [("places warm-up", self.warm_up_places)]
        if self.gpu is not None:
            steps.append(("gpu decode", self.decode_on_gpu))
        return [*steps, ("normalise", self.model_input)]

    def commit(self) -> list[Step]:
        """The steps that embed and store a batch, in the order that makes a kill resumable."""
        return [
            ("encode", self.encode),
            ("thumbnail files", self.write_thumbnails),
            ("places", self.place),
            ("vectors", self.stage_vectors),
            ("database", self.record),
        ]

    # --- prepare -------------------------------------------------------------------------

    def warm_up_places(self, batch: Batch) -> None:
        """The geocoder starts loading in the background once a file has a position."""
        self.placer.warm_up(d.facts for d in batch.decoded)

    def decode_on_gpu(self, batch: Batch) -> None:
        """Decode the batch's planned JPEGs on the GPU (or, where it fails, on the CPU)."""
        if not batch.decoded:
            return
        assert self.gpu is not None
        completed = self.gpu.complete(batch.decoded)
        batch.decoded = [d for d in completed if d.error is None]
        batch.failed += [d for d in completed if d.error is not None]

    def model_input(self, batch: Batch) -> None:
        """The batch's normalised pixels on the encoder's device (on a GPU the uint8 batch
        crosses from pinned host memory, a quarter of the bytes of the model input)."""
        if not batch.decoded:
            return
        device = self.encoder.device
        if self.gpu is not None:
            pixels = torch.stack([torch.as_tensor(d.pixels).to(device) for d in batch.decoded])
        else:
            pixels = torch.from_numpy(np.stack([d.pixels for d in batch.decoded]))
            if device.type == "cuda":
                pixels = pixels.pin_memory().to(device, non_blocking=True)
        batch.pixels = self.normalize(pixels)

    # --- commit --------------------------------------------------------------------------

    def encode(self, batch: Batch) -> None:
        if batch.pixels is not None:
            batch.vectors = self.encoder.encode_image_tensors(batch.pixels)

    def write_thumbnails(self, batch: Batch) -> None:
        library = self.target.library
        for d in batch.decoded:
            write_thumbnail(library, d.id, d.thumb or b"")
            batch.rows.append({"id": d.id, "thumb": thumb_relpath(d.id), "error": None, **d.facts})

    def place(self, batch: Batch) -> None:
        self.placer.place(batch.rows)

    def stage_vectors(self, batch: Batch) -> None:
        if batch.vectors is not None:
            ids = np.array([d.id for d in batch.decoded], dtype=np.int64)
            self.target.index.stage(ids, batch.vectors)

    def record(self, batch: Batch) -> None:
        """The batch's rows in one transaction (a failure keeps its hash: move detection)."""
        failed = [(d.id, d.error or "", d.facts.get("content_hash")) for d in batch.failed]
        target = self.target
        model_id = self.encoder.model_id
        target.store.record_batch(target.generation, model_id, batch.rows, failed, target.active)

    # --- counters (the caller's thread) --------------------------------------------------

    def counted(self, batch: Batch) -> None:
        """Count a committed batch and tell the progress callback."""
        target = self.target
        target.report.failures += [(target.paths[d.id], d.error or "") for d in batch.failed]
        target.report.embedded += len(batch.decoded)
        target.state.done += len(batch.decoded)
        target.state.failed += len(batch.failed)
        target.state.elapsed = time.monotonic() - target.started
        target.notify(target.state)


class Committer:
    """Runs the ``prepare`` steps of each submitted batch here, then its ``commit`` steps here
    or (``overlap``) in the writer thread; calls ``done(batch)`` here once it is committed.

    ``submit``, ``drain`` and ``close`` are called from one thread only (the caller's)."""

    def __init__(
        self,
        prepare: list[Step],
        commit: list[Step],
        done: Callable[[Batch], None],
        watch: Stopwatch,
        overlap: bool,
    ) -> None:
        self.prepare, self.commit, self.done, self.watch = prepare, commit, done, watch
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="index-writer")
            if overlap
            else None
        )
        self._pending: tuple[Future[None], Batch] | None = None

    def submit(self, batch: Batch) -> None:
        """Prepare ``batch`` and commit it: now, or in the writer thread once the batch before
        it is done (whose error, if any, is raised here)."""
        self._run(self.prepare, batch, received=True)
        if self._executor is None:
            self._run(self.commit, batch)
            self.done(batch)
            return
        self.drain()
        self._pending = (self._executor.submit(self._run, self.commit, batch), batch)

    def _run(self, steps: list[Step], batch: Batch, received: bool = False) -> None:
        """``steps`` on ``batch`` in order, each one's process CPU time to the stopwatch (with
        the workers' time on its files, when it was just ``received``)."""
        took = {}
        clock = time.process_time()
        try:
            for stage, step in steps:
                step(batch)
                now = time.process_time()
                took[stage], clock = now - clock, now
        finally:
            self.watch.took(took, [*batch.decoded, *batch.failed] if received else [])

    def drain(self) -> None:
        """Wait for the batch being committed; raise its error; count it."""
        if self._pending is None:
            return
        future, batch = self._pending
        self._pending = None
        future.result()
        self.done(batch)

    def close(self) -> None:
        """Wait for a commit still in progress (its error, unless drained, is only logged:
        the main thread is leaving with an error of its own) and stop the writer thread."""
        if self._executor is None:
            return
        if self._pending is not None:
            future, _ = self._pending
            self._pending = None
            if future.exception() is not None:
                log.warning("a batch's commit failed too: %s", future.exception())
        self._executor.shutdown(wait=True)
