"""Zero-shot classification and image–text retrieval metrics, CLIP_benchmark-style.

The metric functions are pure numpy (embeddings or logits in, numbers out), so they are
checked against hand computations; the runners feed them from any ``Encoder`` — ours or a
converted open_clip model — and captioned items from ``encoders.training.data``.

Zero-shot: class embeddings from ``encoders.runtime.zeroshot.build_zero_shot_classifier``
(CLIP's prompt ensembling, ``CAPTION_TEMPLATES`` unless told); top-1, top-5 and mean
per-class recall (balanced accuracy).
Retrieval: a hit is an item whose caption *equals* the query's — synthetic captions repeat,
so text→image counts any image with that exact caption as relevant.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from encoders.errors import VitrieveError
from encoders.runtime.encoder import Encoder
from encoders.runtime.zeroshot import CAPTION_TEMPLATES, build_zero_shot_classifier
from encoders.training.data import CaptionedItem, open_rgb
from retrieval.evaluation.diagnostics import diagnose

log = logging.getLogger(__name__)

RECALL_KS = (1, 5, 10)
CHUNK = 1024  # query rows scored at once: bounds memory to CHUNK × gallery floats


def topk_accuracy(logits: np.ndarray, targets: np.ndarray, k: int) -> float:
    """Fraction of rows whose target class is among the k highest logits (ties: lower index)."""
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float((top == targets[:, None]).any(axis=1).mean())


def mean_per_class_recall(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Mean over the classes present in ``targets`` of the fraction predicted correctly."""
    classes = np.unique(targets)
    recalls = [(predictions[targets == c] == c).mean() for c in classes]
    return float(np.mean(recalls))


def zeroshot_metrics(logits: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """top1, top5 and mean per-class recall for (N, C) logits and (N,) integer targets."""
    if len(targets) == 0:
        return {"n": 0}
    predictions = logits.argmax(axis=1)
    return {
        "n": int(len(targets)),
        "top1": topk_accuracy(logits, targets, 1),
        "top5": topk_accuracy(logits, targets, 5),
        "mean_per_class_recall": mean_per_class_recall(predictions, targets),
    }


def retrieval_metrics(
    image_embeddings: np.ndarray,
    text_embeddings: np.ndarray,
    caption_of_image: np.ndarray,
    ks: Sequence[int] = RECALL_KS,
) -> dict[str, float]:
    """Recall@k both ways; ``caption_of_image[i]`` indexes image i's caption in the texts.

    Texts are the *distinct* captions. text→image: a query hits when any of its top-k images
    has that caption. image→text: a query hits when its own caption is in its top-k texts.
    """
    max_k = max(ks)
    t2i_hits = {k: 0 for k in ks}
    for start in range(0, len(text_embeddings), CHUNK):
        scores = text_embeddings[start : start + CHUNK] @ image_embeddings.T  # (q, N)
        top = _top_indices(scores, max_k)
        relevant = caption_of_image[top] == np.arange(start, start + len(scores))[:, None]
        for k in ks:
            t2i_hits[k] += int(relevant[:, :k].any(axis=1).sum())
    i2t_hits = {k: 0 for k in ks}
    for start in range(0, len(image_embeddings), CHUNK):
        scores = image_embeddings[start : start + CHUNK] @ text_embeddings.T  # (q, T)
        own = scores[np.arange(len(scores)), caption_of_image[start : start + CHUNK]]
        rank = (scores > own[:, None]).sum(axis=1)  # 0 = the true caption scores highest
        for k in ks:
            i2t_hits[k] += int((rank < k).sum())
    metrics = {f"text_to_image_R@{k}": t2i_hits[k] / len(text_embeddings) for k in ks}
    metrics.update({f"image_to_text_R@{k}": i2t_hits[k] / len(image_embeddings) for k in ks})
    return metrics


def _top_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k highest scores, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def encode_items(encoder: Encoder, items: Sequence[CaptionedItem], batch: int = 256) -> np.ndarray:
    """Embed the items' images in order (N, D). An unreadable image is a ``VitrieveError``."""
    outputs = []
    for start in range(0, len(items), batch):
        tensors = []
        for item in items[start : start + batch]:
            try:
                tensors.append(encoder.preprocess(open_rgb(item.path)))
            except (OSError, ValueError) as exc:
                raise VitrieveError(f"cannot read image {item.path}: {exc}") from exc
        outputs.append(encoder.encode_image_tensors(torch.stack(tensors)))
    return np.concatenate(outputs) if outputs else np.zeros((0, encoder.embed_dim), np.float32)


def _held_out_flags(items: Sequence[CaptionedItem]) -> np.ndarray | None:
    """The ``held_out`` column as booleans, or None when the data has none."""
    if not items or "held_out" not in items[0].extra:
        return None
    return np.array([item.extra.get("held_out", "0").strip() in ("1", "true") for item in items])


def evaluate_zeroshot(
    encoder: Encoder,
    items: Sequence[CaptionedItem],
    classnames: Sequence[str],
    templates: Sequence[str] = CAPTION_TEMPLATES,
    confusion: int = 0,
) -> dict:
    """Zero-shot metrics on labelled items; with a ``held_out`` column, also per subset.

    Also what the errors are (``retrieval.evaluation.diagnostics.diagnose``): per-word accuracy
    when the
    class names are compositional, and the ``confusion`` most confused class pairs.
    """
    index = {name: i for i, name in enumerate(classnames)}
    labelled = [item for item in items if item.label]
    unknown = [item for item in labelled if item.label not in index]
    if unknown:
        log.warning("%d items have labels not in the class list (e.g. %r): skipped",
                    len(unknown), unknown[0].label)  # fmt: skip
    usable = [item for item in labelled if item.label in index]
    if not usable:
        raise VitrieveError("no items with a label from the class list to evaluate")
    targets = np.array([index[item.label] for item in usable])
    classes = build_zero_shot_classifier(encoder, classnames, templates)
    logits = encode_items(encoder, usable) @ classes.T
    result: dict = {
        **zeroshot_metrics(logits, targets),
        "classes": len(classnames),
        "templates": len(templates),
        "skipped_unlabelled": len(items) - len(labelled),
        "skipped_unknown_label": len(unknown),
    }
    flags = _held_out_flags(usable)
    if flags is not None:
        result["seen"] = zeroshot_metrics(logits[~flags], targets[~flags])
        result["held_out"] = zeroshot_metrics(logits[flags], targets[flags])
    result.update(diagnose(logits.argmax(axis=1), targets, classnames, flags, confusion))
    return result


def evaluate_retrieval(
    encoder: Encoder, items: Sequence[CaptionedItem], ks: Sequence[int] = RECALL_KS
) -> dict:
    """Text→image and image→text recall@k over the items (a hit = identical caption)."""
    if not items:
        raise VitrieveError("no captioned items to evaluate")
    captions = list(dict.fromkeys(item.caption for item in items))
    position = {caption: i for i, caption in enumerate(captions)}
    caption_of_image = np.array([position[item.caption] for item in items])
    metrics = retrieval_metrics(
        encode_items(encoder, items), encoder.encode_texts(captions), caption_of_image, ks
    )
    return {"images": len(items), "captions": len(captions), **metrics}
