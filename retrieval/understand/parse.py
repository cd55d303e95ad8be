"""``understand``: one query → the text to embed and its date, place and camera filters.

Order matters and is fixed: cameras first (so "Pixel 7" keeps its 7), then dates (so "in march"
is a month, not March in Cambridgeshire), then places; then the dates again with the hemisphere
of the place found ("last summer in Sydney" is December to March). Every word is checked to be
in exactly one of the text and the filters; if that ever fails the query is taken literally,
logged, and nothing is lost.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import date, datetime

from indexer.places.names import PlaceNames
from retrieval.understand.dates import find_dates
from retrieval.understand.model import Filter, Understood
from retrieval.understand.tokens import Token, tokenize
from retrieval.understand.where import find_cameras, find_places, southern

log = logging.getLogger(__name__)
MAX_WORDS = 64  # a longer query (a pasted paragraph, 1,000 place names) is taken literally after


def understand(
    query: str,
    now: datetime | date,
    places: PlaceNames | None = None,
    *,
    hemisphere: str = "north",
) -> Understood:
    """Split ``query`` into remaining text and filters, as of ``now`` (injectable for tests).

    ``places``: the place-name index (``indexer.places.names.place_names()``); None understands
    dates and cameras only. ``hemisphere``: for seasons when the query names no place (the
    library's photos' hemisphere, say).
    """
    if hemisphere not in ("north", "south"):
        raise ValueError(f"hemisphere must be 'north' or 'south', not {hemisphere!r}")
    today = now.date() if isinstance(now, datetime) else now
    tokens = tokenize(query)
    head = tokens[:MAX_WORDS]
    for token in tokens[MAX_WORDS:]:
        token.claimed = False
    cameras = find_cameras(head)
    claimed_before_dates = [t.claimed for t in head]
    dates = find_dates(head, today, south=hemisphere == "south")
    found_places = find_places(head, places) if places is not None else []
    south = hemisphere == "south"
    if found_places:
        south = southern(found_places[0].place, places)
    if south != (hemisphere == "south") and dates:  # re-read the dates for the place's seasons
        date_positions = {p for atom in dates for p in atom.positions}
        for token, was in zip(head, claimed_before_dates, strict=True):
            if token.index in date_positions:
                token.claimed = was
        dates = find_dates(head, today, south=south)
    filters = [
        *(
            Filter("date", _words(head, a.positions), tuple(a.positions), a.start, a.end)
            for a in dates
        ),
        *(
            Filter(
                "place",
                _words(head, f.positions),
                tuple(sorted(f.positions)),
                place=f.place,
                alternatives=f.alternatives,
            )
            for f in found_places
        ),
        *(
            Filter("camera", _words(head, f.positions), tuple(f.positions), camera=f.camera)
            for f in cameras
        ),
    ]
    text = " ".join(t.text for t in tokens if not (t.index < MAX_WORDS and t.claimed))
    understood = Understood(query, text, tuple(filters))
    if not _complete(tokens, understood):
        log.error("query understanding lost or doubled a word of %r: taken literally", query)
        return Understood(query, " ".join(t.text for t in tokens))
    return understood


def _words(tokens: list[Token], positions) -> tuple[str, ...]:
    return tuple(tokens[p].text for p in sorted(positions))


def _complete(tokens: list[Token], understood: Understood) -> bool:
    """Every word of the query in exactly one place: the text or one filter."""
    used = Counter(understood.text.split())
    for f in understood.filters:
        used.update(f.words)
    return used == Counter(t.text for t in tokens)


def lost_words(query: str, understood: Understood) -> list[str]:
    """The words of ``query`` found neither in the text nor in a filter (for benchmarks)."""
    have = Counter(understood.text.split())
    for f in understood.filters:
        have.update(f.words)
    return list((Counter(query.split()) - have).elements())
