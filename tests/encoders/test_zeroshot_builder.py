"""The one zero-shot classifier builder (``encoders.runtime.zeroshot``): prompt order, the
ensemble arithmetic, and that it is the only definition of the default templates."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from encoders.errors import VitrieveError
from encoders.runtime.zeroshot import (
    CAPTION_TEMPLATES,
    DEFAULT_TEMPLATES,
    build_zero_shot_classifier,
    zero_shot_prompts,
)

ROOT = Path(__file__).resolve().parents[2]


class Recorder:
    """Embeds a prompt as a fixed random unit vector; remembers what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def encode_texts(self, texts):
        self.asked.extend(texts)
        rows = [np.random.default_rng(abs(hash(t)) % 2**32).normal(size=8) for t in texts]
        vectors = np.array(rows, dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_classes_are_the_normalised_mean_of_their_prompts() -> None:
    encoder = Recorder()
    classes = build_zero_shot_classifier(encoder, ["cat", "dog"], ("a {}.", "a photo of a {}."))
    assert encoder.asked == ["a cat.", "a photo of a cat.", "a dog.", "a photo of a dog."]
    prompts = encoder.encode_texts(encoder.asked[:4])
    for row, pair in zip(classes, (prompts[:2], prompts[2:]), strict=True):
        mean = pair.mean(axis=0)
        np.testing.assert_allclose(row, mean / np.linalg.norm(mean), rtol=1e-6)
    assert classes.dtype == np.float32 and classes.shape == (2, 8)


def test_a_function_works_as_the_encoder_and_defaults_are_the_photo_ensemble() -> None:
    encoder = Recorder()
    classes = build_zero_shot_classifier(encoder.encode_texts, ["cat"])
    assert len(encoder.asked) == len(DEFAULT_TEMPLATES) == 14 and classes.shape == (1, 8)
    assert CAPTION_TEMPLATES == ("a {}.", "a photo of a {}.")  # docs/training.md's figures


def test_templates_need_a_placeholder_and_classes_are_needed() -> None:
    with pytest.raises(VitrieveError, match="template"):
        zero_shot_prompts(["cat"], ["no placeholder"])
    with pytest.raises(VitrieveError, match="class"):
        zero_shot_prompts([], CAPTION_TEMPLATES)


def test_default_templates_are_defined_once() -> None:
    """Other modules import DEFAULT_TEMPLATES; none defines its own prompt list."""
    definition = re.compile(r"^\s*DEFAULT_TEMPLATES\s*(:[^=]*)?=", re.MULTILINE)
    found = [
        path.relative_to(ROOT).as_posix()
        for package in ("encoders", "indexer", "retrieval", "ui")
        for path in (ROOT / package).rglob("*.py")
        if definition.search(path.read_text(encoding="utf-8"))
    ]
    assert found == ["encoders/runtime/zeroshot.py"]
