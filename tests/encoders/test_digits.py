"""The handwritten digits export: every scan written once, stratified split, sensible captions."""

from __future__ import annotations

import numpy as np
from PIL import Image

from encoders.data.digits import DIGIT_WORDS, digit_image, write_digits
from encoders.training.data import read_captioned


def test_write_digits(tmp_path):
    written = write_digits(tmp_path, size_px=24, test_fraction=0.3, seed=0)
    assert sum(written.counts.values()) == 1797  # every scan in load_digits
    assert (tmp_path / "classes.txt").read_text().split() == list(DIGIT_WORDS)
    train = read_captioned(tmp_path / "train.tsv", label_col="label")
    test = read_captioned(tmp_path / "test.tsv", label_col="label")
    assert not {i.path for i in train} & {i.path for i in test}
    for word in DIGIT_WORDS:  # stratified: ~30% of each digit in test
        n_test = sum(i.label == word for i in test)
        n_all = n_test + sum(i.label == word for i in train)
        assert abs(n_test / n_all - 0.3) < 0.02
    for item in test[:50]:
        digit = DIGIT_WORDS.index(item.label)
        assert item.label in item.caption or str(digit) in item.caption
        assert Image.open(item.path).size == (24, 24)


def test_digit_image_is_dark_ink_on_white():
    ink = np.zeros((8, 8))
    ink[2:6, 3:5] = 16
    pixels = np.asarray(digit_image(ink, 32))
    assert pixels.shape == (32, 32, 3)
    assert pixels[0, 0].tolist() == [255, 255, 255] and pixels[16, 16].max() < 40
