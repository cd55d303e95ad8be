"""Streamed images for data sets too big to preload: decoded by DataLoader workers, prefetched.

Preloading (``data.preload_images``) keeps every image as uint8 at the training size: 12 KB
a 64 px image, 150 KB a 224 px photo — a million photos would need 150 GB. Such a set is
streamed instead: the trainer hands the loader the index batches it is going to ask for, in
its own order (so order, augmentation and resume are the same as for preloaded data), worker
processes decode and fit each image exactly as preloading does, and uint8 batches arrive a few
steps ahead, in pinned memory when they are bound for a GPU. The augmentation stays the
trainer's, on its device.

How many loader workers: each one is a process that keeps up to ``PREFETCH_BATCHES`` decoded
batches in shared memory (``/dev/shm``) until the trainer takes them. So a rank gets the
machine's cores shared among the ranks on it (at most ``MAX_LOADER_WORKERS``), and no more
workers than a share of ``/dev/shm``'s free space holds — a container's default 64 MB
``/dev/shm`` would otherwise kill the run with a bus error ("No space left on device").
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from encoders.training.data import decode_fit

log = logging.getLogger(__name__)

# Preloaded images above this size are streamed instead (``TrainOptions.stream`` None).
PRELOAD_LIMIT_BYTES = 16 * 2**30
PREFETCH_BATCHES = 4  # per worker: enough to ride out a slow file
MAX_LOADER_WORKERS = 16  # per rank: beyond this the decoders outrun any GPU step here
SHM_SHARE = 0.5  # of /dev/shm's free space that the loaders of all ranks may fill
SHM = Path("/dev/shm")


def loader_workers(cores: int, ranks: int, batch_bytes: int, shm_free: int | None) -> int:
    """Loader worker processes for one of ``ranks`` processes on a machine with ``cores``:
    the cores shared among the ranks (1 to ``MAX_LOADER_WORKERS``), capped so that all
    workers' prefetched batches fit in ``SHM_SHARE`` of ``shm_free`` bytes (None: unknown,
    no cap); 0 — decode in the training process — when not even one worker's would."""
    ranks = max(ranks, 1)
    by_cores = max(1, min(MAX_LOADER_WORKERS, cores // ranks))
    if shm_free is None:
        return by_cores
    by_shm = int(SHM_SHARE * shm_free / ranks) // max(PREFETCH_BATCHES * batch_bytes, 1)
    return min(by_cores, by_shm)


def machine_loader_workers(batch_bytes: int, ranks: int) -> int:
    """``loader_workers`` for this machine: the cores this process may run on, and the free
    space of ``/dev/shm`` (unknown where there is none)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        shm_free: int | None = shutil.disk_usage(SHM).free
    except OSError:
        shm_free = None
    workers = loader_workers(cores, ranks, batch_bytes, shm_free)
    shm = "unknown" if shm_free is None else f"{shm_free / 2**20:.0f} MiB"
    log.info("streaming with %d loader workers (%d cores, %d ranks, /dev/shm free %s)",
             workers, cores, ranks, shm)  # fmt: skip
    return workers


def preload_bytes(count: int, image_size: int) -> int:
    """Host memory that preloading ``count`` images at ``image_size`` would take."""
    return count * 3 * image_size * image_size


class DecodedImages(Dataset):
    """Image ``i`` as uint8 (3, S, S), fitted like a preloaded one; black when unreadable
    (its caption stays: one bad file costs one noisy pair, not the run)."""

    def __init__(self, paths: Sequence[Path], image_size: int) -> None:
        self.paths = list(paths)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        pixels = decode_fit(self.paths[index], self.image_size)
        if pixels is None:
            return torch.zeros(3, self.image_size, self.image_size, dtype=torch.uint8)
        return torch.from_numpy(pixels).permute(2, 0, 1)


class _IndexBatches:
    """A one-pass batch sampler over the trainer's own upcoming index batches."""

    def __init__(self, batches: Iterable[torch.Tensor]) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            yield batch.tolist()


class StreamedImages:
    """Stands in for the preloaded uint8 tensor: its length and shape, and ``stream``."""

    def __init__(self, paths: Sequence[Path], image_size: int) -> None:
        self.dataset = DecodedImages(paths, image_size)
        self.shape = (len(paths), 3, image_size, image_size)

    def __len__(self) -> int:
        return len(self.dataset)

    def stream(
        self, batches: Iterable[torch.Tensor], workers: int, pin: bool
    ) -> Iterator[torch.Tensor]:
        """uint8 (B, 3, S, S) batches for ``batches`` of indices, in that order."""
        loader = DataLoader(
            self.dataset,
            batch_sampler=_IndexBatches(batches),
            num_workers=workers,
            pin_memory=pin,
            prefetch_factor=PREFETCH_BATCHES if workers else None,
        )
        return iter(loader)
