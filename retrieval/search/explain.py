"""Explain a match: which part of the photo the text matched, as a heatmap over the image.

Two maps of the model input (the short-side-resized, centre-cropped square), one cell per ViT
patch, both upsampled (bicubic) over that square of the photo and blended in a colormap:

* ``patches``: the cosine of the text embedding with each projected patch token
  (``Encoder.patch_similarity``) — one forward pass. On CLIP-style models it is often
  *inverted*: background patches carry the global summary and outscore the object itself (the
  "opposite visualisation" of CLIP, Li et al. 2023, CLIP Surgery). Our small trained models
  show exactly that, so it is offered but not the default.
* ``window`` (default): show the model only a window of patches at each place (the rest grey)
  and take the window's cosine to the text — one batched forward pass of about g² images.
  Greying out a part instead (occlusion) says little when the whole image matches: the cosine
  is saturated and barely moves. The window answers "which part matches on its own".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image

from encoders.atomic import atomic_write_bytes
from encoders.errors import VitrieveError
from encoders.runtime.encoder import Encoder

METHODS = ("window", "patches")
COLORMAP = "inferno"
ALPHA = 0.55  # heat over photo
WINDOW = 0.3  # the window's side as a fraction of the grid side
HOT_QUANTILE = 0.9  # the "hot area": the top 10% of the heat


@dataclass
class Explanation:
    """The heat (H, W) in [0, 1] over the original image, and the grid it came from."""

    heat: np.ndarray
    grid: np.ndarray  # (g, g) cosines per patch (of its token, or of windows showing it)
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


def window_grid(encoder: Encoder, text: str, image: Image.Image) -> np.ndarray:
    """(g, g): the text's cosine to the image seen through a window of patches at each place
    (``WINDOW`` × the grid side, slid one patch at a time; the rest greyed out), each patch
    getting the mean over the windows that show it."""
    pixels = encoder.preprocess(image)  # (3, S, S), normalised: 0 is the mean colour
    grid, patch = encoder.config.vision.grid_size, encoder.config.vision.patch_size
    window = max(1, round(grid * WINDOW))
    starts = [(r, c) for r in range(grid - window + 1) for c in range(grid - window + 1)]
    batch = torch.zeros((len(starts), *pixels.shape), dtype=pixels.dtype)
    for n, (row, col) in enumerate(starts):
        rows = slice(row * patch, (row + window) * patch)
        cols = slice(col * patch, (col + window) * patch)
        batch[n, :, rows, cols] = pixels[:, rows, cols]
    similarity = encoder.encode_image_tensors(batch) @ encoder.encode_texts([text])[0]
    total, count = np.zeros((grid, grid)), np.zeros((grid, grid))
    for n, (row, col) in enumerate(starts):
        total[row : row + window, col : col + window] += similarity[n]
        count[row : row + window, col : col + window] += 1
    return total / count


def explain(encoder: Encoder, text: str, image: Image.Image, method: str = "window") -> Explanation:
    """A heat map of ``text`` over ``image`` (``method``: window or patches)."""
    if not text.strip():
        raise VitrieveError("empty query: nothing to explain")
    if method not in METHODS:
        raise VitrieveError(f"unknown explain method {method!r}: choose {', '.join(METHODS)}")
    image = image.convert("RGB")
    if method == "patches":
        grid = np.asarray(encoder.patch_similarity(text, image), np.float32)
    else:
        grid = np.asarray(window_grid(encoder, text, image), np.float32)
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
    encoder: Encoder,
    text: str,
    image: Image.Image,
    out: Path,
    method: str = "window",
    alpha: float = ALPHA,
) -> Explanation:
    """Explain ``text`` on ``image`` and write the overlay as a PNG to ``out``."""
    import io

    explanation = explain(encoder, text, image, method)
    buffer = io.BytesIO()
    overlay(image, explanation, alpha).save(buffer, format="PNG")
    atomic_write_bytes(Path(out), buffer.getvalue(), fsync=False)
    return explanation
