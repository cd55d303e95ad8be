"""Relevance calibration: is this score a real match on *this* library, or confident noise?

A raw cosine means little on its own: every text sits at its own distance from the image
cloud, the scale differs between models (a fresh CLIP's matches score 0.3, a small one trained
here scores 0.9), and the best of N random scores rises with N. So each query's scores are read
against two references, both measured on this library with this model:

1. the query's *own* centre: the median of its scores over a fixed sample of the library's
   vectors. A result's *margin* is ``score - centre``: how far above the query's typical
   image it stands. This removes the per-text offset.
2. the *null*: a fixed bank of unrelated captions (paperwork, abstractions, gibberish). For each
   of them, the margin of its *best* match over the whole library is what "the top result of a
   query that matches nothing" looks like here. A text result is a good match when its margin
   clears the ``TEXT_QUANTILE`` of those — when it beats unrelated text's best.

Image queries ("more like this") live on another scale (photos resemble photos more than
captions do), so they get their own null, built the same way from pictures of nothing —
noise, blurred noise, stripes, checkerboards: a result must beat the ``IMAGE_QUANTILE`` of
those pictures' best matches. A mixed query's cut-off is the weighted mix of the two.

Text results are also checked from the image's side: the image must match the query better
than it matches *any* of the unrelated captions, by ``IMAGE_SIDE_MARGIN`` widths — otherwise
the query is just the nearest bit of noise to that image (a small model maps gibberish onto
some colour or shape it knows). Captions that are not unrelated to the query itself (closer to
it than any two unrelated captions are to each other, ``unrelated_to``) are left out of that
check, so searching a library of scanned invoices for "an invoice" still works.

A photo whose recognised text strongly matches the query answers it whatever its embedding
scores: ``weak_results`` never marks such ids weak (the hook hybrid text search passes them
through, ``Searcher.search(answered=...)``).

``calibrated = sigmoid((margin - cutoff) / width)`` (``width`` is the spread of the null; for
text, the smaller of the two checks): 0.5 at the cut-off, near 1 far above it. The nulls are
computed once per library and model and kept beside ``library.json`` (``calibration.npz``);
they are recomputed when the model changes or the library's size moves by more than
``STALE_FRACTION``.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from encoders.atomic import atomic_write_bytes
from encoders.runtime.encoder import Encoder
from indexer.vectors.index import VectorSearch

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.npz"
CALIBRATION_VERSION = 4
SAMPLE_SIZE = 4096  # library vectors each query is scored against for its centre
TEXT_QUANTILE = 0.95  # a good text match beats the best match of 95% of unrelated captions
IMAGE_QUANTILE = 0.95  # a good image match beats what 95% of pictures of nothing reach
NULL_IMAGE_KINDS = 4  # noise, blurred noise, stripes, checkerboards
NULL_IMAGES = 24  # pictures of nothing: 6 of each kind, coarser step by step
STALE_FRACTION = 0.2  # recompute when the library grew or shrank by more than this
IMAGE_SIDE_MARGIN = 0.25  # in widths: how clearly a result must beat unrelated text on itself
MIN_WIDTH = 0.01  # cosine units: keeps the sigmoid from becoming a step on tiny libraries
SPREAD_QUANTILE = 0.5  # a null's width: from its median to its cut-off

# Text that should match nothing in a photo library: paperwork, abstractions, code, gibberish.
NULL_CAPTIONS: tuple[str, ...] = (
    "an invoice", "a tax return form", "a page of legal text", "a spreadsheet of numbers",
    "a bank statement", "a receipt with prices", "a printed contract", "a terms of service page",
    "a screenshot of source code", "a database schema", "a compiler error message",
    "a line of assembly code", "a mathematical proof", "the quadratic formula",
    "a table of logarithms", "a list of prime numbers", "an abstract concept",
    "the meaning of justice", "a feeling of nostalgia", "the theory of relativity",
    "a philosophy essay", "the history of taxation", "a grammar rule", "a dictionary entry",
    "an insurance policy", "a password reset email", "a calendar invitation",
    "a shipping label barcode", "a crossword clue", "a sudoku solution", "a phone number",
    "an IP address", "a cryptographic hash", "a URL", "a JSON document", "a CSV header",
    "the word nevertheless", "the number seventeen", "a podcast transcript",
    "a weather forecast in text", "stock market jargon", "a legal disclaimer",
    "xqzv blorp", "qwerty uiop", "zzkt vrmph glonk", "asdf jkl", "plmokn ijbuhv",
    "wxq zrt vlk", "frumious bandersnatch", "lorem ipsum dolor sit amet", "gzorp flimb",
    "kvetch ploo snerk", "bzzt mrrp", "ytrewq hgfd", "nnnn oooo pppp", "jibber jabber",
    "vorpal quux", "floop dreeb", "skree vonk", "tupperware of syntax", "oblong grievance",
    "a bureaucratic procedure", "an empty string of words", "miscellaneous paperwork",
)  # fmt: skip


@dataclass(frozen=True)
class QueryStats:
    """Where a query's scores sit on this library, and the cut-off that applies to it."""

    centre: float  # median score over the library sample
    cutoff: float  # margin (score - centre) of a just-good-enough match
    width: float  # margin units per step of the sigmoid
    unrelated: np.ndarray | None = None  # (M,) which null captions are unrelated to the query


