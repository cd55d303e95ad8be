"""What an indexing run is told (IndexOptions) and what it tells (IndexProgress, IndexReport).

Shared by the local engine (``pipeline``) and the Ray engine (``distributed``).
"""

from __future__ import annotations

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

    workers: int = 2  # decoder processes; 0 decodes in this process (no time limit)
    batch_size: int | None = None  # images per model call and per commit; None: the device's
    timeout: float = DEFAULT_TIMEOUT  # seconds one file may take to decode
    max_pixels: int = DEFAULT_MAX_PIXELS
    thumb_size: int = 256
    index_kind: str = "auto"
    retry_failed: bool = False  # decode failed files again (e.g. after a time-out)
    # torch threads of the encoder during the run (0: leave torch's setting). 1 leaves the
    # other core to the decoders and never stalls at a parallel barrier when the cores are shared.
    encoder_threads: int = 0
    # where JPEGs are decoded: nvJPEG on a CUDA device (``gpu_decode``); give the Encoder the same
    device: str = DEFAULT_DEVICE

    def batch(self) -> int:
        """``batch_size``, or the default of the device the run uses."""
        if self.batch_size is not None:
            return self.batch_size
        kind = resolve_device(self.device).type
        return DEFAULT_INDEX_BATCH.get(kind, DEFAULT_INDEX_BATCH["cpu"])


@dataclass
class IndexProgress:
    """A progress snapshot passed to the caller's callback."""

    phase: str  # "scan", "embed", "merge", "done"
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


ProgressCallback = Callable[[IndexProgress], None]
