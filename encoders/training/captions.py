"""Caption-side preparation: every distinct caption tokenised once, mirrors and hard negatives.

Training looks captions up by index instead of tokenising per step. The table also holds
each caption's left/right mirror (the caption of a flipped image) and hard negatives
(``encoders.training.negatives``): the same words with attributes swapped — "a red circle
left of a blue square" → "a blue circle left of a red square", "a red square left of a blue
circle" or "... right of ..." — or one replaced — "a red star" → "a green star" or "a red
heart". As extra candidates in the loss they force the model to tell
*which* colour goes with *which* object instead of matching a bag of words; this is what a
plain CLIP lacks on compositions it never saw.

Each caption that names a colour also gets a *colourless* variant ("a red circle on the left"
→ "a circle on the left"): the trainer pairs it with a greyscale copy of the image
(``TrainOptions.grey_fraction``). Such a pair can only be matched by shape, size or position,
so the colour shortcut — which a ViT from scratch learns in a few dozen steps and then leans
on — is taken away from a fraction of every batch (measured in docs/training.md).
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch

from encoders.model.tokenizer import Tokenizer, trim_padding
from encoders.training.data import swap_left_right
from encoders.training.negatives import Substitutes, fix_articles, hard_negatives, learn_substitutes

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
