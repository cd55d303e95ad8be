"""Zero-shot classification: label images with any words, no training, and say "none of these".

Each label becomes one embedding: the mean of its normalised embeddings under a set of prompt
templates ("a photo of a {}.", "a drawing of a {}.", …), normalised again — CLIP's prompt
ensembling (``encoders.runtime.zeroshot``: the one builder and ``DEFAULT_TEMPLATES``, which
this module re-exports for the CLI, the UI and the API). Probabilities are a softmax of
cosine × the model's learned temperature.

Abstaining: a softmax always sums to 1, so it cannot say "none". An image abstains when its
best probability is under ``abstain_threshold``, or when its best label is no closer to it than
unrelated text is: its z-score against the image's similarities to the neutral caption bank
(``retrieval.search.calibration.NULL_CAPTIONS``) is under ``null_z``, or some caption of the bank
unrelated to the label matches the image better than the label does.

``label_library`` labels a whole library from its stored vectors (no image is decoded again)
and writes exactly one row per (image, label set): the best label, or ``ABSTAIN``. The
similarities are chunked matrix products on the encoder's device (``retrieval.search.scoring``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from encoders.errors import VitrieveError
from encoders.runtime.encoder import Encoder
from encoders.runtime.zeroshot import DEFAULT_TEMPLATES, build_zero_shot_classifier
from indexer.decode.images import decode_image
from indexer.store.metadata import MetadataStore
from indexer.vectors.index import VectorSearch
from retrieval.search.calibration import NULL_CAPTIONS, unrelated_to
from retrieval.search.scoring import on_device, similarity_matrix

log = logging.getLogger(__name__)

ABSTAIN = "(none)"
DEFAULT_SET = "labels"
DEFAULT_NULL_Z = 2.2  # best label vs unrelated text, in std devs (tuned on the synthetic set)
DEFAULT_PROBABILITY_THRESHOLD = 0.0  # abstain under this best-label probability (0: never)
BATCH = 4096

Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class Classification:
    """One image's verdict: probabilities over the labels and the chosen one (or none)."""

    label: str | None  # None when the classifier abstained
    score: float  # probability of the best label
    probabilities: dict[str, float]
    null_z: float  # how far the best label's similarity stands above unrelated text

    @property
    def abstained(self) -> bool:
        return self.label is None

    def to_dict(self) -> dict:
        return {"label": self.label, "score": self.score, "abstained": self.abstained,
                "null_z": self.null_z, "probabilities": self.probabilities}  # fmt: skip


def parse_labels(text: str) -> list[str]:
    """``"cat, dog,car"`` or one label per line → distinct, non-empty labels in order."""
    parts = [p.strip() for chunk in text.splitlines() for p in chunk.split(",")]
    labels = list(dict.fromkeys(p for p in parts if p))
    if not labels:
        raise VitrieveError("no labels given")
    return labels


