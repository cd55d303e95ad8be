"""Query words: the text as typed, its matching core, and the small vocabularies rules share."""

from __future__ import annotations

from dataclasses import dataclass

_STRIP = ',.;:!?()[]{}"“”«»'


@dataclass
class Token:
    text: str  # as typed (punctuation kept)
    core: str  # lowercased, outer punctuation and a trailing "'s" kept off: "Paris," -> "paris"
    index: int
    claimed: bool = False

    @property
    def capitalized(self) -> bool:
        stripped = self.text.lstrip(_STRIP)
        return bool(stripped) and stripped[0].isupper()


def tokenize(query: str) -> list[Token]:
    return [
        Token(w, w.strip(_STRIP).lower().replace("’", "'"), i) for i, w in enumerate(query.split())
    ]


NUMBER_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "couple": 2,
}
DETERMINERS = frozenset(
    """
    a an the this that these those my our your his her their its old vintage classic retro
    model no number
    """.split()  # noqa: SIM905
)
MONTHS = {
    "january": 1,
    "february": 2,
    "march": 3,
    "april": 4,
    "may": 5,
    "june": 6,
    "july": 7,
    "august": 8,
    "september": 9,
    "october": 10,
    "november": 11,
    "december": 12,
    "jan": 1,
    "feb": 2,
    "mar": 3,
    "apr": 4,
    "jun": 6,
    "jul": 7,
    "aug": 8,
    "sep": 9,
    "sept": 9,
    "oct": 10,
    "nov": 11,
    "dec": 12,
}
# Month names that are also everyday words (or abbreviations): a month only next to a year, a
# day, or a time preposition ("in may"), never alone ("may flowers", "a march").
ABBREVIATED_MONTHS = frozenset(
    """
    jan feb mar apr jun jul aug sep sept oct nov dec
    """.split()  # noqa: SIM905
)
AMBIGUOUS_MONTHS = ABBREVIATED_MONTHS | {"may", "march", "august"}
SEASONS = {
    "spring": "spring",
    "summer": "summer",
    "autumn": "autumn",
    "fall": "autumn",
    "winter": "winter",
}
# Words that make the next date words a time: "in march", "during the summer", "at christmas".
TIME_CUES = frozenset(
    """
    in during from since until till before after on at over for of
    """.split()  # noqa: SIM905
)
PLACE_CUES = frozenset(
    """
    in at from near around to inside across visiting
    """.split()  # noqa: SIM905
)
CAMERA_CUES = frozenset(
    """
    with on using from by
    """.split()  # noqa: SIM905
)
TAKEN = frozenset(["taken", "shot", "captured", "photographed"])
PHOTO_WORDS = frozenset(
    """
    photos photo pictures picture pics pic shots images selfies videos
    """.split()  # noqa: SIM905
)
