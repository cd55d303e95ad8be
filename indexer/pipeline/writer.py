"""A batch's commit — encode, thumbnail files, staged vectors, one SQL commit — in this
thread or, on a GPU machine, in one background thread while the next batch is received and
decoded.

On a CUDA device the main thread's work per batch (receiving from the decoder processes,
nvJPEG decoding, normalising) is queued GPU work and light CPU work, and the commit waits for
the encoder's results and the database: done one after the other, each stage idles while the
other runs. ``Committer`` overlaps them: the main thread hands each prepared ``Batch`` over and
goes on with the next one while a single writer thread commits it. Batches are committed in
order, one at a time, always from that one thread, so the SQL session and the FAISS staging are
never used from two threads; at most one batch is being committed while the next is prepared,
so memory stays bounded. The counters (``run.state``, ``run.report.embedded``) and progress
callbacks stay in the main thread: it takes a committed batch's counts back when it hands
the next over, or when it drains. An error in the writer thread is raised in the main thread at
the next hand-over or drain; a commit in progress is always waited for, so the store is never
closed under it. Within a batch the order that makes a killed run resumable is unchanged:
thumbnails and staged vectors first, then the rows in one transaction.

On the CPU the commit runs in the main thread as it always has (``overlap=False``): encoding
there competes with the decoders for the cores, and a thread would only add contention.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from encoders.runtime.encoder import Encoder
from indexer.decode.decoded import Decoded
from indexer.layout import thumb_relpath, write_thumbnail
from indexer.pipeline.run import Run

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """One batch, built by the main thread and, once handed over, only read by the writer."""

    decoded: list[Decoded]  # decoded files, in the order of ``pixels``
    pixels: torch.Tensor | None  # their normalised model inputs; None when no file decoded
    failed: list[tuple[int, str, str | None]]  # (file id, reason, content hash)
    cpu: dict[str, float] = field(default_factory=dict)  # stage → CPU seconds of its commit


def lap(cpu: dict[str, float], stage: str, since: float) -> float:
    """Add the process CPU time since ``since`` to ``stage``; the time now.

    ``time.process_time`` is the whole process's (the encoder's threads included): on the
    overlapped path it also counts the other thread's work, so the stages' figures there are
    approximate (their sum can exceed the process's total)."""
    now = time.process_time()
    cpu[stage] = cpu.get(stage, 0.0) + now - since
    return now


def commit(run: Run, encoder: Encoder, batch: Batch, cpu: dict[str, float]) -> None:
    """Embed ``batch``: thumbnail files and staged vectors first, then one SQL commit (a run
    killed at any instant resumes with nothing lost and nothing embedded twice). CPU time
    by stage goes to ``cpu``."""
    rows: list[dict] = []
    clock = time.process_time()
    if batch.decoded:
        assert batch.pixels is not None
        ids = np.array([d.id for d in batch.decoded], dtype=np.int64)
        vectors = encoder.encode_image_tensors(batch.pixels)
        clock = lap(cpu, "main encode", clock)
        for d in batch.decoded:
            write_thumbnail(run.library, d.id, d.thumb or b"")
            rows.append({"id": d.id, "thumb": thumb_relpath(d.id), "error": None, **d.facts})
        clock = lap(cpu, "main thumbnail files", clock)
        run.index.stage(ids, vectors)
        clock = lap(cpu, "main vectors", clock)
    run.store.record_batch(run.target.generation, encoder.model_id, rows, batch.failed, run.active)
    lap(cpu, "main database", clock)


class Committer:
    """Commits batches in order, in this thread or (``overlap``) in one writer thread.

    ``submit`` and ``drain`` are called from the main thread only; so are the counters and the
    progress callback, updated once a batch is committed."""

    def __init__(
        self, run: Run, encoder: Encoder, cpu: dict[str, float], overlap: bool, started: float
    ) -> None:
        self.run, self.encoder, self.cpu, self.started = run, encoder, cpu, started
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="index-writer")
            if overlap
            else None
        )
        self._pending: tuple[Future[None], Batch] | None = None

    def submit(self, batch: Batch) -> None:
        """Commit ``batch``: now, or in the writer thread once the batch before it is done
        (whose error, if any, is raised here)."""
        if self._executor is None:
            commit(self.run, self.encoder, batch, self.cpu)
            self._committed(batch)
            return
        self.drain()
        future = self._executor.submit(commit, self.run, self.encoder, batch, batch.cpu)
        self._pending = (future, batch)

    def drain(self) -> None:
        """Wait for the batch being committed; raise its error; count it."""
        if self._pending is None:
            return
        future, batch = self._pending
        self._pending = None
        future.result()
        for stage, seconds in batch.cpu.items():
            self.cpu[stage] = self.cpu.get(stage, 0.0) + seconds
        self._committed(batch)

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

    def _committed(self, batch: Batch) -> None:
        run = self.run
        run.state.done += len(batch.decoded)
        run.state.failed += len(batch.failed)
        run.report.embedded += len(batch.decoded)
        run.state.elapsed = time.monotonic() - self.started
        run.notify(run.state)
