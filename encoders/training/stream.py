"""Streamed images for data sets too big to preload: decoded by DataLoader workers, prefetched.

Preloading (``data.preload_images``) keeps every image as uint8 at the training size: 12 KB
a 64 px image, 150 KB a 224 px photo — a million photos would need 150 GB. Such a set is
streamed instead: the trainer hands the loader the index batches it is going to ask for, in
its own order (so order, augmentation and resume are the same as for preloaded data), worker
processes decode and fit each image exactly as preloading does, and uint8 batches arrive a few
steps ahead, in pinned memory when they are bound for a GPU. The augmentation stays the
trainer's, on its device.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from encoders.training.data import decode_fit

log = logging.getLogger(__name__)

# Preloaded images above this size are streamed instead (``TrainOptions.stream`` None).
PRELOAD_LIMIT_BYTES = 16 * 2**30
PREFETCH_BATCHES = 4  # per worker: enough to ride out a slow file


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
