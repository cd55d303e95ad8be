"""Image preprocessing derived from the vision config: PIL image → normalised tensor."""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image
from torchvision import transforms as T

# CLIP's normalisation statistics (OpenAI's training set); open_clip uses the same.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

ImageTransform = Callable[[Image.Image], torch.Tensor]


def eval_transform(image_size: int) -> ImageTransform:
    """Resize the short side, centre-crop a square, normalise (CLIP's evaluation recipe)."""
    return T.Compose(
        [
            T.Resize(image_size, interpolation=T.InterpolationMode.BICUBIC, antialias=True),
            T.CenterCrop(image_size),
            _to_rgb,
            T.ToTensor(),
            T.Normalize(CLIP_MEAN, CLIP_STD),
        ]
    )


def train_transform(image_size: int, min_scale: float = 0.6) -> ImageTransform:
    """Random resized crop: the augmentation that suits small data without changing colours.

    No colour jitter (captions name colours) and no flip here: flipping must swap "left" and
    "right" in the caption, so the training data module does it together with the text.
    """
    return T.Compose(
        [
            T.RandomResizedCrop(
                image_size,
                scale=(min_scale, 1.0),
                ratio=(0.8, 1.25),
                interpolation=T.InterpolationMode.BICUBIC,
                antialias=True,
            ),
            _to_rgb,
            T.ToTensor(),
            T.Normalize(CLIP_MEAN, CLIP_STD),
        ]
    )


def _to_rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")
