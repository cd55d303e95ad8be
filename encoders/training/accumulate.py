"""Gradient accumulation that keeps the contrastive batch whole (open_clip's ``accum_freq``).

A contrastive loss is not a sum over samples: every image is scored against every caption in
its batch, so summing the gradients of independent micro-batches would train with the
negatives of one micro-batch only. Here the embeddings of all micro-batches are computed
first without gradients; then each micro-batch runs again with gradients, and the loss is
taken over the whole batch with that micro-batch's rows live and the others cached. The
passes' gradients add up to the whole batch's (the model has no dropout or batch statistics,
so both passes compute the same embeddings), for one extra forward pass per micro-batch and
the activation memory of one micro-batch.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from encoders.training.devices import attention_context, autocast
from encoders.training.loss import contrastive_loss

# (image embeddings, caption embeddings, hard-negative embeddings, logit scale, logit bias)
Outputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]


def accumulate_whole_batch(
    module: nn.Module, batch: tuple, loss_kind: str, chunks: int
) -> list[torch.Tensor]:
    """Back-propagate the whole batch's loss in ``chunks`` passes; each pass's loss value.

    Under DDP only the last pass synchronises gradients; the logit scale and bias take their
    gradient in that pass alone (in the others they are cached constants), once, as in one
    whole-batch backward.
    """
    images = batch[0]
    device = images.device
    parts = [
        slice(i * len(images) // chunks, (i + 1) * len(images) // chunks) for i in range(chunks)
    ]
    with torch.no_grad(), attention_context(device), autocast(device):
        cached = [_forward(module, batch, part) for part in parts]
    losses = []
    for index, part in enumerate(parts):
        last = index == chunks - 1
        sync = last or not hasattr(module, "no_sync")
        with nullcontext() if sync else module.no_sync(), attention_context(device):
            with autocast(device):
                live = _forward(module, batch, part)
            rows = [live if i == index else outputs for i, outputs in enumerate(cached)]
            scale_from = live if last else cached[index]
            loss = _whole_batch_loss(loss_kind, rows, scale_from, batch[3])
            loss.backward()
        losses.append(loss.detach())
    return losses


def _forward(module: nn.Module, batch: tuple, part: slice) -> Outputs:
    images, text, negatives, _ = batch
    if negatives is None:
        return module(images[part], text[part], None)
    per_image = len(negatives) // len(images)  # each image's negatives are consecutive rows
    rows = slice(part.start * per_image, part.stop * per_image)
    return module(images[part], text[part], negatives[rows])


def _whole_batch_loss(
    kind: str, rows: list[Outputs], scale_from: Outputs, mask: torch.Tensor | None
) -> torch.Tensor:
    """The contrastive loss over every micro-batch's embeddings, in batch order."""
    image = torch.cat([r[0] for r in rows])
    text = torch.cat([r[1] for r in rows])
    parts = [r[2] for r in rows if r[2] is not None]
    negatives = torch.cat(parts) if parts else None
    return contrastive_loss(kind, image, text, scale_from[3], scale_from[4], negatives, mask)
