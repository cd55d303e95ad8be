"""What a zero-shot classifier gets wrong: the most confused class pairs, and per-word accuracy.

Top-1 says how often a model is right, not *how* it is wrong. Pure functions answer that from
predicted and true class indices (numpy in, plain dicts out, so they go straight into
``--json`` and are checked against hand counts); ``diagnose`` gathers them for
``retrieval.evaluation.evaluate.evaluate_zeroshot``:

- ``confused_pairs``: the (true → predicted) pairs that occur most, with their share of the
  true class's images — a model that mixes up two particular classes shows here.
- ``attribute_accuracy``: class names are often compositional ("red circle", "teal arrow").
  When every name has the same number of words (two or more), each word position is an
  attribute; for each position, the share of images whose predicted class has the right word
  there, and which positions the wrong predictions got wrong ("shape wrong, colour right").
  No word lists: positions are named by number, with a few of the words they hold.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from encoders.errors import VitrieveError

EXAMPLE_WORDS = 3  # words shown in a position's name: "word 1 (red, orange, yellow, …)"


def _check(predictions: np.ndarray, targets: np.ndarray, classes: int) -> None:
    """Equal-length integer class indices within the class list, else a ``VitrieveError``."""
    if predictions.shape != targets.shape or predictions.ndim != 1:
        raise VitrieveError(
            f"predictions and targets must be two equal-length lists of class indices "
            f"(got shapes {predictions.shape} and {targets.shape})"
        )
    both = np.concatenate([predictions, targets])
    if both.size and (both.min() < 0 or both.max() >= classes):
        raise VitrieveError(f"class index out of range: the class list has {classes} classes")


def confused_pairs(
    predictions: np.ndarray, targets: np.ndarray, classnames: Sequence[str], top: int
) -> list[dict]:
    """The ``top`` most frequent wrong (true, predicted) pairs, most frequent first.

    Each pair: ``true`` and ``predicted`` class names, ``count`` of images, and ``share`` of
    the true class's images that went to that prediction. Ties: higher share, then class order.
    """
    if top < 0:
        raise VitrieveError(f"the number of confused pairs to show must be ≥ 0, not {top}")
    _check(predictions, targets, len(classnames))
    per_class = np.bincount(targets, minlength=len(classnames))
    wrong = predictions != targets
    counts = Counter(zip(targets[wrong].tolist(), predictions[wrong].tolist(), strict=True))
    pairs = [(n, n / per_class[t], t, p) for (t, p), n in counts.items()]
    pairs.sort(key=lambda pair: (-pair[0], -pair[1], pair[2], pair[3]))
    return [
        {"true": classnames[t], "predicted": classnames[p], "count": n, "share": float(share)}
        for n, share, t, p in pairs[:top]
    ]


def word_slots(classnames: Sequence[str]) -> tuple[np.ndarray | None, str | None]:
    """(C, S) array of the class names' words and None; or None and why there are no slots.

    Slots need every name to have the same number S ≥ 2 of whitespace-separated words.
    """
    words = [name.split() for name in classnames]
    lengths = sorted({len(w) for w in words})
    if len(lengths) > 1:
        return None, f"class names have from {lengths[0]} to {lengths[-1]} words"
    if not lengths or lengths[0] < 2:
        return None, "class names are single words"
    return np.array(words, dtype=object), None


def slot_names(slots: np.ndarray) -> list[str]:
    """Each position's name: "word 1 (red, orange, yellow, …)" — its first distinct words."""
    names = []
    for i in range(slots.shape[1]):
        distinct = list(dict.fromkeys(slots[:, i].tolist()))
        more = ", …" if len(distinct) > EXAMPLE_WORDS else ""
        names.append(f"word {i + 1} ({', '.join(distinct[:EXAMPLE_WORDS])}{more})")
    return names


def error_label(wrong_words: Sequence[int], n_slots: int) -> str:
    """A wrong-word pattern (1-based positions) in words: "word 2 wrong", "both wrong"."""
    if not wrong_words:
        return "no word wrong"  # two classes with the same words
    if len(wrong_words) == n_slots:
        return "both wrong" if n_slots == 2 else "all wrong"
    plural = "words" if len(wrong_words) > 1 else "word"
    return f"{plural} {'+'.join(map(str, wrong_words))} wrong"


def attribute_accuracy(predictions: np.ndarray, targets: np.ndarray, slots: np.ndarray) -> dict:
    """Per word position, the share of images whose prediction has the right word there.

    ``right``: one share per position. ``errors``: the wrong predictions grouped by which
    positions they got wrong (1-based ``wrong_words``), with ``count`` and ``share`` of all
    wrong predictions, most frequent first. No images: ``{"n": 0}``.
    """
    _check(predictions, targets, len(slots))
    if len(targets) == 0:
        return {"n": 0}
    right = slots[predictions] == slots[targets]  # (N, S)
    wrong_rows = right[predictions != targets]
    patterns = Counter(tuple(np.flatnonzero(~row) + 1) for row in wrong_rows)
    errors = [
        {"wrong_words": [int(i) for i in words], "count": n, "share": n / len(wrong_rows)}
        for words, n in sorted(patterns.items(), key=lambda item: (-item[1], item[0]))
    ]
    return {
        "n": int(len(targets)),
        "right": [float(share) for share in right.mean(axis=0)],
        "wrong": int(len(wrong_rows)),
        "errors": errors,
    }


def diagnose(
    predictions: np.ndarray,
    targets: np.ndarray,
    classnames: Sequence[str],
    held_out: np.ndarray | None = None,
    confusion: int = 0,
) -> dict:
    """The diagnostics ``evaluate_zeroshot`` adds to its result.

    ``attributes``: ``words`` (the positions' names) and ``attribute_accuracy`` over ``all``
    images — and ``seen``/``held_out`` when ``held_out`` flags are given — or None, with the
    reason in ``attributes_skipped``. ``confusion``: the ``confusion`` most confused pairs,
    present only when ``confusion`` > 0.
    """
    result: dict = {}
    slots, reason = word_slots(classnames)
    if slots is None:
        result.update(attributes=None, attributes_skipped=reason)
    else:
        attributes = {"words": slot_names(slots)}
        attributes["all"] = attribute_accuracy(predictions, targets, slots)
        if held_out is not None:
            for subset, rows in (("seen", ~held_out), ("held_out", held_out)):
                attributes[subset] = attribute_accuracy(predictions[rows], targets[rows], slots)
        result["attributes"] = attributes
    if confusion:
        result["confusion"] = confused_pairs(predictions, targets, classnames, confusion)
    return result
