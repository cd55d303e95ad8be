"""Hard negatives found by parsing the training captions, not by a fixed list of words.

Two words are *substitutes* when they fill the same slot of at least ``MIN_SHARED`` caption
frames: "a red circle" and "a blue circle" share the frame "a _ circle", so red ~ blue; "a red
circle" and "a red star" make circle ~ star; "on the left" / "on the right" make left ~ right.
Whatever the vocabulary (colours, shapes, sizes, animals, materials), its interchangeable words
are found from the data set's own sentences.

A hard negative is then the caption of a *different* scene in the same words:

* two substitutes of one caption **swapped** — "a red circle left of a blue square" →
  "a blue circle left of a red square" (colours) or "a red square left of a blue circle"
  (nouns) — when that re-binds attributes to objects (so "a red and blue ball" and "a red
  heart and a red star" are left alone: swapping there would say the same thing);
* the left/right **mirror** of a caption with such a swap (two objects, placed);
* one word **replaced** by a substitute — "a red star" → "a green star" or "a red heart" —
  preferring replacements that are captions of the data set already (fewer new texts for a
  cached text tower to encode).

Known limits: synonyms that the captions use interchangeably ("square" / "box") look like
substitutes too, and so does a vaguer word in the same slot ("above" / "and"): a negative
made from them is still a true description. Words that never share a frame are never used.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from itertools import combinations

from encoders.training.data import swap_left_right

MIN_SHARED = 2  # frames two words must share to count as substitutes
MAX_FILLERS = 64  # a frame with more fillers than this is too generic to say anything
SAME_WORD = {"gray": "grey", "colour": "color"}  # spellings of one word: never a negative
_WORD = re.compile(r"[A-Za-z]+|[^A-Za-z]+")
_ARTICLE = re.compile(r"\b([Aa]n?) ([A-Za-z])")

Substitutes = dict[str, frozenset[str]]


def normal(word: str) -> str:
    """One spelling per word, lower case ("Gray" → "grey")."""
    return SAME_WORD.get(word.lower(), word.lower())


def fix_articles(text: str) -> str:
    """ "a"/"an" agreeing with the next word ("a orange star" → "an orange star")."""

    def article(match: re.Match[str]) -> str:
        word = "an" if match.group(2).lower() in "aeiou" else "a"
        return f"{word.capitalize() if match.group(1)[0] == 'A' else word} {match.group(2)}"

    return _ARTICLE.sub(article, text)


def learn_substitutes(captions: Iterable[str], min_shared: int = MIN_SHARED) -> Substitutes:
    """Each word → the words that fill the same slots of at least ``min_shared`` frames."""
    fillers: dict[tuple, set[str]] = defaultdict(set)
    for caption in set(captions):
        words = [normal(t) for t in _WORD.findall(caption)]
        for i, word in enumerate(words):
            if word[0].isalpha():
                fillers[(tuple(words[:i]), tuple(words[i + 1 :]))].add(word)
    shared: Counter[tuple[str, str]] = Counter()
    for group in fillers.values():
        if 2 <= len(group) <= MAX_FILLERS:
            shared.update(combinations(sorted(group), 2))
    found: dict[str, set[str]] = defaultdict(set)
    for (a, b), n in shared.items():
        if n >= min_shared:
            found[a].add(b)
            found[b].add(a)
    return {word: frozenset(others) for word, others in found.items()}


def _swaps(tokens: list[str], words: list[str], substitutes: Substitutes) -> list[str]:
    """Captions with two different substitutes swapped where that re-binds them to objects.

    Swapping i and j changes the scene only when another pair of different substitutes
    (k, l), of another kind, straddles it (one inside i..j, one outside): "a red circle left
    of a blue square" (circle / square straddle red / blue). "a red heart and a red star" has
    no such pair: its swap would describe the same two objects in another order.
    """
    slots = [i for i, w in enumerate(words) if w in substitutes]
    pairs = [(i, j) for i, j in combinations(slots, 2)
             if words[i] != words[j] and words[j] in substitutes[words[i]]]  # fmt: skip
    out = []
    for i, j in pairs:
        kind = substitutes[words[i]] | {words[i]}
        if any((i < k < j) != (i < m < j) for k, m in pairs if words[k] not in kind):
            swapped = list(tokens)
            swapped[i], swapped[j] = tokens[j], tokens[i]
            out.append("".join(swapped))
    return out


def hard_negatives(
    caption: str,
    substitutes: Substitutes,
    rng: random.Random,
    count: int = 2,
    known: Collection[str] = (),
) -> list[str]:
    """Up to ``count`` captions of a different scene in the same words (module docstring)."""
    tokens = _WORD.findall(caption)
    words = [normal(t) for t in tokens]
    swaps = _swaps(tokens, words, substitutes)
    rng.shuffle(swaps)
    found = swaps[:count]
    mirrored = swap_left_right(caption)
    if swaps and mirrored != caption and len(found) < count:
        found.append(mirrored)
    if len(found) < count:
        replaced = []
        for i, word in enumerate(words):
            for other in sorted(substitutes.get(word, ())):
                text = fix_articles("".join(tokens[:i] + [other] + tokens[i + 1 :]))
                if text != caption:
                    replaced.append(text)
        rng.shuffle(replaced)
        replaced.sort(key=lambda text: text not in known)  # stable: known ones first
        found.extend(t for t in replaced if t not in found)
    return found[:count]
