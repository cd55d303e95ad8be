"""Which pairs each optimiser step trains on, as a pure function of the run's position.

Epoch e's order is a permutation seeded by (seed, e), cut into global batches of
``samples_per_step``; each rank takes its slice of every batch, and a batch that would run
past the end of the data starts the next epoch. Pure, so a resumed run picks up exactly
where it stopped and a streaming loader can be told the batches ahead of the trainer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import torch


@lru_cache(maxsize=2)  # the current epoch (and the next, when a loader reads ahead)
def epoch_order(count: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of an epoch: a permutation seeded by (seed, epoch). Read-only."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


@dataclass(frozen=True)
class BatchOrder:
    """This rank's sample indices for each step of a run over ``count`` pairs."""

    count: int
    samples_per_step: int  # global: all ranks, all micro-batches
    seed: int
    rank: int = 0
    world_size: int = 1

    def at(self, epoch: int, position: int) -> tuple[int, int, torch.Tensor]:
        """(epoch, position after it, this rank's indices) of the batch starting there."""
        size = self.samples_per_step
        if position + size > self.count:
            epoch, position = epoch + 1, 0
        local = size // self.world_size
        start = position + self.rank * local
        order = epoch_order(self.count, self.seed, epoch)
        return epoch, position + size, order[start : start + local]

    def upcoming(self, epoch: int, position: int) -> Iterator[torch.Tensor]:
        """This rank's index batches from (epoch, position) on, without end."""
        while True:
            epoch, position, indices = self.at(epoch, position)
            yield indices
