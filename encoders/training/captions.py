"""Caption-side preparation: every distinct caption tokenised once, mirrors and hard negatives.

Training looks captions up by index instead of tokenising per step. The table also holds
each caption's left/right mirror (the caption of a flipped image) and hard negatives:
the same words with attributes swapped — "a red circle left of a blue square" →
"a blue circle left of a red square" or "... right of ..." — or a colour replaced —
"a red star" → "a green star". As extra candidates in the loss they force the model to tell
*which* colour goes with *which* object instead of matching a bag of words; this is what a
plain CLIP lacks on compositions it never saw.

Each caption that names a colour also gets a *colourless* variant ("a red circle on the left"
→ "a circle on the left"): the trainer pairs it with a greyscale copy of the image
(``TrainOptions.grey_fraction``). Such a pair can only be matched by shape, size or position,
so the colour shortcut — which a ViT from scratch learns in a few dozen steps and then leans
on — is taken away from a fraction of every batch (measured in docs/training.md).
"""

from __future__ import annotations

import random
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch

from encoders.tokenizer import Tokenizer, trim_padding
from encoders.training.data import swap_left_right

# Common colour words (English basic colour terms and a few frequent synonyms). Generic on
# purpose: the trainer knows nothing of any data set, only that colours are attributes.
COLOUR_WORDS = frozenset(
    {"red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white",
     "grey", "gray", "violet", "cyan", "magenta", "beige", "turquoise", "gold", "silver", "navy"}
)  # fmt: skip
# Spellings of one colour: swapping one for the other would make a "negative" that is true.
SAME_COLOUR = {"gray": "grey"}
_WORD = re.compile(r"[A-Za-z]+|[^A-Za-z]+")
_ARTICLE = re.compile(r"\b([Aa]n?) ([A-Za-z])")


_COLOUR_WORD = re.compile(r"\b(?:" + "|".join(sorted(COLOUR_WORDS)) + r")\b\s*", re.IGNORECASE)


def strip_colours(caption: str) -> str:
    """The caption without its colour words, articles fixed ("an orange star" → "a star")."""

    def article(match: re.Match[str]) -> str:
        word = "an" if match.group(2).lower() in "aeiou" else "a"
        return f"{word.capitalize() if match.group(1)[0] == 'A' else word} {match.group(2)}"

    return _ARTICLE.sub(article, _COLOUR_WORD.sub("", caption)).strip()


def _colour(word: str) -> str:
    """One name per colour ("Gray" → "grey")."""
    return SAME_COLOUR.get(word.lower(), word.lower())


def hard_negatives(
    caption: str,
    colours: Sequence[str],
    rng: random.Random,
    count: int = 2,
    known: Collection[str] = (),
) -> list[str]:
    """Up to ``count`` captions that describe a *different* scene with the same words.

    Two different colours in a caption are swapped between their objects; a left/right
    relation is reversed; a lone colour is replaced by another colour of ``colours`` —
    preferring replacements that are ``known`` captions already, so that a cached text tower
    has fewer new texts to encode.
    """
    tokens = _WORD.findall(caption)
    colour_at = [i for i, t in enumerate(tokens) if t.lower() in COLOUR_WORDS]
    found: list[str] = []
    distinct = {_colour(tokens[i]) for i in colour_at}
    if len(distinct) >= 2:
        first = colour_at[0]
        second = next(i for i in colour_at if _colour(tokens[i]) != _colour(tokens[first]))
        swapped = list(tokens)
        swapped[first], swapped[second] = tokens[second], tokens[first]
        found.append("".join(swapped))
    mirrored = swap_left_right(caption)
    if mirrored != caption and len(distinct) >= 2:
        found.append(mirrored)  # "x left of y" ≠ "x right of y" when x and y differ
    if colour_at and len(found) < count:
        position = rng.choice(colour_at)
        others = [c for c in colours if _colour(c) not in distinct]
        rng.shuffle(others)
        replaced = ["".join(tokens[:position] + [c] + tokens[position + 1 :]) for c in others]
        replaced.sort(key=lambda text: text not in known)  # stable: known ones first
        found.extend(replaced[: count - len(found)])
    return found[:count]


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
    colours = sorted({w.lower() for t in texts for w in _WORD.findall(t)} & COLOUR_WORDS)
    rng = random.Random(seed)
    known = set(texts)
    negative_rows = {
        i: [add(n) for n in hard_negatives(texts[i], colours, rng, negatives_per_caption, known)]
        for i in sources
    }
    stripped = {i: strip_colours(texts[i]) for i in sources} if colourless else {}
    colourless_of = {i: add(text) for i, text in stripped.items() if text and text != texts[i]}
    negatives = torch.full((len(texts), max(negatives_per_caption, 1)), -1, dtype=torch.long)
    for i, row in negative_rows.items():
        negatives[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    colourless_index = torch.full((len(texts),), -1, dtype=torch.long)
    for i, j in colourless_of.items():
        colourless_index[i] = j
    tokens = trim_padding(tokenizer(texts), tokenizer.pad_id)
    return CaptionTable(texts, tokens, negatives, tokenizer.pad_id, colourless_index)