@dataclass(frozen=True)
class Null:
    """A null distribution of margins, reduced to its cut-off and spread."""

    cutoff: float
    width: float

    @classmethod
    def of(cls, margins: np.ndarray, quantile: float, wide: float) -> Null:
        """Cut-off at ``quantile``; width from the spread between ``wide`` and it."""
        if margins.size == 0:
            return cls(0.0, 1.0)
        cutoff = float(np.quantile(margins, quantile))
        width = cutoff - float(np.quantile(margins, wide))
        return cls(cutoff, max(width, MIN_WIDTH))


@dataclass
class Calibration:
    """The null distributions of one library and model, and the maths that uses them."""

    model_id: str
    n_vectors: int
    sample: np.ndarray  # (S, D) library vectors: each query's centre
    text_null: np.ndarray  # (M,) margin of each unrelated caption's best match, sorted
    image_null: np.ndarray  # (P,) margin of each picture of nothing's best match, sorted
    null_vectors: np.ndarray  # (M, D) the unrelated captions' embeddings

    @property
    def text(self) -> Null:
        return Null.of(self.text_null, TEXT_QUANTILE, SPREAD_QUANTILE)

    @property
    def image(self) -> Null:
        return Null.of(self.image_null, IMAGE_QUANTILE, SPREAD_QUANTILE)

    def stats(self, query: np.ndarray, image_share: float = 0.0) -> QueryStats:
        """The query's centre over the sample and its cut-off (``image_share``: the part of
        the query's weight that came from an image, 0 for pure text, 1 for pure image)."""
        centre = (
            float(np.median(self.sample @ np.asarray(query, np.float32)))
            if len(self.sample)
            else 0.0
        )
        text, image = self.text, self.image
        share = min(max(image_share, 0.0), 1.0)
        cutoff = (1 - share) * text.cutoff + share * image.cutoff
        width = (1 - share) * text.width + share * image.width
        return QueryStats(centre, cutoff, width, unrelated_to(query[None], self.null_vectors)[0])

    def calibrate(
        self, scores: np.ndarray, stats: QueryStats, vectors: np.ndarray | None = None
    ) -> np.ndarray:
        """Raw cosine scores → calibrated scores in (0, 1); 0.5 is the relevance cut-off.

        ``vectors`` (the results' image vectors, text queries only) adds the image-side check.
        """
        scores = np.asarray(scores, np.float64)
        calibrated = _sigmoid((scores - stats.centre - stats.cutoff) / stats.width)
        if vectors is not None and len(vectors) and len(self.null_vectors):
            null = np.asarray(vectors, np.float32) @ self.null_vectors.T  # (k, M)
            if stats.unrelated is not None and stats.unrelated.any():
                null = null[:, stats.unrelated]
            unrelated = null.max(axis=1)
            width = self.text.width
            image_side = _sigmoid((scores - unrelated - IMAGE_SIDE_MARGIN * width) / width)
            calibrated = np.minimum(calibrated, image_side)
        return calibrated

    def is_stale(self, model_id: str, n_vectors: int) -> bool:
        if model_id != self.model_id:
            return True
        return abs(n_vectors - self.n_vectors) > STALE_FRACTION * max(self.n_vectors, 1)

    # --- persistence -------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        meta = {"version": CALIBRATION_VERSION, "model_id": self.model_id,
                "n_vectors": self.n_vectors}  # fmt: skip
        buffer = io.BytesIO()
        np.savez(buffer, sample=self.sample, text_null=self.text_null, image_null=self.image_null,
                 null_vectors=self.null_vectors,
                 meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))  # fmt: skip
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> Calibration | None:
        """The stored calibration, or None when absent, unreadable or of another version."""
        try:
            with np.load(path) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                if meta.get("version") != CALIBRATION_VERSION:
                    return None
                return cls(meta["model_id"], int(meta["n_vectors"]), data["sample"],
                           data["text_null"], data["image_null"], data["null_vectors"])  # fmt: skip
        except (OSError, ValueError, KeyError) as exc:
            if path.exists():
                log.warning("ignoring unreadable calibration %s: %s", path, exc)
            return None


