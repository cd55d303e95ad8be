"""One training step: a batch from preloaded tensors, the contrastive loss, an update.

Pure of any loop state: ``make_batch`` turns sample indices into augmented images, caption
input (tokens, or cached features of a locked text tower) and hard negatives, on the training
device; ``optimise`` runs forward, loss and backward — in one pass, or in ``accum``
micro-batch passes that keep the contrastive batch whole — and steps the optimiser, unless
the loss was not finite, in which case nothing is updated.

Device-agnostic: random draws come from a CPU generator whatever the device (so a run's data
is the same on a CPU and a GPU), index bookkeeping stays on the host, and pixels and cached
text features are gathered and augmented where they live.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass, replace

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from encoders.model.clip import CLIP
from encoders.model.tokenizer import trim_padding
from encoders.runtime.device import DEFAULT_DEVICE
from encoders.training.captions import CaptionTable, colourless, grey_rows
from encoders.training.data import augment_batch, greyscale
from encoders.training.devices import (
    attention_context,
    autocast,
    default_batch_size,
    keeps_data_on_device,
)
from encoders.training.loss import contrastive_loss
from encoders.training.stream import StreamedImages

log = logging.getLogger(__name__)

# (image embeddings, caption embeddings, hard-negative embeddings, logit scale, logit bias)
Outputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]


@dataclass(frozen=True)
class TrainOptions:
    """How to train (not what): loss, batch, schedule, augmentation, checkpointing."""

    loss: str = "clip"
    # pairs per process per micro-batch; None: the device's default (devices.DEVICE_DEFAULTS)
    batch_size: int | None = None
    lr: float = 2e-3
    weight_decay: float = 0.1
    epochs: float | None = None
    minutes: float | None = None
    accum: int = 1  # passes per optimiser step (``optimise``): batch_size × accum × processes
    hard_negatives: bool = True
    # hard negatives scored per image and step: 1 is drawn from its caption's two; N > 1 uses
    # its caption's first N (the table then prepares N per caption)
    negatives_per_image: int = 1
    min_scale: float = 0.6
    flip: bool = True
    grey_fraction: float = 0.25  # pairs shown greyscale with their colourless caption
    warmup_fraction: float = 0.4  # a long warm-up: measured in docs/training.md
    grad_clip: float = 0.0  # clip the global gradient norm to this; 0 = no clipping
    checkpoint_every: int = 0  # steps; 0 = only at the end
    val_every: int = 0  # steps; 0 = about ten times per run
    seed: int = 0
    threads: int = 0  # intra-op threads; 0 = measured (budget runs) or torch's default
    device: str = DEFAULT_DEVICE  # auto | cpu | cuda | cuda:N (encoders.runtime.device)
    stream: bool | None = None  # decode in loader workers; None: when too big to preload


def with_device_defaults(
    options: TrainOptions, device: torch.device, pairs: int | None = None
) -> TrainOptions:
    """``TrainOptions`` with the device's defaults filled in where they were left open.

    ``pairs``: how many pairs one process has for a step's micro-batches; a default batch
    larger than that shrinks to it, so a small photo set trains without being told a batch
    size (a batch the user asked for is kept, and the trainer says when it cannot fit).
    """
    if options.batch_size is not None:
        return options
    batch = default_batch_size(device)
    if pairs is not None and 2 <= pairs < batch:  # one pair has no negatives: left to fail
        log.info("batch %d instead of the default %d: the data has %d pairs a pass", pairs,
                 batch, pairs)  # fmt: skip
        batch = pairs
    return replace(options, batch_size=batch)


@dataclass
class TrainData:
    """Preloaded training tensors; ``text_features`` when the text tower is locked and cached.

    Cached features are the tower's *standardised* pooled output: the projection's input.
    """

    images: torch.Tensor | StreamedImages  # (N, 3, S, S) uint8, or decoded per batch
    captions: list[str]
    table: CaptionTable
    text_features: torch.Tensor | None = None  # (U, H): locked tower outputs per caption

    def placed(self, device: torch.device) -> TrainData:
        """The same data with its tensors on ``device`` (images only when they fit there);
        the caption table stays on the host, where the per-batch bookkeeping runs."""
        features = self.text_features
        if features is not None:
            features = features.to(device)
        images = self.images
        if isinstance(images, torch.Tensor) and keeps_data_on_device(images.nbytes, device):
            images = images.to(device)
        return replace(self, images=images, text_features=features)


class ContrastiveModule(nn.Module):
    """CLIP plus the training-time text path: tokens, or cached locked-tower features.

    One module so DDP sees every trainable parameter used in one ``forward``.
    """

    def __init__(self, clip: CLIP, cached_text: bool) -> None:
        super().__init__()
        self.clip = clip
        self.cached_text = cached_text

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        if self.cached_text:
            return F.normalize(self.clip.text.proj(text), dim=-1)
        return self.clip.encode_text(text)

    def forward(self, images: torch.Tensor, text: torch.Tensor, negatives: torch.Tensor | None):
        image_emb = self.clip.encode_image(images)
        both = text if negatives is None else torch.cat([text, negatives])
        text_emb = self.encode_text(both)
        text_part, negative_part = text_emb[: len(text)], text_emb[len(text) :]
        bias = self.clip.logit_bias
        negatives_out = negative_part if negatives is not None else None
        return image_emb, text_part, negatives_out, self.clip.temperature_scale(), bias


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 1009 + rank)


def _text_input(data: TrainData, index: torch.Tensor) -> torch.Tensor:
    if data.text_features is not None:
        return data.text_features[index.to(data.text_features.device)]
    return data.table.tokens[index]


def make_batch(
    data: TrainData,
    indices: torch.Tensor,
    options: TrainOptions,
    generator: torch.Generator,
    device: torch.device | None = None,
    pixels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Augmented images, caption input, and one hard negative per image (+ validity mask),
    all on ``device`` (default: where the images are). ``pixels``: the uint8 images of
    ``indices`` when a loader decoded them (streamed data); else they are gathered here."""
    if pixels is None:
        assert isinstance(data.images, torch.Tensor)
        pixels = data.images[indices.to(data.images.device)]
    device = device or pixels.device
    table = data.table
    captions = [data.captions[i] for i in indices.tolist()]
    grey = grey_rows(table, table.index_of(captions), options.grey_fraction, generator)
    pixels = pixels.to(device, non_blocking=True)
    images, captions = augment_batch(
        greyscale(pixels, grey), captions, options.min_scale, options.flip,
        generator=generator,
    )  # fmt: skip
    caption_index = colourless(table, table.index_of(captions), grey)
    text = _text_input(data, caption_index)
    if not options.hard_negatives:
        return images, _on(device, _trim(data, text)), None, None
    negative_index = table.pick_negatives(caption_index, options.negatives_per_image, generator)
    mask = negative_index >= 0
    negatives = _text_input(data, negative_index.clamp(min=0))
    if data.text_features is None:  # trim captions and negatives to one common length
        both = trim_padding(torch.cat([text, negatives]), table.pad_id)
        text, negatives = both[: len(text)], both[len(text) :]
    return images, _on(device, text), _on(device, negatives), _on(device, mask)


