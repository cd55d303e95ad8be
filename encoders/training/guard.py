"""Numerical safety: skipped non-finite steps, a clear stop, no checkpoint holding NaNs.

A step whose loss is not finite makes no update (``steps.optimise``); the guard counts such
steps and stops a run that keeps producing them, since by then the run is not recovering on
its own: one line names the step and the likely causes. A checkpoint is only written from
finite weights, so the last one on disk is always one that can be resumed or served.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from encoders.errors import VitrieveError

log = logging.getLogger(__name__)

# Non-finite steps in a row after which a run stops (a single bad batch is skipped and
# forgotten; five in a row is a diverged run or systematically broken data).
MAX_NONFINITE_STEPS = 5


class NonFiniteLoss(VitrieveError):
    """The loss stayed non-finite for ``MAX_NONFINITE_STEPS`` steps in a row."""


class NonFiniteGuard:
    """Counts consecutive skipped steps; raises ``NonFiniteLoss`` at ``limit`` of them."""

    def __init__(self, limit: int = MAX_NONFINITE_STEPS) -> None:
        self.limit = limit
        self.consecutive = 0

    def after_step(self, step: int, updated: bool, lr: float) -> None:
        """Record optimiser step ``step`` (1-based, as in metrics.jsonl)."""
        if updated:
            self.consecutive = 0
            return
        self.consecutive += 1
        log.warning("step %d: the loss is not finite; the step was skipped (no update)", step)
        if self.consecutive < self.limit:
            return
        first = step - self.limit + 1
        raise NonFiniteLoss(
            f"training stopped at step {step}: the loss was not finite for {self.limit} steps "
            f"in a row (steps {first}-{step}, none of them applied; no checkpoint was written "
            f"from them). Likely causes: a learning rate too high for this model and batch "
            f"(peak {lr:.3g} here: try a lower one or a longer warm-up), or broken training "
            "data (images or captions that make the loss overflow)"
        )


def nonfinite_parameters(model: nn.Module) -> list[str]:
    """Names of the parameters and buffers holding a NaN or an infinity."""
    named = [*model.named_parameters(), *model.named_buffers()]
    return [
        name
        for name, tensor in named
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]


def check_finite_weights(model: nn.Module, where: str) -> None:
    """Refuse to write a checkpoint whose weights are not all finite."""
    bad = nonfinite_parameters(model)
    if bad:
        raise NonFiniteLoss(
            f"not writing a checkpoint to {where}: {len(bad)} weight tensors hold NaN or "
            f"infinite values (first: {bad[0]}); the last checkpoint written is unchanged"
        )
