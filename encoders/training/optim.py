"""AdamW with decoupled weight decay, and the warm-up + cosine learning-rate schedule.

The schedule is a pure function of (step, total steps). With a wall-clock budget the total
is not known in advance: ``estimate_total_steps`` turns a measured step time into one, so
the cosine ends when the budget does (the trainer re-estimates as it goes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

# Names of parameters that are embeddings or scalars of the loss: decaying them towards zero
# only hurts (CLIP, ViT and open_clip all exclude them, with norms and biases).
NO_DECAY_NAMES = ("token_embed", "pos_embed", "class_token", "logit_scale", "logit_bias")
NO_DECAY_PARTS = ("embeddings.",)  # Hugging Face towers: word/position/type embeddings


def wants_decay(name: str, param: torch.Tensor) -> bool:
    """Weight decay only for matrices of linear layers: not norms, biases, embeddings, scalars."""
    if param.ndim < 2:
        return False
    if any(part in NO_DECAY_NAMES for part in name.split(".")):
        return False
    return not any(part in name for part in NO_DECAY_PARTS)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups — with and without decay — over the trainable parameters."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (decay if wants_decay(name, param) else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.98),
    eps: float = 1e-6,
    fused: bool = False,
) -> torch.optim.AdamW:
    """AdamW (decoupled decay) with CLIP's betas/eps; ``lr`` is set per step by the schedule.

    ``weight_decay`` has no default here: each recipe's options (``TrainOptions``,
    ``FinetuneOptions``) are its one source. ``fused`` asks for torch's single-kernel CUDA
    implementation (parameters must be on a GPU); the default is torch's own choice.
    """
    groups = param_groups(model, weight_decay)
    if fused:
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=True)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)


@dataclass(frozen=True)
class CosineSchedule:
    """Linear warm-up to ``base_lr`` over ``warmup`` steps, then cosine decay to ``min_lr``."""

    base_lr: float
    total_steps: int
    warmup: int = 0
    min_lr: float = 0.0

    def lr(self, step: int) -> float:
        """Learning rate for optimiser step ``step`` (0-based)."""
        if step < self.warmup:
            return self.base_lr * (step + 1) / self.warmup
        span = max(self.total_steps - self.warmup, 1)
        progress = min(max(step - self.warmup, 0) / span, 1.0)
        return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * progress))

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Set every group's learning rate for ``step``; returns it."""
        lr = self.lr(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr


def warmup_steps(total_steps: int, fraction: float) -> int:
    """Warm-up length: a fixed fraction of the run, whether set by epochs or by a budget
    (the fraction comes from the recipe's options: ``TrainOptions.warmup_fraction``)."""
    return max(1, int(total_steps * fraction))


def estimate_total_steps(
    steps_done: int, seconds_used: float, seconds_per_step: float, budget_seconds: float
) -> int:
    """Steps that fit in the budget: those done plus the remaining time at the measured rate."""
    remaining = max(budget_seconds - seconds_used, 0.0)
    return steps_done + max(int(remaining / max(seconds_per_step, 1e-6)), 1)