class ZeroShotClassifier:
    """Probabilities over ``labels`` for image vectors, with prompt ensembling and abstaining."""

    def __init__(
        self,
        encoder: Encoder,
        labels: Sequence[str],
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        abstain_threshold: float = DEFAULT_PROBABILITY_THRESHOLD,
        null_z: float | None = DEFAULT_NULL_Z,
    ) -> None:
        labels = [str(label).strip() for label in labels if str(label).strip()]
        if not labels:
            raise VitrieveError("no labels given")
        if len(set(labels)) != len(labels):
            raise VitrieveError("labels must be distinct")
        templates = list(templates) or ["{}"]
        self.encoder, self.labels, self.templates = encoder, labels, templates
        self.abstain_threshold, self.null_z = abstain_threshold, null_z
        self.label_vectors = build_zero_shot_classifier(encoder, labels, templates)  # (L, D)
        self.null_vectors = encoder.encode_texts(list(NULL_CAPTIONS))  # (M, D)
        self.unrelated = unrelated_to(self.label_vectors, self.null_vectors)  # (L, M)
        self.scale = _logit_scale(encoder)
        # label vectors, then the caption bank's, once on the encoder's device
        targets = np.concatenate([self.label_vectors, self.null_vectors])
        self._targets = on_device(targets, encoder.device)

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """(N, D) image vectors → (N, L) probabilities (rows sum to 1)."""
        return self._softmax(self._similarities(vectors)[:, : len(self.labels)])

    def _similarities(self, vectors: np.ndarray) -> np.ndarray:
        """(N, L + M) cosines to the labels, then to the caption bank."""
        return similarity_matrix(np.asarray(vectors, np.float32), self._targets)

    def _softmax(self, similarity: np.ndarray) -> np.ndarray:
        logits = self.scale * similarity
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def classify_vectors(self, vectors: np.ndarray) -> list[Classification]:
        """A verdict per image vector."""
        scores = self._similarities(vectors)
        labels, null = scores[:, : len(self.labels)], scores[:, len(self.labels) :]  # (N, M)
        probs = self._softmax(labels)
        best = probs.argmax(axis=1)
        similarity = labels[np.arange(len(best)), best]
        z = (similarity - null.mean(axis=1)) / np.maximum(null.std(axis=1), 1e-6)
        kept = np.where(self.unrelated[best], null, -np.inf).max(axis=1)  # best unrelated caption
        out = []
        for row, index, score_z, beats in zip(probs, best, z, similarity > kept, strict=True):
            confident = row[index] >= self.abstain_threshold
            related = self.null_z is None or (score_z >= self.null_z and beats)
            label = self.labels[index] if confident and related else None
            out.append(Classification(label, float(row[index]),
                                      dict(zip(self.labels, row.tolist(), strict=True)),
                                      float(score_z)))  # fmt: skip
        return out

    def classify_images(self, images: Sequence[Image.Image | Path | str]) -> list[Classification]:
        """Decoded images or image files (decoded with the indexer's safe decoder)."""
        decoded = [_as_image(im, self.encoder.image_size) for im in images]
        return self.classify_vectors(self.encoder.encode_images(decoded))


def _as_image(image: Image.Image | Path | str, size: int) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    path = Path(image).expanduser()
    if not path.is_file():
        raise VitrieveError(f"image not found: {path}")
    return decode_image(path, target_size=size).image


def _logit_scale(encoder: Encoder) -> float:
    """The model's learned temperature (CLIP clamps it at 100)."""
    scale = getattr(encoder.model, "temperature_scale", None)
    return float(scale().float().item()) if callable(scale) else 100.0


@dataclass
class LabelReport:
    """What ``label_library`` wrote."""

    label_set: str
    images: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # label (or ABSTAIN) → images

    @property
    def abstained(self) -> int:
        return self.counts.get(ABSTAIN, 0)


def label_library(
    index: VectorSearch,
    store: MetadataStore,
    classifier: ZeroShotClassifier,
    label_set: str = DEFAULT_SET,
    batch_size: int = BATCH,
    progress: Progress | None = None,
) -> LabelReport:
    """Label every indexed image from its stored vector; one row per (image, label set).

    The set is rewritten: images labelled before but no longer indexed lose their row."""
    label_set = label_set.strip()
    if not label_set:
        raise VitrieveError("a label set needs a name")
    ids = np.sort(np.asarray(index.ids(), np.int64))
    _clear(store, label_set)
    report, counts = LabelReport(label_set), Counter()
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        verdicts = classifier.classify_vectors(index.reconstruct(chunk))
        rows = [(int(i), v.label or ABSTAIN, v.score) for i, v in zip(chunk, verdicts, strict=True)]
        store.write_labels(label_set, rows, replace=False)
        counts.update(label for _, label, _ in rows)
        report.images += len(rows)
        if progress is not None:
            progress(report.images, len(ids))
    report.counts = dict(counts.most_common())
    log.info("labelled %d images into set %r", report.images, label_set)
    return report


def _clear(store: MetadataStore, label_set: str) -> None:
    """Drop a label set's rows (through the store's own tables and session)."""
    from sqlalchemy import delete

    from indexer.store.schema import LabelRow

    with store.session() as session, session.begin():
        session.execute(delete(LabelRow).where(LabelRow.label_set == label_set))
