"""What an indexing run is told (IndexOptions) and what it tells (IndexProgress, IndexReport).

Shared by the local engine (``pipeline``) and the Ray engine (``distributed``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from encoders.runtime.device import DEFAULT_DEVICE, resolve_device
from indexer.decode.images import DEFAULT_MAX_PIXELS
from indexer.decode.workers import DEFAULT_TIMEOUT

# Images per model call and per commit, by device type: a GPU needs hundreds to be busy (and
# nvJPEG decodes a batch per call); on a CPU a small batch keeps commits frequent.
DEFAULT_INDEX_BATCH = {"cpu": 32, "cuda": 256}


@dataclass(frozen=True)
class IndexOptions:
    """How to run: parallelism, batch size, limits."""

    workers: int | None = None  # decoder processes (None: one per core); 0: in this process
    batch_size: int | None = None  # images per model call and per commit; None: the device's
    timeout: float = DEFAULT_TIMEOUT  # seconds one file may take to decode
    max_pixels: int = DEFAULT_MAX_PIXELS
    thumb_size: int = 256
    index_kind: str = "auto"
    retry_failed: bool = False  # decode failed files again (e.g. after a time-out)
    encoder_threads: int = 0  # torch threads of the encoder during the run (0: one per core)
    # where JPEGs are decoded: nvJPEG on a CUDA device (``gpu_decode``); give the Encoder the same
    device: str = DEFAULT_DEVICE

    def batch(self) -> int:
        """``batch_size``, or the default of the device the run uses."""
        if self.batch_size is not None:
            return self.batch_size
        kind = resolve_device(self.device).type
        return DEFAULT_INDEX_BATCH.get(kind, DEFAULT_INDEX_BATCH["cpu"])

    def schedule(self, cores: int | None = None) -> tuple[int, int]:
        """(decoder processes, encoder torch threads) on ``cores`` (default: the cores this
        process may run on), for what was left at 0/None: one of each per core.

        The encoder takes every core; the decoders run at a lower priority (``decode.workers``)
        and take what it leaves, so neither waits for a core the other does not use. On a
        CPU they share the cores: decoding costs a fifth of encoding's CPU time per image, and
        a decoder per core keeps every core busy while the encoder waits for a batch. Where a
        GPU encodes (and decodes JPEGs) the CPU's work is reading, hashing and planning each
        file: a decoder per core is what keeps the GPU fed."""
        cores = cores or available_cores()
        workers = cores if self.workers is None else self.workers
        return workers, self.encoder_threads or cores


def available_cores() -> int:
    """The cores this process may run on (``taskset`` and cgroup CPU sets included)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


@dataclass
class IndexProgress:
    """A progress snapshot passed to the caller's callback."""

    phase: str  # "scan", "embed", "facts" (an older library's EXIF read again), "merge", "done"
    found: int = 0  # image files under the root
    todo: int = 0  # files to embed in this run
    done: int = 0  # embedded so far
    failed: int = 0  # recorded as failed in this run
    skipped: int = 0  # unchanged or moved: nothing to do
    elapsed: float = 0.0  # seconds since the embed phase began

    @property
    def rate(self) -> float:
        return (self.done + self.failed) / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        left = self.todo - self.done - self.failed
        return left / self.rate if self.rate > 0 else None


@dataclass
class IndexReport:
    """What a run did, for the CLI summary and ``--json``."""

    library: str
    root: str
    model_id: str
    found: int = 0
    new: int = 0
    changed: int = 0
    moved: int = 0
    deleted: int = 0
    unchanged: int = 0
    embedded: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), this run
    skipped_links: list[str] = field(default_factory=list)
    repaired: dict[str, int] = field(default_factory=dict)
    vectors: int = 0
    index_kind: str = ""
    building: bool = False  # a new model's index is not finished yet
    switched: bool = False  # this run completed a new model's index and made it searchable
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by stage (local engine)
    gpu_decoded: int = 0  # JPEGs decoded with nvJPEG in this run (the rest on the CPU)
    located: int = 0  # photos given a place (nearest city) in this run
    facts_backfilled: int = 0  # photos indexed before whose EXIF facts this run read again
    # what places added to the run: waiting for the cities to load (once, and only if a photo
    # had GPS; the load starts in the background) and the nearest-city lookups
    places_seconds: float = 0.0


ProgressCallback = Callable[[IndexProgress], None]
