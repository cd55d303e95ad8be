"""The one zero-shot classifier builder: prompt templates → one embedding per class.

CLIP's prompt ensembling (open_clip's ``build_zero_shot_classifier``): every class name is
put into every template ("a photo of a {}."), the prompts are encoded, and a class's
embedding is the mean of its normalised prompt embeddings, normalised again — which smooths
away the quirks of any one wording. Evaluation (``retrieval.evaluation.evaluate``), the
trainer's in-loop validation (``encoders.training.validate``) and labelling, classify and the
API (``retrieval.labels.zeroshot``) all build their class embeddings here.

Two template sets, each for what it was measured on:

* ``DEFAULT_TEMPLATES`` — photos: the CLIP paper's ImageNet ensemble abridged to the
  photo-relevant prompts; what labelling a library uses unless told otherwise.
* ``CAPTION_TEMPLATES`` — data whose class names are whole captions ("red circle left of a
  blue square"): evaluation's and validation's default; every zero-shot figure in
  docs/training.md was measured with these two prompts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from encoders.errors import VitrieveError

DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.", "a picture of a {}.", "a {}.", "a photo of the {}.",
    "a close-up photo of a {}.", "a bright photo of a {}.", "a dark photo of a {}.",
    "a good photo of a {}.", "a cropped photo of a {}.", "a drawing of a {}.",
    "a rendering of a {}.", "a photo of a small {}.", "a photo of a large {}.",
    "there is a {} in the picture.",
)  # fmt: skip
CAPTION_TEMPLATES: tuple[str, ...] = ("a {}.", "a photo of a {}.")


class TextEncoder(Protocol):
    """Anything that embeds texts: ``encoders.runtime.encoder.Encoder`` and its kin."""

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...


def zero_shot_prompts(classnames: Sequence[str], templates: Sequence[str]) -> list[str]:
    """Every class in every template, class-major (class 0's prompts first)."""
    if not classnames or not templates:
        raise VitrieveError("zero-shot classes need at least one class name and one template")
    bad = [t for t in templates if "{}" not in t]
    if bad:
        raise VitrieveError(f"a template needs a {{}} where the class name goes: {bad[0]!r}")
    return [t.format(c) for c in classnames for t in templates]


def ensemble(prompt_vectors: np.ndarray, classes: int) -> np.ndarray:
    """(C × T, D) normalised prompt embeddings, class-major → (C, D) float32 class
    embeddings: the mean over each class's templates, normalised again."""
    vectors = np.asarray(prompt_vectors, dtype=np.float32).reshape(
        classes, -1, prompt_vectors.shape[-1]
    )
    mean = vectors.mean(axis=1)
    return mean / np.linalg.norm(mean, axis=1, keepdims=True).clip(min=1e-12)


def build_zero_shot_classifier(
    encoder: TextEncoder | Callable[[list[str]], np.ndarray],
    classnames: Sequence[str],
    templates: Sequence[str] = DEFAULT_TEMPLATES,
) -> np.ndarray:
    """(C, D) float32 class embeddings from ``encoder`` (an object with ``encode_texts`` or a
    function of the prompt list returning their normalised embeddings)."""
    prompts = zero_shot_prompts(classnames, templates)
    encode = getattr(encoder, "encode_texts", encoder)
    return ensemble(np.asarray(encode(prompts)), len(classnames))
