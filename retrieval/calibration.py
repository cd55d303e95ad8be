"""Relevance calibration: is this score a real match on *this* library, or confident noise?

Raw cosine scores mean little on their own: every text has its own offset to the image cloud
(the modality gap varies by wording), and the best of N random scores rises with N. So each
query's scores are compared with two things:

1. the query's own score distribution over a fixed sample of the library's vectors (median and
   robust spread): a score becomes ``z = (score - median) / spread``;
2. the *null*: a fixed bank of unrelated captions (paperwork, abstractions, random letters),
   each scored the same way; the best ``z`` each of them reaches over the whole library is what
   "unrelated text" looks like here. A result is a good match when its ``z`` clears the
   ``NULL_QUANTILE`` of those bests — when it stands out more than unrelated text's best match.

``calibrated = sigmoid((z - z0) / width)`` (``z0`` that quantile, ``width`` the spread of the
bests): 0.5 at the cut-off, near 1 far above it. The null is computed once per library and
model and stored beside ``library.json`` (``calibration.npz``); it is recomputed when the model
changes or the library's size moves by more than ``STALE_FRACTION``.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from encoders.encoder import Encoder
from indexer.layout import atomic_write_bytes
from indexer.vectors import VectorSearch

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.npz"
CALIBRATION_VERSION = 1
SAMPLE_SIZE = 4096  # library vectors each query is scored against for its own distribution
NULL_QUANTILE = 0.95  # a good match beats the best match of 95% of the unrelated captions
STALE_FRACTION = 0.2  # recompute when the library grew or shrank by more than this
MIN_SPREAD = 1e-4
MIN_WIDTH = 0.25  # z units: keeps the sigmoid from becoming a step on tiny libraries
MAD_TO_SIGMA = 1.4826  # median absolute deviation → standard deviation of a normal

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
    """A query's own score distribution over the sample: where it sits and how wide it is."""

    centre: float
    spread: float


@dataclass
class Calibration:
    """The null distribution of one library and model, and the maths that uses it."""

    model_id: str
    n_vectors: int
    sample: np.ndarray  # (S, D) library vectors: each query's own distribution
    null_best_z: np.ndarray  # (M,) best z of each unrelated caption over the library
    quantile: float = NULL_QUANTILE

    @property
    def z0(self) -> float:
        """The cut-off in z units: the ``quantile`` of the unrelated captions' best matches."""
        if self.null_best_z.size == 0:
            return 3.0  # no null yet (empty library): a conventional 3-sigma bar
        return float(np.quantile(self.null_best_z, self.quantile))

    @property
    def width(self) -> float:
        if self.null_best_z.size < 2:
            return 1.0
        return max(float(np.std(self.null_best_z)), MIN_WIDTH)

    def stats(self, query: np.ndarray) -> QueryStats:
        """The query's (median, robust spread) over the library sample."""
        if self.sample.size == 0:
            return QueryStats(0.0, 1.0)
        return _robust_stats(self.sample @ np.asarray(query, np.float32))

    def z(self, scores: np.ndarray, stats: QueryStats) -> np.ndarray:
        return (np.asarray(scores, np.float64) - stats.centre) / stats.spread

    def calibrate(self, scores: np.ndarray, stats: QueryStats) -> np.ndarray:
        """Raw cosine scores → calibrated scores in (0, 1); 0.5 is the relevance cut-off."""
        z = self.z(scores, stats)
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-(z - self.z0) / self.width))

    def is_stale(self, model_id: str, n_vectors: int) -> bool:
        if model_id != self.model_id:
            return True
        base = max(self.n_vectors, 1)
        return abs(n_vectors - self.n_vectors) / base > STALE_FRACTION

    # --- persistence -------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        meta = {"version": CALIBRATION_VERSION, "model_id": self.model_id,
                "n_vectors": self.n_vectors, "quantile": self.quantile}  # fmt: skip
        buffer = io.BytesIO()
        np.savez(buffer, sample=self.sample, null_best_z=self.null_best_z,
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
                           data["null_best_z"], float(meta["quantile"]))  # fmt: skip
        except (OSError, ValueError, KeyError) as exc:
            if path.exists():
                log.warning("ignoring unreadable calibration %s: %s", path, exc)
            return None


def _robust_stats(scores: np.ndarray) -> QueryStats:
    centre = float(np.median(scores))
    spread = MAD_TO_SIGMA * float(np.median(np.abs(scores - centre)))
    if spread < MIN_SPREAD:  # (near-)constant scores: fall back to the standard deviation
        spread = float(np.std(scores))
    return QueryStats(centre, max(spread, MIN_SPREAD))


def library_sample(index: VectorSearch, size: int = SAMPLE_SIZE, seed: int = 0) -> np.ndarray:
    """A fixed random sample of the library's vectors (all of them for a small library)."""
    ids = np.sort(np.asarray(index.ids(), np.int64))
    if len(ids) > size:
        ids = np.sort(np.random.default_rng(seed).choice(ids, size, replace=False))
    if len(ids) == 0:
        return np.zeros((0, 0), np.float32)
    return np.ascontiguousarray(index.reconstruct(ids), dtype=np.float32)


def compute_calibration(
    encoder: Encoder,
    index: VectorSearch,
    captions: tuple[str, ...] = NULL_CAPTIONS,
    quantile: float = NULL_QUANTILE,
) -> Calibration:
    """Score the unrelated captions against this library: their best z over all vectors."""
    sample = library_sample(index)
    if len(index) == 0:
        return Calibration(encoder.model_id, 0, sample, np.zeros(0), quantile)
    null = encoder.encode_texts(list(captions))
    best, _ = index.search(null, 1)  # the best raw score of each caption over the library
    best_z = []
    for vector, top in zip(null, best[:, 0], strict=True):
        stats = _robust_stats(sample @ vector)
        best_z.append((float(top) - stats.centre) / stats.spread)
    log.info("calibrated %d null captions over %d vectors", len(captions), len(index))
    return Calibration(encoder.model_id, len(index), sample, np.sort(best_z), quantile)


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
