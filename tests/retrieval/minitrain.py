"""A minimal CLIP training loop on the synthetic shapes, for test fixtures.

Used by the session-scoped ``trained_tiny`` fixture while (and wherever) the full trainer
is not needed: it only has to make colours and shapes searchable within about a minute.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from encoders.data.synthetic import allowed_classes, scene_for
from encoders.model.clip import create_model
from encoders.model.config import CLIPConfig, load_config
from encoders.model.tokenizer import get_tokenizer, trim_padding
from encoders.model.transforms import eval_transform
from encoders.training.loss import clip_loss
from encoders.weights.checkpoint import save_checkpoint


def fixture_config() -> CLIPConfig:
    """The fixture's architecture: `tiny` with the 192-wide, 6-deep ViT in 8 px patches it
    was tuned with.

    Pinned here so the retrieval and UI tests do not change when `tiny`'s training recipe
    does (`tiny` became 128 × 4, then 16 px patches, for the 5-minute trainer; this loop is
    plain contrastive steps without its remedies, and 160 of them need the wider ViT)."""
    tiny = load_config("tiny")
    vision = replace(tiny.vision, width=192, layers=6, patch_size=8, init="clip")
    return replace(tiny, vision=vision)


def train_tiny(
    out: Path,
    steps: int = 400,
    max_seconds: float = 1800.0,
    images: int = 1536,
    seed: int = 0,
    batch: int = 64,
    lr: float = 5e-4,
) -> Path:
    """Train the ``tiny`` config on synthetic scenes for ``steps``; save a checkpoint.

    Counted in steps, not seconds, so the model is the same however busy the machine is."""
    torch.manual_seed(seed)
    config = fixture_config()
    model = create_model(config)
    tokenizer = get_tokenizer(config.text)
    transform = eval_transform(config.vision.image_size)
    allowed = allowed_classes(seed, "test")  # every class: retrieval tests query them all
    scenes = [scene_for(seed, "test", i + 10_000, 64, allowed) for i in range(images)]
    pixels = torch.stack([transform(s.image) for s in scenes])
    tokens = trim_padding(tokenizer([s.caption for s in scenes]), tokenizer.pad_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 30))
    rng = np.random.default_rng(seed)
    deadline = time.monotonic() + max_seconds
    model.train()
    done = 0
    while done < steps and time.monotonic() < deadline:
        pick = torch.from_numpy(rng.choice(images, batch, replace=False))
        batch_tokens = trim_padding(tokens[pick], tokenizer.pad_id)
        image, text, scale = model(pixels[pick], batch_tokens)
        loss = clip_loss(image, text, scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        warmup.step()
        done += 1
    model.eval()
    extra = {"steps": done, "loss": float(loss.detach())}
    save_checkpoint(model, out, extra=extra)
    return out
