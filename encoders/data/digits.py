"""scikit-learn's handwritten digits (ships with the package) as a captioned image data set.

1,797 real 8×8 scans (UCI "optdigits"), upscaled and written in the same TSV format as the
synthetic set, so zero-shot evaluation can be run on real scans with no download.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from encoders.data.datasets import WrittenDataset, write_lines, write_tsv
from encoders.errors import VitrieveError

log = logging.getLogger(__name__)

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGITS_COLUMNS = ("filepath", "title", "label")
CAPTION_TEMPLATES = (
    "a handwritten digit {n}",
    "the number {word}",
    "a scan of the digit {word}",
    "a handwritten {word}",
    "the digit {n}, written by hand",
    "a photo of the number {n}",
)
MAX_INK = 16.0  # load_digits pixel values run 0..16 (counts of set bits in 4×4 blocks)


def digit_image(pixels: np.ndarray, size: int) -> Image.Image:
    """An 8×8 ink map (0..16) → dark ink on white paper, upscaled smoothly to size×size RGB."""
    grey = (255.0 - pixels * (255.0 / MAX_INK)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(grey).resize((size, size), Image.Resampling.BICUBIC)
    return image.convert("RGB")


def _load():
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # an optional dependency: vitrieve[digits]
        raise VitrieveError(
            "the digits data set needs scikit-learn: pip install scikit-learn"
        ) from exc
    data = load_digits()
    return data.images, data.target


def _split(targets: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """A boolean test mask, stratified: the same fraction of every digit goes to test."""
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(targets), dtype=bool)
    for digit in np.unique(targets):
        where = rng.permutation(np.flatnonzero(targets == digit))
        is_test[where[: round(len(where) * test_fraction)]] = True
    return is_test


def write_digits(
    out: Path, size_px: int = 64, test_fraction: float = 0.3, seed: int = 0
) -> WrittenDataset:
    """Write ``out/train.tsv``, ``out/test.tsv``, ``classes.txt`` ("zero".."nine") and PNGs."""
    if not 0.0 < test_fraction < 1.0:
        raise VitrieveError(f"test fraction must be between 0 and 1, got {test_fraction}")
    if not 8 <= size_px <= 1024:
        raise VitrieveError(f"image size must be between 8 and 1024 px, got {size_px}")
    images, targets = _load()
    is_test = _split(targets, test_fraction, seed)
    rng = np.random.default_rng([seed, 1])
    rows: dict[str, list[tuple[str, str, str]]] = {"train": [], "test": []}
    for split in rows:
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
    for index, (pixels, digit) in enumerate(zip(images, targets, strict=True)):
        split = "test" if is_test[index] else "train"
        relative = f"images/{split}/{index:04d}_{digit}.png"
        digit_image(pixels, size_px).save(out / relative, compress_level=1)
        template = CAPTION_TEMPLATES[int(rng.integers(len(CAPTION_TEMPLATES)))]
        caption = template.format(n=int(digit), word=DIGIT_WORDS[digit])
        rows[split].append((relative, caption, DIGIT_WORDS[digit]))
    counts = {
        split: write_tsv(out / f"{split}.tsv", DIGITS_COLUMNS, r) for split, r in rows.items()
    }
    write_lines(out / "classes.txt", DIGIT_WORDS)
    log.info("wrote %s digits to %s", counts, out)
    return WrittenDataset(out, counts, len(DIGIT_WORDS), 0)