def _on(device: torch.device, tensor: torch.Tensor) -> torch.Tensor:
    """A host tensor copied to ``device`` without blocking (itself when already there)."""
    return tensor.to(device, non_blocking=True)


def _trim(data: TrainData, text: torch.Tensor) -> torch.Tensor:
    return text if data.text_features is not None else trim_padding(text, data.table.pad_id)


@dataclass(frozen=True)
class StepResult:
    """What one optimiser step did: its mean loss, and whether it updated the model."""

    loss: float  # mean over the micro-batches (this rank's; not finite when skipped)
    updated: bool  # False: a loss was not finite (on some rank), so no update was made


def optimise(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: tuple,
    options: TrainOptions,
) -> StepResult:
    """One optimiser step on ``batch``, in ``accum`` micro-batch passes when asked
    (``accumulate``: the loss stays the whole batch's; DDP syncs on the last pass only),
    the gradient's global norm clipped to ``grad_clip`` when that is set.

    The loss is computed in float32 whatever the autocast. If a pass's loss is not finite,
    on any rank, the gradients are dropped and the optimiser does not step: the weights and
    the optimiser's moments stay as they were (every rank decides alike).
    """
    chunks = max(options.accum, 1)
    if chunks == 1:
        losses = [_one_pass(module, batch, options.loss)]
    else:
        losses = _accumulate_whole_batch(module, batch, options.loss, chunks)
    values = torch.stack(losses)
    updated = _finite_everywhere(values)
    if updated:
        if options.grad_clip > 0:
            nn.utils.clip_grad_norm_(module.parameters(), options.grad_clip)
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return StepResult(sum(v / chunks for v in values.tolist()), updated)


def _one_pass(module: nn.Module, batch: tuple, loss_kind: str) -> torch.Tensor:
    """Forward, loss and backward of the whole batch at once; the loss value."""
    images, text, negatives, mask = batch
    device = images.device
    with attention_context(device):
        with autocast(device):
            image_emb, text_emb, neg_emb, scale, bias = module(images, text, negatives)
        loss = contrastive_loss(loss_kind, image_emb, text_emb, scale, bias, neg_emb, mask)
        loss.backward()
    return loss.detach()


def _accumulate_whole_batch(
    module: nn.Module, batch: tuple, loss_kind: str, chunks: int
) -> list[torch.Tensor]:
    """Back-propagate the whole batch's loss in ``chunks`` passes; each pass's loss value.

    Accumulation that keeps the contrastive batch whole (open_clip's ``accum_freq``): every
    image is scored against every caption of the batch, so summing independent micro-batches'
    gradients would train with one micro-batch's negatives. All embeddings are computed once
    without gradients; each micro-batch then runs again with them, its rows live in the whole
    batch's loss and the others cached. The gradients add up to the whole batch's (no dropout
    or batch statistics), for one extra forward pass and one micro-batch's activations.

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


def _finite_everywhere(values: torch.Tensor) -> bool:
    """Whether every value is finite on every rank (one host sync per step)."""
    finite = torch.isfinite(values).all()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        flag = finite.to(torch.int32)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())
    return bool(finite.item())
