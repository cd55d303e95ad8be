"""A second, independent family of compositional data ("style B") to confirm training recipes on.

Recipes are chosen on one family and confirmed on the other (docs/training.md), so this one
shares no drawing code, colour, shape or sentence form with ``encoders.data.synthetic`` (style A):
other colours and shapes, shapes rotated to any angle and sometimes drawn as outlines,
shading on the objects, busier backgrounds (stripes, checks, clutter, strong noise), objects
of three sizes anywhere in the frame, relations such as above / below / next to, one
synonym ("moon" for crescent) and sentence forms that put the colour after the noun ("the
arrow is pink", "a ring in cyan"). Six of the 48 colour–shape pairs are held out of training.

Like style A, every image is a pure function of (seed, split, index).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from encoders.data.synthetic import SPLIT_IDS, Scene, SceneObject

COLOURS: dict[str, tuple[int, int, int]] = {
    "pink": (240, 110, 185),
    "brown": (125, 70, 30),
    "cyan": (20, 205, 225),
    "lime": (165, 235, 45),
    "navy": (25, 35, 135),
    "gold": (230, 175, 15),
}
SHAPES = ("pentagon", "arrow", "crescent", "ring", "rectangle", "trapezoid", "semicircle", "bolt")
SHAPE_WORDS = {"crescent": ("crescent", "crescent", "moon")}
# Radius as a fraction of the image side; the smallest keeps every shape and outline
# recognisable at 64 px (at 0.11 small crescents, semicircles and trapezoids were guesses).
SIZES = {"small": 0.14, "medium": 0.18, "big": 0.23}
SIZE_WORDS = {"small": ("small", "little"), "medium": ("medium", "mid-sized"), "big": ("big",)}
HELD_OUT_COUNT = 6
TWO_OBJECT_FRACTION = 0.3
OUTLINE_FRACTION = 0.3
BACKGROUNDS = ("stripes", "checks", "clutter", "noise")
# Desaturated tones; per scene only those at least MIN_CONTRAST from every object colour.
TONES = ((120, 120, 120), (165, 160, 150), (200, 200, 195), (95, 105, 100), (150, 130, 140),
         (185, 175, 140), (110, 125, 150), (70, 70, 75), (215, 210, 225))  # fmt: skip
MIN_CONTRAST = 95.0
SUPER = 4  # supersampling for anti-aliased edges


def class_names() -> list[str]:
    """Every "colour shape" class, colours outer, shapes inner."""
    return [f"{c} {s}" for c in COLOURS for s in SHAPES]


def held_out_pairs(seed: int) -> list[str]:
    """HELD_OUT_COUNT classes kept out of training, at most one per colour and per shape."""
    rng = np.random.default_rng([seed, 104729])
    chosen, colours, shapes = [], set(), set()
    for index in rng.permutation(len(COLOURS) * len(SHAPES)):
        colour, shape = list(COLOURS)[index // len(SHAPES)], SHAPES[index % len(SHAPES)]
        if colour not in colours and shape not in shapes:
            chosen.append(f"{colour} {shape}")
            colours.add(colour)
            shapes.add(shape)
        if len(chosen) == HELD_OUT_COUNT:
            break
    return sorted(chosen, key=class_names().index)


def allowed_classes(seed: int, split: str) -> list[str]:
    """The classes a split may show: all but the held-out ones in training, all in test."""
    if split not in SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}; choose from {list(SPLIT_IDS)}")
    held = set(held_out_pairs(seed)) if split == "train" else set()
    return [c for c in class_names() if c not in held]


def _rotated(points, cx: float, cy: float, angle: float) -> list[tuple[float, float]]:
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in points]


def _outline_points(shape: str, r: float) -> list[tuple[float, float]]:
    """Polygon shapes around (0, 0), unrotated, fitting a circle of radius ``r``."""
    if shape == "pentagon":
        return [(r * math.cos(a), r * math.sin(a))
                for a in (-math.pi / 2 + 2 * math.pi * k / 5 for k in range(5))]  # fmt: skip
    if shape == "arrow":  # pointing right: a shaft and a head
        return [(-r, -0.22 * r), (0.15 * r, -0.22 * r), (0.15 * r, -0.6 * r), (r, 0),
                (0.15 * r, 0.6 * r), (0.15 * r, 0.22 * r), (-r, 0.22 * r)]  # fmt: skip
    if shape == "rectangle":  # 2:1, so it never reads as a square
        return [(-r, -0.45 * r), (r, -0.45 * r), (r, 0.45 * r), (-r, 0.45 * r)]
    if shape == "trapezoid":
        return [(-r, 0.55 * r), (r, 0.55 * r), (0.45 * r, -0.55 * r), (-0.45 * r, -0.55 * r)]
    if shape == "bolt":  # a lightning zig-zag
        return [(0.25 * r, -r), (-0.45 * r, 0.1 * r), (0.0, 0.1 * r), (-0.25 * r, r),
                (0.45 * r, -0.1 * r), (0.0, -0.1 * r)]  # fmt: skip
    raise ValueError(f"unknown shape {shape!r}; choose from {SHAPES}")


def _shape_mask(shape: str, big: int, cx: float, cy: float, r: float, angle: float) -> Image.Image:
    """The filled shape as an 'L' coverage image of side ``big`` (supersampled units)."""
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "ring":
        draw.ellipse(box, fill=255)
        inner = 0.55 * r
        draw.ellipse((cx - inner, cy - inner, cx + inner, cy + inner), fill=0)
    elif shape == "crescent":
        draw.ellipse(box, fill=255)
        dx, dy = 0.45 * r * math.cos(angle), 0.45 * r * math.sin(angle)
        cut = 0.85 * r
        draw.ellipse((cx + dx - cut, cy + dy - cut, cx + dx + cut, cy + dy + cut), fill=0)
    elif shape == "semicircle":
        bulge = angle + math.pi / 2  # centre the half disc's area on (cx, cy)
        sx, sy = cx - 0.21 * r * math.cos(bulge), cy - 0.21 * r * math.sin(bulge)
        start = math.degrees(angle)
        draw.pieslice((sx - r, sy - r, sx + r, sy + r), start, start + 180, fill=255)
    else:
        draw.polygon(_rotated(_outline_points(shape, r), cx, cy, angle), fill=255)
    return mask


def _outlined(mask: Image.Image, r: float) -> Image.Image:
    """Only the rim of a filled coverage mask: the shape drawn as an outline."""
    width = 2 * max(2, round(0.3 * r)) + 1  # a stroke of 0.3 r, in supersampled pixels
    inner = mask.filter(ImageFilter.MinFilter(width))
    return Image.fromarray(np.clip(np.asarray(mask, np.int16) - np.asarray(inner), 0, 255)
                           .astype(np.uint8))  # fmt: skip


def _background(size: int, kind: str, rng: np.random.Generator, avoid) -> np.ndarray:
    tones = np.array(TONES, np.float32)
    far = np.linalg.norm(tones[:, None] - np.array(avoid, np.float32)[None], axis=-1).min(1)
    tones = tones[far >= MIN_CONTRAST] if (far >= MIN_CONTRAST).any() else tones[[far.argmax()]]
    a, b = tones[rng.integers(len(tones))], tones[rng.integers(len(tones))]
    b = a + np.clip(b - a, -25, 25)  # second tone near the first: busy, never a colour of its own
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    if kind == "stripes":
        angle, period = rng.uniform(0, math.pi), rng.uniform(4, 12) * size / 64
        t = np.sin((xs * math.cos(angle) + ys * math.sin(angle)) * 2 * math.pi / period) > 0
    elif kind == "checks":
        cell = int(rng.integers(4, 11)) * max(size // 64, 1)
        t = ((xs // cell + ys // cell) % 2).astype(bool)
    elif kind == "clutter":
        t = np.zeros((size, size), bool)
        for _ in range(int(rng.integers(6, 14))):
            x0, y0 = rng.uniform(0, size, 2)
            length, angle = rng.uniform(0.1, 0.4) * size, rng.uniform(0, math.pi)
            d = np.abs((xs - x0) * math.sin(angle) - (ys - y0) * math.cos(angle))
            along = (xs - x0) * math.cos(angle) + (ys - y0) * math.sin(angle)
            t |= (d < 0.6 * size / 64) & (along > 0) & (along < length)
    else:
        t = np.zeros((size, size), bool)
    pixels = np.where(t[..., None], b, a) + rng.normal(0, 14 if kind == "noise" else 6,
                                                        (size, size, 1))  # fmt: skip
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _draw(size: int, objects, centres, radii, angles, outlines, kind, rng):
    """Render the objects (shaded, maybe outlined) on a busy background; image and masks."""
    avoid = [COLOURS[o.colour] for o in objects]
    image = Image.fromarray(_background(size, kind, rng, avoid), "RGB")
    big = size * SUPER
    masks: list[np.ndarray] = []
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    for obj, (cx, cy), r, angle, outline in zip(objects, centres, radii, angles, outlines,
                                                 strict=True):  # fmt: skip
        cover = _shape_mask(obj.shape, big, cx * SUPER, cy * SUPER, r * SUPER, angle)
        if outline:
            cover = _outlined(cover, r * SUPER)
        alpha = cover.resize((size, size), Image.Resampling.BOX)
        light = (
            rng.uniform(0.12, 0.22) * (np.cos(angle) * (xs - cx) + np.sin(angle) * (ys - cy)) / r
        )
        paint = np.clip(np.array(COLOURS[obj.colour], np.float32) * (1 + light[..., None]), 0, 255)
        image.paste(Image.fromarray(paint.astype(np.uint8), "RGB"), (0, 0), alpha)
        mask = np.asarray(alpha) >= 128
        masks = [m & ~mask for m in masks]
        masks.append(mask)
    return image, masks


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _a(phrase: str) -> str:
    return f"an {phrase}" if phrase[0] in "aeiou" else f"a {phrase}"


def _where(cx: float, cy: float, size: int) -> str:
    """Coarse position words for a centre: "in the upper left", "near the bottom", …"""
    col = "left" if cx < size / 3 else "right" if cx > 2 * size / 3 else ""
    row = "upper" if cy < size / 3 else "lower" if cy > 2 * size / 3 else ""
    if not col and not row:
        return "in the middle"
    if not row:
        return f"on the {col}"
    if not col:
        return "near the top" if row == "upper" else "near the bottom"
    return f"in the {row} {col}"


def _single_caption(obj: SceneObject, outline: bool, where: str, kind: str, rng) -> str:
    noun = _pick(rng, SHAPE_WORDS.get(obj.shape, (obj.shape,)))
    size = _pick(rng, SIZE_WORDS[obj.size])
    if outline and rng.random() < 0.6:
        return _pick(rng, (f"an outline of {_a(f'{obj.colour} {noun}')}",
                           f"{_a(f'hollow {obj.colour} {noun}')} {where}",
                           f"the outline of a {noun} in {obj.colour}"))  # fmt: skip
    return _pick(rng, (
        _a(f"{size} {obj.colour} {noun}"),
        f"the {noun} is {obj.colour}",
        f"{obj.colour} {noun}",
        f"an image of {_a(f'{obj.colour} {noun}')} {where}",
        f"{_a(noun)} in {obj.colour}",
        f"{_a(f'{size} {noun}')}, coloured {obj.colour}",
        f"{_a(f'{obj.colour} {noun}')} over a {kind} pattern",
        f"close-up of {_a(f'{obj.colour} {noun}')}",
        f"one {obj.colour} {noun} {where}",
    ))  # fmt: skip


def _pair_caption(first: SceneObject, second: SceneObject, relation: str, rng) -> str:
    """``relation`` says where ``first`` is relative to ``second``: above / left / right."""
    a = _a(f"{first.colour} {_pick(rng, SHAPE_WORDS.get(first.shape, (first.shape,)))}")
    b = _a(f"{second.colour} {_pick(rng, SHAPE_WORDS.get(second.shape, (second.shape,)))}")
    if relation == "above":
        forms = (f"{a} above {b}", f"{b} below {a}", f"{a} sits above {b}",
                 f"{b} underneath {a}", f"a picture with {a} and {b}")  # fmt: skip
    else:
        side = "left" if relation == "left" else "right"
        forms = (f"{a} next to {b}", f"{a} beside {b}", f"{a} to the {side} of {b}",
                 f"{a} and {b} side by side", f"a picture with {a} and {b}")  # fmt: skip
    return _pick(rng, forms)


def sample_scene(size_px: int, allowed: list[str], rng: np.random.Generator) -> Scene:
    """Draw one random scene whose objects all come from ``allowed`` classes."""
    kind = _pick(rng, BACKGROUNDS)
    two = rng.random() < TWO_OBJECT_FRACTION
    picks = rng.choice(len(allowed), size=2 if two else 1, replace=False)
    objects = []
    for i in picks:
        colour, shape = allowed[int(i)].split(" ")
        objects.append(SceneObject(colour, shape, "small" if two else _pick(rng, list(SIZES))))
    radii = [SIZES[o.size] * size_px * rng.uniform(0.92, 1.08) for o in objects]
    angles = [rng.uniform(0, 2 * math.pi) for _ in objects]
    outlines = [bool(rng.random() < OUTLINE_FRACTION) for _ in objects]
    if not two:
        margin = radii[0] + 1
        centre = tuple(rng.uniform(margin, size_px - margin, 2))
        where = _where(*centre, size_px)
        obj = SceneObject(objects[0].colour, objects[0].shape, objects[0].size, where)
        image, masks = _draw(size_px, [obj], [centre], radii, angles, outlines, kind, rng)
        return Scene(image, _single_caption(obj, outlines[0], where, kind, rng), (obj,),
                     tuple(masks))  # fmt: skip
    relation = _pick(rng, ("above", "left", "right"))
    gap = rng.uniform(0.34, 0.46) * size_px  # centre to centre: never overlapping
    mid = rng.uniform(0.42, 0.58, 2) * size_px
    offset = {"above": (0.0, -gap / 2), "left": (-gap / 2, 0.0), "right": (gap / 2, 0.0)}
    dx, dy = offset[relation]  # of the first object from the middle; the second opposite
    centres = [(mid[0] + dx, mid[1] + dy), (mid[0] - dx, mid[1] - dy)]
    positions = ("top", "bottom") if relation == "above" else (
        ("left", "right") if relation == "left" else ("right", "left"))  # fmt: skip
    objects = [SceneObject(o.colour, o.shape, o.size, p) for o, p in zip(objects, positions,
                                                                         strict=True)]  # fmt: skip
    image, masks = _draw(size_px, objects, centres, radii, angles, outlines, kind, rng)
    return Scene(image, _pair_caption(objects[0], objects[1], relation, rng), tuple(objects),
                 tuple(masks))  # fmt: skip


def scene_for(
    seed: int, split: str, index: int, size_px: int, allowed: list[str] | None = None
) -> Scene:
    """The ``index``-th scene of ``split`` (``allowed`` may be passed in to save recomputing)."""
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index, 2])
    return sample_scene(size_px, allowed or allowed_classes(seed, split), rng)
