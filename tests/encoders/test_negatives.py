"""Hard negatives from the captions' own vocabulary: substitutes, swaps, replacements."""

from __future__ import annotations

import random

from encoders.training.captions import (
    colour_words,
    fix_articles,
    hard_negatives,
    learn_substitutes,
    strip_colours,
)

# A tiny corpus in a vocabulary no word list knows: "teal" and "lime" are colours only
# because they fill the slots "pink" and "red" fill; "arrow" / "ring" / "kite" are nouns.
CAPTIONS = [
    f"{a} {colour} {noun}{where}"
    for colour in ("red", "pink", "teal", "lime")
    for noun in ("arrow", "ring", "kite")
    for a, where in (("a", ""), ("one", " on the left"), ("one", " on the right"))
]


def test_substitutes_are_learned_from_shared_frames():
    subs = learn_substitutes(CAPTIONS)
    assert subs["teal"] == {"red", "pink", "lime"}
    assert subs["arrow"] == {"ring", "kite"}
    assert subs["left"] == {"right"}
    assert "a" not in subs.get("one", set())  # they share no two frames ("a" never has "on")
    assert learn_substitutes(["a red ring", "a blue ring"]) == {}  # one frame is not enough
    assert {"teal", "lime"} <= colour_words(subs) and "arrow" not in colour_words(subs)
    assert strip_colours("a teal arrow", colour_words(subs)) == "an arrow"


def test_swaps_rebind_attributes_and_nouns():
    subs = learn_substitutes(CAPTIONS)
    rng = random.Random(0)
    found = hard_negatives("a red ring left of a teal kite", subs, rng, count=3)
    assert set(found) == {
        "a teal ring left of a red kite",  # colours swapped
        "a red kite left of a teal ring",  # nouns swapped
        "a red ring right of a teal kite",  # the mirror
    }
    # the same objects in another order is not another scene: never such a swap
    for caption in ("a red ring and a red kite", "a red and teal ring"):
        for negative in hard_negatives(caption, subs, random.Random(1), count=6):
            assert sorted(negative.split()) != sorted(caption.split()), negative


def test_replacements_prefer_known_captions_and_fix_articles():
    subs = learn_substitutes(CAPTIONS)
    known = set(CAPTIONS)
    for seed in range(5):
        found = hard_negatives("a red arrow", subs, random.Random(seed), count=2, known=known)
        assert len(found) == 2 and all(text in known and text != "a red arrow" for text in found)
    assert hard_negatives("a photo of a dog", subs, random.Random(0)) == []
    assert fix_articles("a orange star and an red ring") == "an orange star and a red ring"
    spellings = learn_substitutes(["a gray kite", "a grey kite", "a gray ring", "a grey ring"])
    assert spellings == {} and hard_negatives("a gray kite", spellings, random.Random(0)) == []
