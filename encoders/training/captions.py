"""Every rewrite of a caption training makes, in one place: mirrors, hard negatives, grey pairs.

Training looks captions up by index in a ``CaptionTable`` instead of tokenising per step. For
each caption the table also holds

* its left/right **mirror** (``swap_left_right``): the caption of the flipped image;
* its **hard negatives**: captions of a *different* scene in the same words, found by parsing
  the data set's own captions. Two words are *substitutes* when they fill the same slot of at
  least ``MIN_SHARED`` caption frames ("a red circle" / "a blue circle" share "a _ circle", so
  red ~ blue; "on the left" / "on the right" make left ~ right), whatever the vocabulary. A
  negative then **swaps** two substitutes where that re-binds attributes to objects ("a red
  circle left of a blue square" → "a blue circle left of a red square"; "a red and blue ball"
  is left alone, its swap says the same thing), takes the **mirror** of such a caption, or
  **replaces** one word ("a red star" → "a green star" or "a red heart"), preferring
  replacements that are captions of the data set already (fewer new texts for a cached text
  tower to encode). As extra candidates in the loss they force the model to tell *which*
  colour goes with *which* object instead of matching a bag of words;
* its **colourless** variant ("a red circle on the left" → "a circle on the left"), which the
  trainer pairs with a greyscale copy of the image (``TrainOptions.grey_fraction``,
  ``grey_rows``): such a pair can only be matched by shape, size or position, so the colour
  shortcut a ViT from scratch learns in a few dozen steps is taken away from a fraction of
  every batch (measured in docs/training.md).

Known limits: synonyms that the captions use interchangeably ("square" / "box") look like
substitutes too, and so does a vaguer word in the same slot ("above" / "and"): a negative made
from them is still a true description. Words that never share a frame are never used.
"""

from __future__ import annotations

import functools
import random
import re
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations

import torch

from encoders.model.tokenizer import Tokenizer, trim_padding

MIN_SHARED = 2  # frames two words must share to count as substitutes
MAX_FILLERS = 64  # a frame with more fillers than this is too generic to say anything
SAME_WORD = {"gray": "grey", "colour": "color"}  # spellings of one word: never a negative
_WORD = re.compile(r"[A-Za-z]+|[^A-Za-z]+")
_ARTICLE = re.compile(r"\b([Aa]n?) ([A-Za-z])")

Substitutes = dict[str, frozenset[str]]


_LEFT_RIGHT = re.compile(r"\b(left|right)\b", re.IGNORECASE)


def swap_left_right(caption: str) -> str:
    """ "a red circle left of a blue square" -> "a red circle right of a blue square"."""

    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        other = "right" if word.lower() == "left" else "left"
        return other.capitalize() if word[0].isupper() else other

    return _LEFT_RIGHT.sub(swap, caption)


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


# Common colour words (English basic colour terms and a few frequent synonyms): the seed of
# colour detection. A data set's other colour words are found from its captions: a word that
# substitutes for two of these ("lime" in "a lime ring" / "a pink ring") is a colour too.
COLOUR_WORDS = frozenset(
    {"red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white",
     "grey", "gray", "violet", "cyan", "magenta", "beige", "turquoise", "gold", "silver", "navy"}
)  # fmt: skip


def colour_words(substitutes: Substitutes) -> frozenset[str]:
    """COLOUR_WORDS and every word that substitutes for at least two of them."""
    return COLOUR_WORDS | {
        w for w, others in substitutes.items() if len(others & COLOUR_WORDS) >= 2
    }


@functools.lru_cache(maxsize=8)
def _colour_pattern(colours: frozenset[str]) -> re.Pattern[str]:
    """One regex per colour set, built once (a table strips tens of thousands of captions)."""
    return re.compile(r"\b(?:" + "|".join(sorted(colours)) + r")\b\s*", re.IGNORECASE)


def strip_colours(caption: str, colours: Collection[str] = COLOUR_WORDS) -> str:
    """The caption without its colour words, articles fixed ("an orange star" → "a star")."""
    return fix_articles(_colour_pattern(frozenset(colours)).sub("", caption)).strip()


