"""The loop's bookkeeping that is not training: ranks, the wall clock, what a step reports.

``Progress`` is what a callback (the CLI's progress bar) receives after each step; ``Clock``
turns elapsed time into a step rate for ``--minutes`` budgets and the samples/s figure, and
times the part of each step spent waiting for data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Progress:
    """What the loop reports after each step (and with ``val`` after a validation)."""

    step: int
    total_steps: int
    epoch: int
    loss: float
    lr: float
    samples_per_s: float
    eta_s: float
    elapsed_s: float
    val: dict[str, float] = field(default_factory=dict)
    data_wait: float = 0.0  # share of this step's time spent preparing its batch
    skipped_steps: int = 0  # steps skipped so far because the loss was not finite


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def broadcast(values: list[float], device: torch.device) -> list[float]:
    """Rank 0's values on every rank, so all ranks take the same schedule and stop together.

    The tensor lives on the training device: NCCL only moves CUDA tensors.
    """
    if world()[1] == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return tensor.tolist()


@dataclass
class Clock:
    """Wall-clock bookkeeping: elapsed training time, the measured step rate, data waits."""

    start: float
    base_elapsed: float
    probe_step: int = -1
    probe_elapsed: float = 0.0
    data_s: float = 0.0  # this run's time preparing batches
    step_s: float = 0.0  # this run's time in whole steps (batch + optimiser step)

    def elapsed(self) -> float:
        return self.base_elapsed + time.perf_counter() - self.start

    def seconds_per_step(self, step: int, elapsed: float) -> float | None:
        if self.probe_step < 0 or step <= self.probe_step:
            return None
        return (elapsed - self.probe_elapsed) / (step - self.probe_step)

    def add_step(self, data_s: float, step_s: float) -> float:
        """Account one step; returns the share of it spent waiting for data."""
        self.data_s += data_s
        self.step_s += step_s
        return data_s / step_s if step_s > 0 else 0.0

    def data_wait(self) -> float:
        """The share of this run's step time spent waiting for data."""
        return self.data_s / self.step_s if self.step_s > 0 else 0.0
