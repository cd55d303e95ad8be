"""Pillow drawing for the synthetic data set: named shapes and colours on varied backgrounds.

Everything here is a pure function of its arguments (randomness comes in as a numpy
``Generator``), so a scene re-renders identically from its seed — which is what lets the
generator record each object's exact mask and box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

# Object colours: far apart in RGB so that a 64 px render never leaves the name in doubt.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (250, 140, 0),
    "yellow": (245, 225, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 225),
    "purple": (140, 40, 190),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
}
SHAPES = ("circle", "square", "triangle", "star", "cross", "heart", "diamond", "hexagon")

# Muted background tones; any tone closer than MIN_CONTRAST to an object's colour is skipped.
BACKGROUND_TONES: tuple[tuple[int, int, int], ...] = (
    (128, 128, 128),
    (175, 175, 175),
    (90, 90, 95),
    (210, 200, 170),
    (160, 145, 120),
    (120, 135, 150),
    (150, 165, 140),
    (185, 160, 165),
    (200, 205, 215),
    (105, 95, 85),
)
MIN_CONTRAST = 110.0  # Euclidean RGB distance between background and any object colour
NOISE_SIGMA = 10.0  # "light noise": a few grey levels, never enough to shift a colour name
BACKGROUND_KINDS = ("plain", "gradient", "textured")
SUPERSAMPLE = 4  # draw shapes this much larger, then downsample: anti-aliased edges


@dataclass(frozen=True)
class Placement:
    """One object to draw: what it is and where, in pixel units."""

    colour: str
    shape: str
    centre: tuple[float, float]
    radius: float


def _regular_polygon(
    cx: float, cy: float, r: float, sides: int, phase: float
) -> list[tuple[float, float]]:
    return [
        (cx + r * math.cos(phase + 2 * math.pi * k / sides),
         cy + r * math.sin(phase + 2 * math.pi * k / sides))
        for k in range(sides)
    ]  # fmt: skip


def _star(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    inner = 0.45 * r  # a five-pointed star whose arms stay visible at 15 px
    points = []
    for k in range(10):
        radius = r if k % 2 == 0 else inner
        angle = -math.pi / 2 + math.pi * k / 5
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return points


def _cross(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    a = 0.36 * r  # half the arm width
    offsets = [(-a, -r), (a, -r), (a, -a), (r, -a), (r, a), (a, a),
               (a, r), (-a, r), (-a, a), (-r, a), (-r, -a), (-a, -a)]  # fmt: skip
    return [(cx + dx, cy + dy) for dx, dy in offsets]


def _heart(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    points = []
    for k in range(40):  # the classic parametric heart, scaled to fit a circle of radius r
        t = 2 * math.pi * k / 40
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        points.append((cx + r * x / 16.5, cy - r * (y + 2.5) / 15.0))
    return points


def shape_polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """The outline of ``shape`` centred at (cx, cy), fitting a circle of radius ``r``."""
    if shape == "square":
        s = 0.82 * r  # same visual area as the circle, roughly
        return [(cx - s, cy - s), (cx + s, cy - s), (cx + s, cy + s), (cx - s, cy + s)]
    if shape == "triangle":
        return _regular_polygon(cx, cy + 0.15 * r, 1.1 * r, 3, -math.pi / 2)
    if shape == "star":
        return _star(cx, cy, 1.1 * r)
    if shape == "cross":
        return _cross(cx, cy, r)
    if shape == "heart":
        return _heart(cx, cy, r)
    if shape == "diamond":  # taller than wide, so it never reads as a rotated square
        return [(cx, cy - r), (cx + 0.68 * r, cy), (cx, cy + r), (cx - 0.68 * r, cy)]
    if shape == "hexagon":
        return _regular_polygon(cx, cy, r, 6, 0.0)
    raise ValueError(f"unknown shape {shape!r}; choose from {SHAPES}")


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:
    """Draw one filled shape (colour or mask value ``fill``) onto ``draw``."""
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    else:
        draw.polygon(shape_polygon(shape, cx, cy, r), fill=fill)


def background_tone(rng: np.random.Generator, avoid: list[tuple[int, int, int]]) -> np.ndarray:
    """A background tone at least MIN_CONTRAST away from every colour in ``avoid``."""
    tones = np.array(BACKGROUND_TONES, dtype=np.float32)
    if avoid:
        dist = np.linalg.norm(tones[:, None, :] - np.array(avoid, np.float32)[None], axis=-1)
        tones = tones[dist.min(axis=1) >= MIN_CONTRAST]
    return tones[rng.integers(len(tones))]


def make_background(
    size: int, kind: str, rng: np.random.Generator, avoid: list[tuple[int, int, int]]
) -> np.ndarray:
    """A (size, size, 3) uint8 background: plain, a two-tone gradient, or lightly textured."""
    first = background_tone(rng, avoid)
    if kind == "plain":
        pixels = np.broadcast_to(first, (size, size, 3)).astype(np.float32)
    elif kind == "gradient":
        second = background_tone(rng, avoid)
        angle = rng.uniform(0, 2 * math.pi)
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
        t = (np.cos(angle) * (xs - 0.5) + np.sin(angle) * (ys - 0.5)) / math.sqrt(0.5) + 0.5
        t = np.clip(t, 0, 1)[..., None]
        pixels = first * (1 - t) + second * t
    elif kind == "textured":
        pixels = first + rng.normal(0, NOISE_SIGMA, (size, size, 1)).astype(np.float32)
    else:
        raise ValueError(f"unknown background kind {kind!r}; choose from {BACKGROUND_KINDS}")
    return np.clip(pixels, 0, 255).astype(np.uint8)


def render(
    size: int, placements: list[Placement], background: str, rng: np.random.Generator
) -> tuple[Image.Image, list[np.ndarray]]:
    """Draw the objects in order on a background; return the image and one mask per object.

    Shapes are drawn SUPERSAMPLE× larger and box-filtered down, so their edges are
    anti-aliased and a 16 px star still looks like a star. A mask is the object's *visible*
    pixels (bool, size×size, coverage ≥ 50%): a later object drawn over an earlier one removes
    the overlap from the earlier mask.
    """
    avoid = [COLOURS[p.colour] for p in placements]
    image = Image.fromarray(make_background(size, background, rng, avoid), "RGB")
    big = size * SUPERSAMPLE
    masks: list[np.ndarray] = []
    for placement in placements:
        coverage = Image.new("L", (big, big), 0)
        cx, cy = (c * SUPERSAMPLE for c in placement.centre)
        r = placement.radius * SUPERSAMPLE
        draw_shape(ImageDraw.Draw(coverage), placement.shape, cx, cy, r, 255)
        alpha = coverage.resize((size, size), Image.Resampling.BOX)
        image.paste(COLOURS[placement.colour], (0, 0, size, size), alpha)
        mask = np.asarray(alpha) >= 128
        masks = [m & ~mask for m in masks]
        masks.append(mask)
    return image, masks


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) with exclusive x1, y1 — PIL's box convention; zeros for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return (0, 0, 0, 0)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