@dataclass
class CaptionTable:
    """Distinct captions (with their left/right mirrors) and tokens; hard negatives per caption.

    ``negatives[i]`` lists indices into ``texts`` (−1 where a caption has fewer);
    ``colourless[i]`` is the index of caption i without its colour words (−1: names none).
    """

    texts: list[str]
    tokens: torch.Tensor  # (U, L) int64, trimmed to the longest caption
    negatives: torch.Tensor  # (U, K) int64, −1 = none
    pad_id: int = 0
    colourless: torch.Tensor | None = None  # (U,) int64, −1 = no colour word to remove

    def __post_init__(self) -> None:
        self.lookup = {t: i for i, t in enumerate(self.texts)}

    def index_of(self, captions: Sequence[str]) -> torch.Tensor:
        """Indices of captions that are in the table (all training captions and mirrors)."""
        return torch.tensor([self.lookup[c] for c in captions], dtype=torch.long)

    def pick_negatives(
        self, index: torch.Tensor, per_caption: int, generator: torch.Generator
    ) -> torch.Tensor:
        """Hard-negative text indices for captions ``index`` (−1: none): with ``per_caption``
        1, one drawn from each caption's own; with N > 1, each caption's first N, N
        consecutive rows per caption."""
        rows = self.negatives[index]  # (B, K), −1 = none
        if per_caption > 1:
            return rows[:, :per_caption].reshape(-1)
        valid_per_row = (rows >= 0).sum(dim=1)
        pick = (torch.rand(len(rows), generator=generator) * valid_per_row.clamp(min=1)).long()
        return rows.gather(1, pick[:, None]).squeeze(1)


def build_caption_table(
    captions: Sequence[str],
    tokenizer: Tokenizer,
    negatives_per_caption: int = 2,
    seed: int = 0,
    colourless: bool = False,
) -> CaptionTable:
    """Tokenise each distinct caption (its mirror, negatives, colourless variant) once.

    Colourless variants only when asked for: each is one more text for a cached tower to encode.
    """
    texts: list[str] = []
    lookup: dict[str, int] = {}

    def add(text: str) -> int:
        if text not in lookup:
            lookup[text] = len(texts)
            texts.append(text)
        return lookup[text]

    originals = [add(c) for c in dict.fromkeys(captions)]
    mirrors = {i: add(swap_left_right(texts[i])) for i in list(originals)}
    sources = sorted(set(originals) | set(mirrors.values()))
    wanted = negatives_per_caption > 0 or colourless
    substitutes = learn_substitutes(texts[i] for i in originals) if wanted else {}
    rng = random.Random(seed)
    known = set(texts)
    count = negatives_per_caption
    negative_rows = {
        i: [add(n) for n in hard_negatives(texts[i], substitutes, rng, count, known)]
        for i in (sources if count > 0 else [])
    }
    colours = colour_words(substitutes)
    stripped = {i: strip_colours(texts[i], colours) for i in sources} if colourless else {}
    colourless_of = {i: add(text) for i, text in stripped.items() if text and text != texts[i]}
    negatives = torch.full((len(texts), max(negatives_per_caption, 1)), -1, dtype=torch.long)
    for i, row in negative_rows.items():
        negatives[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    colourless_index = torch.full((len(texts),), -1, dtype=torch.long)
    for i, j in colourless_of.items():
        colourless_index[i] = j
    tokens = trim_padding(tokenizer(texts), tokenizer.pad_id)
    return CaptionTable(texts, tokens, negatives, tokenizer.pad_id, colourless_index)


def grey_rows(
    table: CaptionTable, caption_index: torch.Tensor, fraction: float, generator: torch.Generator
) -> torch.Tensor:
    """Which pairs become greyscale + colourless: a ``fraction`` of those naming a colour."""
    draw = torch.rand(len(caption_index), generator=generator) < fraction
    if table.colourless is None:
        return torch.zeros_like(draw)
    return draw & (table.colourless[caption_index] >= 0)


def colourless(
    table: CaptionTable, caption_index: torch.Tensor, grey: torch.Tensor
) -> torch.Tensor:
    """Greyscale rows take their caption's colourless variant (mirrors have one too)."""
    if not grey.any():
        return caption_index
    assert table.colourless is not None
    return torch.where(grey, table.colourless[caption_index], caption_index)
