"""Transfer learning, the ViT paper's own workflow: a classification head on a trained ViT.

``--linear-probe`` freezes the ViT: its pooled features are computed once and only the head
trains (seconds). Otherwise the ViT trains too, at a lower learning rate, with the same
batched augmentation as contrastive training. Accuracy is reported on a held-out split.
Runs on ``FinetuneOptions.device`` (random draws stay on CPU generators, as in training).
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from encoders.atomic import atomic_write, atomic_write_text
from encoders.errors import VitrieveError
from encoders.model.vit import VisionTransformer
from encoders.runtime.device import DEFAULT_DEVICE, resolve_device
from encoders.training.data import IMAGE_SUFFIXES, augment_batch, normalize_batch, preload_images
from encoders.training.devices import autocast, fused_adamw
from encoders.training.layout import RunLayout
from encoders.training.optim import CosineSchedule, make_optimizer, warmup_steps
from encoders.weights.checkpoint import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneOptions:
    epochs: float = 10
    batch_size: int = 64
    lr: float | None = None  # default 1e-3 for a probe, 1e-4 when the ViT trains
    linear_probe: bool = False
    holdout: float = 0.2
    seed: int = 0
    weight_decay: float = 0.05
    warmup_fraction: float = 0.05  # fine-tuning starts from trained weights: a short warm-up
    device: str = DEFAULT_DEVICE  # auto | cpu | cuda | cuda:N (encoders.runtime.device)


class Classifier(nn.Module):
    """ViT → pooled token (width) → linear head over the classes."""

    def __init__(self, visual: VisionTransformer, classes: int) -> None:
        super().__init__()
        self.visual = visual
        self.head = nn.Linear(visual.config.width, classes)
        nn.init.zeros_(self.head.weight)  # the ViT paper zero-initialises the new head

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.visual.pool(self.visual.forward_tokens(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def class_folder_items(root: Path) -> tuple[list[Path], list[int], list[str]]:
    """Image paths, class indices and class names (sorted subfolder names)."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    paths, labels = [], []
    for index, name in enumerate(classes):
        for path in sorted((root / name).rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(path)
                labels.append(index)
    if len(classes) < 2 or not paths:
        raise VitrieveError(f"{root} needs at least two class subfolders with images")
    return paths, labels, classes


def split_indices(count: int, holdout: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded random train/held-out split (at least one image on each side)."""
    order = list(range(count))
    random.Random(seed).shuffle(order)
    test = min(max(1, round(count * holdout)), count - 1)
    return sorted(order[test:]), sorted(order[:test])


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def _features(model: Classifier, images: torch.Tensor) -> torch.Tensor:
    """Pooled ViT features of uint8 images, on the model's device."""
    model.eval()
    device = _device(model)
    with autocast(device):
        chunks = [model.features(normalize_batch(images[i : i + 256].to(device))).float()
                  for i in range(0, len(images), 256)]  # fmt: skip
    return torch.cat(chunks)


def _steps(count: int, options: FinetuneOptions) -> int:
    return max(1, round(options.epochs * max(count // options.batch_size, 1)))


def train_head(model: Classifier, images: torch.Tensor, labels: torch.Tensor, options) -> None:
    """Linear probe: features once, then the head alone (full-batch-free minibatch AdamW)."""
    features = _features(model, images)
    labels = labels.to(features.device)
    optimizer = torch.optim.AdamW(model.head.parameters(), lr=options.lr or 1e-3,
                                  weight_decay=options.weight_decay)  # fmt: skip
    total = _steps(len(images), options) * 4  # the head is cheap: more passes
    schedule = CosineSchedule(
        options.lr or 1e-3, total, warmup_steps(total, options.warmup_fraction)
    )
    generator = torch.Generator().manual_seed(options.seed)
    for step in range(total):
        batch = torch.randint(len(features), (options.batch_size,), generator=generator)
        batch = batch.to(features.device)
        schedule.apply(optimizer, step)
        loss = F.cross_entropy(model.head(features[batch]), labels[batch])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def train_full(model: Classifier, images: torch.Tensor, labels: torch.Tensor, options) -> None:
    """Fine-tune the ViT and the head together on augmented batches."""
    model.train()
    device = _device(model)
    images, labels = images.to(device), labels.to(device)
    lr = options.lr or 1e-4
    optimizer = make_optimizer(model, lr, options.weight_decay, fused=fused_adamw(device))
    total = _steps(len(images), options)
    schedule = CosineSchedule(lr, total, warmup_steps(total, options.warmup_fraction))
    generator = torch.Generator().manual_seed(options.seed)
    for step in range(total):
        batch = torch.randint(len(images), (options.batch_size,), generator=generator)
        batch = batch.to(device)
        pixels, _ = augment_batch(images[batch], [""] * len(batch), generator=generator)
        schedule.apply(optimizer, step)
        with autocast(device):
            logits = model(pixels)
        F.cross_entropy(logits.float(), labels[batch]).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def accuracy(model: Classifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    features = _features(model, images)
    with torch.inference_mode():
        predicted = model.head(features).argmax(dim=1).cpu()
        return (predicted == labels).float().mean().item()


def finetune_folder(data: Path, source: Path, out: Path, options: FinetuneOptions) -> dict:
    """Train on a class-folder data set; write the classifier; report held-out accuracy."""
    clip, meta = load_checkpoint(source)
    paths, labels, classes = class_folder_items(data)
    images, kept = preload_images(paths, clip.config.vision.image_size)
    targets = torch.tensor([labels[i] for i in kept])
    train_idx, test_idx = split_indices(len(kept), options.holdout, options.seed)
    torch.manual_seed(options.seed)
    model = Classifier(clip.visual, len(classes)).to(resolve_device(options.device))
    if options.linear_probe:
        model.visual.requires_grad_(False)
        train_head(model, images[train_idx], targets[train_idx], options)
    else:
        train_full(model, images[train_idx], targets[train_idx], options)
    result = {
        "mode": "linear probe" if options.linear_probe else "fine-tune",
        "accuracy": accuracy(model, images[test_idx], targets[test_idx]),
        "train_accuracy": accuracy(model, images[train_idx], targets[train_idx]),
        "classes": len(classes),
        "train": len(train_idx),
        "test": len(test_idx),
        "source_model_id": meta.get("model_id", ""),
        "options": asdict(options),
    }
    out.mkdir(parents=True, exist_ok=True)
    layout = RunLayout(out)
    save_checkpoint(clip, layout.checkpoint, extra={"finetuned_from": meta.get("model_id", "")})
    head = {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}
    atomic_write(layout.head, lambda tmp: save_file(head, str(tmp)))
    atomic_write_text(layout.classifier, json.dumps({**result, "class_names": classes}, indent=2))
    log.info("%s accuracy %.3f", result["mode"], result["accuracy"])
    return result
