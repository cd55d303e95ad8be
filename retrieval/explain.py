"""Explain a match: which part of the photo the text matched, as a heatmap over the image.

The ViT's projected patch tokens live in the joint embedding space, so the cosine of the text
embedding with each of them (``Encoder.patch_similarity``) is a (g, g) map of the model input —
the short-side-resized, centre-cropped square. The map is upsampled (bicubic) over that square
of the original image, coloured with a perceptual colormap and blended over the photo.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from PIL import Image

from encoders.encoder import Encoder
from encoders.errors import VitrieveError
from indexer.layout import atomic_write_bytes

COLORMAP = "inferno"
ALPHA = 0.55  # heat over photo
HOT_QUANTILE = 0.9  # the "hot area": the top 10% of the heat


@dataclass
class Explanation:
    """The heat (H, W) in [0, 1] over the original image, and the grid it came from."""

    heat: np.ndarray
    grid: np.ndarray  # (g, g) raw cosines per patch
    crop: tuple[int, int, int, int]  # (left, top, right, bottom): what the model saw

    def hot_mask(self, quantile: float = HOT_QUANTILE) -> np.ndarray:
        """Pixels in the top ``1 - quantile`` of the heat (inside the model's crop)."""
        left, top, right, bottom = self.crop
        inside = self.heat[top:bottom, left:right]
        mask = np.zeros_like(self.heat, dtype=bool)
        mask[top:bottom, left:right] = inside >= np.quantile(inside, quantile)
        return mask


def _centre_crop(width: int, height: int) -> tuple[int, int, int, int]:
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def explain(encoder: Encoder, text: str, image: Image.Image) -> Explanation:
    """Patch similarities of ``text`` over ``image``, upsampled to the image's size."""
    if not text.strip():
        raise VitrieveError("empty query: nothing to explain")
    image = image.convert("RGB")
    grid = np.asarray(encoder.patch_similarity(text, image), np.float32)
    low, high = float(grid.min()), float(grid.max())
    scaled = (grid - low) / (high - low) if high > low else np.zeros_like(grid)
    crop = _centre_crop(*image.size)
    side = crop[2] - crop[0]
    square = Image.fromarray(scaled.astype(np.float32), mode="F").resize(
        (side, side), Image.Resampling.BICUBIC
    )
    heat = np.zeros((image.height, image.width), np.float32)
    heat[crop[1] : crop[3], crop[0] : crop[2]] = np.clip(np.asarray(square), 0.0, 1.0)
    return Explanation(heat, grid, crop)


def overlay(image: Image.Image, explanation: Explanation, alpha: float = ALPHA) -> Image.Image:
    """The photo with the heat blended over it (``COLORMAP``)."""
    colours = colormaps[COLORMAP](explanation.heat)[..., :3]  # (H, W, 3) in [0, 1]
    photo = np.asarray(image.convert("RGB"), np.float32) / 255.0
    blended = (1 - alpha) * photo + alpha * colours
    return Image.fromarray((blended * 255).round().astype(np.uint8), mode="RGB")


def write_heatmap(
    encoder: Encoder, text: str, image: Image.Image, out: Path, alpha: float = ALPHA
) -> Explanation:
    """Explain ``text`` on ``image`` and write the overlay as a PNG to ``out``."""
    import io

    explanation = explain(encoder, text, image)
    buffer = io.BytesIO()
    overlay(image, explanation, alpha).save(buffer, format="PNG")
    atomic_write_bytes(Path(out), buffer.getvalue(), fsync=False)
    return explanation