def weak_results(
    calibrated: np.ndarray, ids: np.ndarray, threshold: float, answered: Collection[int] = ()
) -> np.ndarray:
    """Which results fall below the cut-off; ``answered`` ids (strong text matches) never do."""
    weak = np.asarray(calibrated) < threshold
    if len(answered):
        weak &= ~np.isin(ids, np.fromiter(answered, np.int64, len(answered)))
    return weak


def unrelated_to(texts: np.ndarray, null_vectors: np.ndarray) -> np.ndarray:
    """(T, M): which null captions are unrelated to each text — no closer to it than the two
    most similar null captions are to each other."""
    if len(null_vectors) < 2:
        return np.ones((len(texts), len(null_vectors)), dtype=bool)
    among = null_vectors @ null_vectors.T
    bar = among[~np.eye(len(among), dtype=bool)].max()
    return (np.asarray(texts, np.float32) @ null_vectors.T) <= bar


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def library_sample(index: VectorSearch, size: int = SAMPLE_SIZE, seed: int = 0) -> np.ndarray:
    """A fixed random sample of the library's vectors (all of them for a small library)."""
    ids = np.sort(np.asarray(index.ids(), np.int64))
    if len(ids) > size:
        ids = np.sort(np.random.default_rng(seed).choice(ids, size, replace=False))
    if len(ids) == 0:
        return np.zeros((0, 0), np.float32)
    return np.ascontiguousarray(index.reconstruct(ids), dtype=np.float32)


def text_null(null: np.ndarray, index: VectorSearch, sample: np.ndarray) -> np.ndarray:
    """Margin of each unrelated caption's best match over the whole library."""
    best, _ = index.search(null, 1)
    centres = np.median(sample @ null.T, axis=0)  # (M,)
    return np.sort(best[:, 0].astype(np.float64) - centres)


def null_images(size: int, seed: int = 0) -> list[Image.Image]:
    """Pictures of nothing: noise, blurred noise, stripes and checkerboards."""
    rng = np.random.default_rng(seed)
    ramp = np.arange(size)
    images = []
    for k in range(NULL_IMAGES // NULL_IMAGE_KINDS):
        noise = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        images.append(Image.fromarray(noise))
        blurred = Image.fromarray(noise).filter(ImageFilter.GaussianBlur(size / 16 * (k + 1)))
        images.append(blurred)
        period = max(2, size // (4 + 3 * k))
        stripes = ((ramp // period) % 2 * 255).astype(np.uint8)
        axis = stripes[None, :] if k % 2 else stripes[:, None]
        images.append(Image.fromarray(np.broadcast_to(axis, (size, size))).convert("RGB"))
        checks = ((ramp[:, None] // period) + (ramp[None, :] // period)) % 2 * 255
        images.append(Image.fromarray(checks.astype(np.uint8)).convert("RGB"))
    return images


def image_null(encoder: Encoder, index: VectorSearch, sample: np.ndarray) -> np.ndarray:
    """Margin of each picture-of-nothing's best match over the whole library."""
    null = encoder.encode_images(null_images(encoder.image_size))
    best, _ = index.search(null, 1)
    centres = np.median(sample @ null.T, axis=0)
    return np.sort(best[:, 0].astype(np.float64) - centres)


def compute_calibration(encoder: Encoder, index: VectorSearch) -> Calibration:
    """Measure both nulls on this library with this model."""
    sample = library_sample(index)
    null = encoder.encode_texts(list(NULL_CAPTIONS))
    if len(index) == 0:
        return Calibration(encoder.model_id, 0, sample, np.zeros(0), np.zeros(0), null)
    texts, images = text_null(null, index, sample), image_null(encoder, index, sample)
    calibration = Calibration(encoder.model_id, len(index), sample, texts, images, null)
    log.info("calibrated on %d vectors: text cut-off %.3f (width %.3f), image %.3f (%.3f)",
             len(index), calibration.text.cutoff, calibration.text.width,
             calibration.image.cutoff, calibration.image.width)  # fmt: skip
    return calibration


def load_or_compute(path: Path, encoder: Encoder, index: VectorSearch) -> Calibration:
    """The library's calibration: from ``path`` when current, else computed and saved there."""
    stored = Calibration.load(path)
    if stored is not None and not stored.is_stale(encoder.model_id, len(index)):
        return stored
    calibration = compute_calibration(encoder, index)
    try:
        calibration.save(path)
    except OSError as exc:  # a read-only library still searches, it just recomputes next time
        log.warning("cannot save calibration to %s: %s", path, exc)
    return calibration
