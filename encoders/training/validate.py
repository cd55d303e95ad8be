"""In-training validation: zero-shot top-1 on labelled validation images, cheaply and often.

The full metrics live in ``retrieval.evaluation.evaluate`` (which runs on saved checkpoints);
this is the small in-loop version for the learning curves: images preloaded once, the class
prompts tokenised once and re-encoded each time (the text tower is training too), top-1
overall and — when the data has a ``held_out`` column — on seen and held-out compositions
separately. The class embeddings come from the one zero-shot builder
(``encoders.runtime.zeroshot``) with evaluation's templates, so the curves and ``vitrieve eval
zeroshot`` score the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from encoders.model.clip import CLIP
from encoders.model.tokenizer import Tokenizer, trim_padding
from encoders.runtime.zeroshot import (
    CAPTION_TEMPLATES,
    build_zero_shot_classifier,
    zero_shot_prompts,
)
from encoders.training.data import CaptionedItem, normalize_batch, preload_images
from encoders.training.devices import autocast


class ZeroShotValidator:
    """Callable ``model -> {"top1": ..., "top1_seen": ..., "top1_held_out": ...}``."""

    def __init__(
        self,
        items: Sequence[CaptionedItem],
        tokenizer: Tokenizer,
        image_size: int,
        limit: int = 1000,
        templates: Sequence[str] = CAPTION_TEMPLATES,
    ) -> None:
        labelled = [item for item in items if item.label][:limit]
        if not labelled:
            raise ValueError("validation data has no labelled items (need a label column)")
        images, kept = preload_images([item.path for item in labelled], image_size)
        labelled = [labelled[i] for i in kept]
        self.images = images
        self.classnames = sorted({item.label for item in labelled})
        index = {name: i for i, name in enumerate(self.classnames)}
        self.targets = torch.tensor([index[item.label] for item in labelled])
        self.held_out = torch.tensor(
            [item.extra.get("held_out", "0") in ("1", "true") for item in labelled]
        )
        self.templates = tuple(templates)
        self.prompts = zero_shot_prompts(self.classnames, self.templates)
        self.tokens = trim_padding(tokenizer(self.prompts), tokenizer.pad_id)

    @torch.inference_mode()
    def __call__(self, model: CLIP) -> dict[str, float]:
        """Top-1 with the model where it is (its parameters' device); the images go over
        a chunk at a time."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device

        def encode_prompts(prompts: list[str]) -> np.ndarray:
            assert prompts == self.prompts  # tokenised once, in __init__
            return model.encode_text(self.tokens.to(device)).float().cpu().numpy()

        with autocast(device):
            classes = build_zero_shot_classifier(encode_prompts, self.classnames, self.templates)
            images = torch.cat(
                [
                    model.encode_image(normalize_batch(self.images[i : i + 256].to(device)))
                    .float()
                    .cpu()
                    for i in range(0, len(self.images), 256)
                ]
            )
        model.train(was_training)
        correct = (images @ torch.from_numpy(classes).T).argmax(dim=1) == self.targets
        result = {"top1": correct.float().mean().item()}
        if self.held_out.any():
            result["top1_seen"] = correct[~self.held_out].float().mean().item()
            result["top1_held_out"] = correct[self.held_out].float().mean().item()
        return result
