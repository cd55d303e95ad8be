"""The model's input crosses from decode workers to the embedding process as uint8 pixels.

The encoder's preprocessing is a torchvision pipeline: PIL steps (resize, centre crop, RGB),
then ``ToTensor`` (÷ 255) and ``Normalize``. Workers run the PIL steps and send uint8 pixels
(3·S·S bytes: a quarter of float32 to pickle, pipe and unpickle); the embedding process scales
and normalises a whole batch at once, with ToTensor's and Normalize's arithmetic folded into
one multiply-add: the inputs agree with the encoder's own ``preprocess`` to float32 rounding,
and so do the embeddings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

Batcher = Callable[[torch.Tensor], torch.Tensor]


class UInt8Pixels:
    """PIL image → uint8 array (3, S, S): a transform's PIL steps, up to its ``ToTensor``."""

    def __init__(self, steps: Sequence[Callable[[Any], Any]]) -> None:
        self.steps = list(steps)

    def __call__(self, image: Image.Image) -> np.ndarray:
        for step in self.steps:
            image = step(image)
        pixels = np.asarray(image, dtype=np.uint8)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))  # (H, W, C) → (C, H, W)


class BatchNormalize:
    """uint8 batch (B, 3, S, S) → the float32 model input: ÷ 255, then the ``Normalize`` steps,
    folded into one per-channel multiply-add in place (one new batch instead of three)."""

    def __init__(self, steps: Sequence[T.Normalize]) -> None:
        scale, shift = (
            torch.full((3,), 1 / 255, dtype=torch.float64),
            torch.zeros(3, dtype=torch.float64),
        )
        for step in steps:  # x ↦ (x − mean) / std, composed
            mean = torch.as_tensor(step.mean, dtype=torch.float64)
            std = torch.as_tensor(step.std, dtype=torch.float64)
            scale, shift = scale / std, (shift - mean) / std
        self.scale = scale.to(torch.float32)[:, None, None]
        self.shift = shift.to(torch.float32)[:, None, None]

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        scale, shift = self.scale.to(pixels.device), self.shift.to(pixels.device)
        return pixels.to(torch.float32).mul_(scale).add_(shift)  # one allocation


def as_is(batch: torch.Tensor) -> torch.Tensor:
    """Batches of a transform that could not be split: already the model's input."""
    return batch


def split_transform(transform: Callable[[Any], Any]) -> tuple[Callable[[Any], Any], Batcher]:
    """(what workers apply per image, what the embedding process applies per batch).

    A torchvision ``Compose`` with a ``ToTensor`` step whose later steps are tensor-only is
    split there; any other transform runs whole in the workers (float32 transport)."""
    steps = list(getattr(transform, "transforms", ()))
    at = next((i for i, step in enumerate(steps) if isinstance(step, T.ToTensor)), None)
    tail = steps[at + 1 :] if at is not None else []
    if at is None or not all(isinstance(step, T.Normalize) for step in tail):
        return transform, as_is
    return UInt8Pixels(steps[:at]), BatchNormalize(tail)
