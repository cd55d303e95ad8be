"""Zero-shot diagnostics against hand counts: confused pairs, per-word accuracy, error split."""

from __future__ import annotations

import numpy as np
import pytest

from encoders.errors import VitrieveError
from retrieval.evaluation.diagnostics import (
    attribute_accuracy,
    confused_pairs,
    diagnose,
    error_label,
    slot_names,
    word_slots,
)

CLASSES = ["red circle", "red square", "blue circle", "blue square"]
# image:        0  1  2  3  4  5  6  7  8  9
TARGETS = np.array([0, 0, 0, 0, 1, 1, 2, 2, 3, 3])
PREDICTIONS = np.array([0, 1, 1, 3, 1, 0, 2, 0, 3, 3])
# wrong: 1, 2 (red circle → red square: shape wrong), 3 (→ blue square: both wrong),
# 5 (red square → red circle: shape wrong), 7 (blue circle → red circle: colour wrong)


def test_confused_pairs_by_hand():
    pairs = confused_pairs(PREDICTIONS, TARGETS, CLASSES, top=10)
    assert pairs[0] == {"true": "red circle", "predicted": "red square", "count": 2, "share": 0.5}
    # the count-1 ties: higher share of the true class first (1/2 before 1/4), then class order
    assert [(p["true"], p["predicted"], p["share"]) for p in pairs[1:]] == [
        ("red square", "red circle", 0.5),
        ("blue circle", "red circle", 0.5),
        ("red circle", "blue square", 0.25),
    ]
    assert len(confused_pairs(PREDICTIONS, TARGETS, CLASSES, top=2)) == 2
    assert confused_pairs(PREDICTIONS, TARGETS, CLASSES, top=0) == []
    assert confused_pairs(TARGETS, TARGETS, CLASSES, top=5) == []  # nothing wrong


def test_bad_input_is_a_clear_error():
    with pytest.raises(VitrieveError, match="≥ 0"):
        confused_pairs(PREDICTIONS, TARGETS, CLASSES, top=-1)
    with pytest.raises(VitrieveError, match="equal-length"):
        confused_pairs(PREDICTIONS[:3], TARGETS, CLASSES, top=1)
    with pytest.raises(VitrieveError, match="out of range"):
        confused_pairs(PREDICTIONS, TARGETS, CLASSES[:3], top=1)


def test_word_slots_need_equal_word_counts_of_two_or_more():
    slots, reason = word_slots(CLASSES)
    assert reason is None and slots.shape == (4, 2) and slots[3, 1] == "square"
    assert word_slots(["zero", "one", "two"]) == (None, "class names are single words")
    slots, reason = word_slots(["red circle", "dog", "big blue square"])
    assert slots is None and "from 1 to 3 words" in reason
    # whitespace between words is not a word
    assert word_slots([" red  circle", "blue\tsquare"])[0].tolist() == [
        ["red", "circle"],
        ["blue", "square"],
    ]


def test_slot_names_show_the_first_distinct_words():
    many = [f"{c} {s}" for c in ("red", "green", "blue", "teal") for s in ("circle", "star")]
    assert slot_names(word_slots(many)[0]) == [
        "word 1 (red, green, blue, …)",
        "word 2 (circle, star)",
    ]


def test_attribute_accuracy_by_hand():
    slots = word_slots(CLASSES)[0]
    metrics = attribute_accuracy(PREDICTIONS, TARGETS, slots)
    # colour wrong on images 3, 7 -> 8/10 right; shape wrong on 1, 2, 3, 5 -> 6/10 right
    assert metrics["n"] == 10 and metrics["wrong"] == 5
    assert metrics["right"] == pytest.approx([0.8, 0.6])
    assert metrics["errors"] == [
        {"wrong_words": [2], "count": 3, "share": pytest.approx(0.6)},
        {"wrong_words": [1], "count": 1, "share": pytest.approx(0.2)},
        {"wrong_words": [1, 2], "count": 1, "share": pytest.approx(0.2)},
    ]
    assert attribute_accuracy(PREDICTIONS[:0], TARGETS[:0], slots) == {"n": 0}
    perfect = attribute_accuracy(TARGETS, TARGETS, slots)
    assert perfect["right"] == [1.0, 1.0] and perfect["wrong"] == 0 and perfect["errors"] == []


def test_error_labels():
    assert error_label([2], 2) == "word 2 wrong"
    assert error_label([1, 2], 2) == "both wrong"
    assert error_label([1, 3], 3) == "words 1+3 wrong"
    assert error_label([1, 2, 3], 3) == "all wrong"


def test_diagnose_splits_seen_and_held_out():
    held_out = np.array([False] * 6 + [True] * 4)  # the blue classes are held out
    result = diagnose(PREDICTIONS, TARGETS, CLASSES, held_out, confusion=1)
    attributes = result["attributes"]
    assert attributes["words"] == ["word 1 (red, blue)", "word 2 (circle, square)"]
    assert attributes["all"]["n"] == 10
    assert attributes["seen"]["right"] == pytest.approx([5 / 6, 2 / 6])
    assert attributes["held_out"]["right"] == pytest.approx([3 / 4, 1.0])
    assert attributes["held_out"]["errors"] == [{"wrong_words": [1], "count": 1, "share": 1.0}]
    assert [p["count"] for p in result["confusion"]] == [2]
    # no --confusion: no key; no held-out flags: no subsets; single words: None and why
    plain = diagnose(PREDICTIONS, TARGETS, CLASSES)
    assert "confusion" not in plain and set(plain["attributes"]) == {"words", "all"}
    digits = diagnose(PREDICTIONS, TARGETS, ["zero", "one", "two", "three"])
    assert digits["attributes"] is None and "single words" in digits["attributes_skipped"]
