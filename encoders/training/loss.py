"""Contrastive losses for image–text training, as pure functions of the embeddings.

* ``clip_loss``: symmetric InfoNCE (Radford et al., 2021) — each image picks its caption out
  of the batch and each caption its image, cross-entropy over cosine logits × temperature.
* ``siglip_loss``: the sigmoid loss (Zhai et al., 2023) — every image–text pair is an
  independent binary decision, ``log σ(±(s·cos + b))``; no softmax over the batch.

Both take optional ``text_negatives``: extra captions that match no image in the batch (hard
negatives made by swapping attributes, see ``encoders.training.captions``). They enter the
image→text direction only: an image must prefer its caption over "the same scene with the
colours swapped", which teaches the model to bind attributes to objects.

Under DDP the embeddings are gathered from all ranks first (``gather_features``), so every
rank sees the global batch; the local shard keeps its gradient.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

LOSSES = ("clip", "siglip")  # InfoNCE (CLIP) and the sigmoid loss (SigLIP)


def gather_features(features: torch.Tensor) -> torch.Tensor:
    """All ranks' rows (world·B, D) in rank order; the local rows keep their autograd graph.

    ``all_gather`` carries no gradient, so the local shard is put back as the original
    tensor: each rank then back-propagates the global loss into its own embeddings, and DDP
    combines the parameter gradients (open_clip's default ``gather_with_grad=False`` scheme).
    Without an initialised process group this is the identity.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return features
    shards = [torch.empty_like(features) for _ in range(dist.get_world_size())]
    dist.all_gather(shards, features.detach().contiguous())
    shards[dist.get_rank()] = features
    return torch.cat(shards, dim=0)


def _negatives(
    text_negatives: torch.Tensor | None, negative_mask: torch.Tensor | None
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gathered hard negatives and their validity mask (None when there are none)."""
    if text_negatives is None:
        return None, None
    negatives = gather_features(text_negatives.float())
    if negative_mask is None:
        return negatives, None
    return negatives, gather_features(negative_mask.float()).bool()


def clip_logits(
    image: torch.Tensor,
    text: torch.Tensor,
    logit_scale: torch.Tensor,
    text_negatives: torch.Tensor | None = None,
    negative_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Image→text logits (B, B + K) and text→image logits (B, B) for normalised embeddings.

    Negatives whose ``negative_mask`` is False get −inf: they exist only so that every rank
    gathers the same number of rows.
    """
    per_text = logit_scale * text @ image.T
    if text_negatives is None:
        return logit_scale * image @ text.T, per_text
    per_image = logit_scale * image @ torch.cat([text, text_negatives]).T
    if negative_mask is not None:
        keep = torch.cat([negative_mask.new_ones(text.shape[0]), negative_mask])
        per_image = per_image.masked_fill(~keep, float("-inf"))
    return per_image, per_text


def clip_loss(
    image: torch.Tensor,
    text: torch.Tensor,
    logit_scale: torch.Tensor,
    text_negatives: torch.Tensor | None = None,
    negative_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE: mean of image→text and text→image cross-entropy; pair i ↔ i.

    Inputs are L2-normalised (B, D) embeddings and the (clamped) scale ``exp(t)``. Computed
    in float32 whatever the autocast dtype: the softmax over a batch is precision-sensitive.
    """
    image, text = gather_features(image.float()), gather_features(text.float())
    negatives, mask = _negatives(text_negatives, negative_mask)
    per_image, per_text = clip_logits(image, text, logit_scale.float(), negatives, mask)
    labels = torch.arange(image.shape[0], device=image.device)
    return (F.cross_entropy(per_image, labels) + F.cross_entropy(per_text, labels)) / 2


def siglip_loss(
    image: torch.Tensor,
    text: torch.Tensor,
    logit_scale: torch.Tensor,
    logit_bias: torch.Tensor,
    text_negatives: torch.Tensor | None = None,
    negative_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sigmoid loss: −Σ log σ(z·(s·cos + b)) / B with z = +1 on the diagonal, −1 elsewhere.

    Hard negatives add columns whose label is −1 for every image. Normalised by the number of
    images, as in the paper, so the value does not grow with the number of candidates.
    """
    image, text = gather_features(image.float()), gather_features(text.float())
    negatives, mask = _negatives(text_negatives, negative_mask)
    candidates = text if negatives is None else torch.cat([text, negatives])
    logits = logit_scale.float() * image @ candidates.T + logit_bias.float()  # (B, B + K)
    signs = -torch.ones_like(logits)
    signs.diagonal().fill_(1.0)  # only the first B columns hold the true pairs
    terms = -F.logsigmoid(signs * logits)
    if mask is not None:
        keep = torch.cat([mask.new_ones(text.shape[0]), mask])
        terms = terms * keep
    return terms.sum() / image.shape[0]


def contrastive_loss(
    kind: str,
    image: torch.Tensor,
    text: torch.Tensor,
    logit_scale: torch.Tensor,
    logit_bias: torch.Tensor | None = None,
    text_negatives: torch.Tensor | None = None,
    negative_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Dispatch on ``kind`` ("clip" or "siglip"); the trainer's one entry point.

    Computed in float32 even inside an autocast region: autocast would otherwise run the
    similarity matmuls in bf16/fp16 whatever the inputs' dtype.
    """
    if kind not in LOSSES:
        raise ValueError(f"unknown loss {kind!r}: use one of {', '.join(LOSSES)}")
    if kind == "siglip" and logit_bias is None:
        raise ValueError("the sigmoid loss needs a logit bias (config init_logit_bias)")
    with torch.autocast(image.device.type, enabled=False):
        if kind == "clip":
            return clip_loss(image, text, logit_scale, text_negatives, negative_mask)
        return siglip_loss(image, text, logit_scale, logit_bias, text_negatives, negative_mask)
