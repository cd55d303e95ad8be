"""Compositional image–caption data: coloured shapes, captions in varied words, held-out pairs.

Each image shows one object (most of the time) or two, with a colour, a shape, a size and a
position, on a plain, gradient or textured background. Some (colour, shape) pairs never occur
in the training split — chosen from the seed, with every colour and every shape still seen —
so the test split measures zero-shot generalisation to unseen compositions.

Every image is a pure function of (seed, split, index): generation is deterministic whatever
the number of worker processes, and ``render_scene`` re-creates any image with its masks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from encoders.data.drawing import BACKGROUND_KINDS, COLOURS, SHAPES, Placement, mask_bbox, render

SIZES = {"small": 0.13, "large": 0.22}  # object radius as a fraction of the image side
POSITIONS = {  # object centre as fractions of the image side
    "left": (0.28, 0.5),
    "right": (0.72, 0.5),
    "top": (0.5, 0.28),
    "bottom": (0.5, 0.72),
    "centre": (0.5, 0.5),
}
POSITION_PHRASES = {
    "left": ("on the left", "on the left side"),
    "right": ("on the right", "on the right side"),
    "top": ("at the top", "near the top"),
    "bottom": ("at the bottom", "near the bottom"),
    "centre": ("in the centre", "in the middle"),
}
SHAPE_WORDS = {"circle": ("circle", "circle", "round shape"), "square": ("square", "square", "box")}
TWO_OBJECT_FRACTION = 0.25
HELD_OUT_FRACTION = 0.2
JITTER = 0.04  # position jitter, fraction of the image side
SPLIT_IDS = {"train": 0, "test": 1}


@dataclass(frozen=True)
class SceneObject:
    colour: str
    shape: str
    size: str = "large"  # "small" | "large"
    position: str = "centre"  # a POSITIONS key

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """A rendered example: the image, its caption, and where each object is."""

    image: Image.Image
    caption: str
    objects: tuple[SceneObject, ...]
    masks: tuple[np.ndarray, ...]  # visible pixels of each object, bool (S, S)

    @property
    def label(self) -> str:
        """The class name ("colour shape") of a single-object scene, "" otherwise."""
        return self.objects[0].name if len(self.objects) == 1 else ""

    @property
    def boxes(self) -> list[tuple[int, int, int, int]]:
        return [mask_bbox(m) for m in self.masks]


def class_names() -> list[str]:
    """Every "colour shape" class, colours outer, shapes inner."""
    return [f"{c} {s}" for c in COLOURS for s in SHAPES]


def held_out_pairs(seed: int, fraction: float = HELD_OUT_FRACTION) -> list[str]:
    """Classes kept out of training: ~``fraction`` of all, at most ceil(n/len) per colour/shape.

    The per-colour and per-shape cap keeps every colour and every shape seen in training,
    in most of its combinations.
    """
    rng = np.random.default_rng([seed, 7919])
    target = round(fraction * len(COLOURS) * len(SHAPES))
    cap = max(1, math.ceil(target / min(len(COLOURS), len(SHAPES))))
    chosen: list[str] = []
    per_colour: dict[str, int] = {}
    per_shape: dict[str, int] = {}
    for index in rng.permutation(len(COLOURS) * len(SHAPES)):
        colour, shape = list(COLOURS)[index // len(SHAPES)], SHAPES[index % len(SHAPES)]
        if per_colour.get(colour, 0) < cap and per_shape.get(shape, 0) < cap:
            chosen.append(f"{colour} {shape}")
            per_colour[colour] = per_colour.get(colour, 0) + 1
            per_shape[shape] = per_shape.get(shape, 0) + 1
        if len(chosen) == target:
            break
    return sorted(chosen, key=class_names().index)


def _pick(rng: np.random.Generator, options) -> str:
    return options[int(rng.integers(len(options)))]


def _object_phrase(obj: SceneObject, rng: np.random.Generator, with_size: bool) -> str:
    noun = _pick(rng, SHAPE_WORDS.get(obj.shape, (obj.shape,)))
    return f"{obj.size} {obj.colour} {noun}" if with_size else f"{obj.colour} {noun}"


def _a(phrase: str) -> str:
    """The phrase with its indefinite article ("an orange star", "a red circle")."""
    return f"an {phrase}" if phrase[0] in "aeiou" else f"a {phrase}"


def single_caption(obj: SceneObject, background: str, rng: np.random.Generator) -> str:
    """One of several phrasings naming colour and shape, sometimes size, position, background."""
    plain = _a(_object_phrase(obj, rng, with_size=False))
    sized = _a(_object_phrase(obj, rng, with_size=True))
    bare = _object_phrase(obj, rng, with_size=False)
    where = _pick(rng, POSITION_PHRASES[obj.position])
    templates = (
        plain,
        f"a photo of {plain}",
        bare,
        sized,
        f"a photo of {sized} {where}",
        f"{plain} {where}",
        f"a drawing of {sized}",
        f"{plain} on a {background} background",
        f"there is {sized} {where}",
    )
    return _pick(rng, templates)


def pair_caption(first: SceneObject, second: SceneObject, rng: np.random.Generator) -> str:
    """A relation caption; ``first`` is left of (or above) ``second``."""
    a = _a(_object_phrase(first, rng, with_size=False))
    b = _a(_object_phrase(second, rng, with_size=False))
    if first.position == "left":
        templates = (f"{a} left of {b}", f"{b} right of {a}", f"{a} to the left of {b}",
                     f"{a} on the left and {b} on the right", f"{a} and {b}")  # fmt: skip
    else:
        templates = (f"{a} above {b}", f"{b} below {a}",
                     f"{a} at the top and {b} at the bottom", f"{a} and {b}")  # fmt: skip
    return _pick(rng, templates)


def _choose_classes(rng: np.random.Generator, count: int, allowed: list[str]) -> list[str]:
    picks = rng.choice(len(allowed), size=count, replace=False)
    return [allowed[int(i)] for i in picks]


def _placement(obj: SceneObject, size_px: int, rng: np.random.Generator, radius: float):
    fx, fy = POSITIONS[obj.position]
    jitter = rng.uniform(-JITTER, JITTER, 2)
    centre = ((fx + jitter[0]) * size_px, (fy + jitter[1]) * size_px)
    return Placement(obj.colour, obj.shape, centre, radius * size_px)


def sample_scene(size_px: int, allowed: list[str], rng: np.random.Generator) -> Scene:
    """Draw one random scene whose objects all come from ``allowed`` classes."""
    background = _pick(rng, BACKGROUND_KINDS)
    if rng.random() >= TWO_OBJECT_FRACTION:
        colour, shape = _choose_classes(rng, 1, allowed)[0].split(" ")
        obj = SceneObject(colour, shape, _pick(rng, list(SIZES)), _pick(rng, list(POSITIONS)))
        radius = SIZES[obj.size] * rng.uniform(0.9, 1.1)
        image, masks = render(size_px, [_placement(obj, size_px, rng, radius)], background, rng)
        return Scene(image, single_caption(obj, background, rng), (obj,), tuple(masks))
    names = _choose_classes(rng, 2, allowed)
    first_pos, second_pos = ("left", "right") if rng.random() < 0.5 else ("top", "bottom")
    objects = tuple(
        SceneObject(*name.split(" "), size="small", position=pos)
        for name, pos in zip(names, (first_pos, second_pos), strict=True)
    )
    placements = [_placement(o, size_px, rng, SIZES["small"] * 1.15) for o in objects]
    image, masks = render(size_px, placements, background, rng)
    return Scene(image, pair_caption(*objects, rng), objects, tuple(masks))


def allowed_classes(seed: int, split: str) -> list[str]:
    """The classes a split may show: all but the held-out ones in training, all in test."""
    if split not in SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}; choose from {list(SPLIT_IDS)}")
    held = set(held_out_pairs(seed)) if split == "train" else set()
    return [c for c in class_names() if c not in held]


def scene_for(
    seed: int, split: str, index: int, size_px: int, allowed: list[str] | None = None
) -> Scene:
    """The ``index``-th scene of ``split`` (``allowed`` may be passed in to save recomputing)."""
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index])
    return sample_scene(size_px, allowed or allowed_classes(seed, split), rng)


def render_scene(
    objects: list[SceneObject], size_px: int = 64, seed: int = 0, background: str = "plain"
) -> Scene:
    """Render chosen objects (e.g. for tests that need a known object and its mask)."""
    rng = np.random.default_rng([seed, 2, 0])
    radii = {o: SIZES[o.size] * (1.15 if len(objects) > 1 and o.size == "small" else 1.0)
             for o in objects}  # fmt: skip
    placements = [_placement(o, size_px, rng, radii[o]) for o in objects]
    image, masks = render(size_px, placements, background, rng)
    if len(objects) == 1:
        caption = single_caption(objects[0], background, rng)
    else:
        caption = " and ".join(_a(o.name) for o in objects)
    return Scene(image, caption, tuple(objects), tuple(masks))


def render_object(
    colour: str,
    shape: str,
    size_px: int = 64,
    seed: int = 0,
    size: str = "large",
    position: str = "centre",
    background: str = "plain",
) -> Image.Image:
    """One named object on a background, e.g. ``render_object("red", "circle", 64, 0)``."""
    if colour not in COLOURS or shape not in SHAPES:
        raise ValueError(f"unknown object {colour} {shape}; colours {list(COLOURS)}, {SHAPES}")
    return render_scene(
        [SceneObject(colour, shape, size, position)], size_px, seed, background
    ).image
