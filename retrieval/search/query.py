"""What a search asks for: query parsing (``"beach -people"``), and which images it may
return (``Filters``, implemented once by the store: ``indexer.store.queries``), places
included: a place name or position becomes the filter fields that mean "in or near it"
(``place_filter``), the same for every front end."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from encoders.errors import VitrieveError
from indexer.store.metadata import MetadataStore
from indexer.store.queries import DEFAULT_WITHIN_KM, LABEL_SEPARATOR, Filters

if TYPE_CHECKING:  # the place names load on first use (scipy, GeoNames: not every search)
    from indexer.places import Place, Resolution

__all__ = [
    "DEFAULT_LIMIT", "DEFAULT_WITHIN_KM", "LABEL_SEPARATOR", "Filters", "ImageInput", "Query",
    "country_codes", "end_of_day", "is_file", "parse_query", "place_filter", "resolve_place",
]  # fmt: skip

_NEGATIVE = re.compile(r'(?:^|\s)-(?:"([^"]*)"|(\S+))')
MAX_NEGATIVES = 64  # each negative term is one more text to encode per query
DEFAULT_LIMIT = 20  # results per page when a caller does not say (CLI -k, API k, Searcher)


def parse_query(text: str) -> tuple[str, list[str]]:
    """``'beach -people -"red car"'`` → ``("beach", ["people", "red car"])``.

    A ``-`` only negates at the start of a word, so "t-shirt" and "2020-05" stay positive."""
    negatives = [(quoted or bare).strip() for quoted, bare in _NEGATIVE.findall(text)]
    positive = " ".join(_NEGATIVE.sub(" ", text).split())
    return positive, [n for n in negatives if n]


ImageInput = str | Path | Image.Image | int  # a file, a decoded image, or an indexed id


def is_file(path: str | Path) -> bool:
    """Whether ``path`` names a regular file; False, not OSError, for names the system refuses
    (too long, a NUL byte): an image query may be any text a user typed."""
    try:
        return Path(path).expanduser().is_file()
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class Query:
    """A search: text and/or an image, minus negative terms, as one weighted embedding sum."""

    text: str = ""
    negatives: tuple[str, ...] = ()
    image: ImageInput | None = None
    text_weight: float = 1.0
    image_weight: float = 1.0
    negative_weight: float = 0.7  # how hard a negative term pushes away, relative to +1

    @classmethod
    def parse(
        cls,
        text: str = "",
        negatives: Sequence[str] = (),
        image: ImageInput | None = None,
        **weights: float,
    ) -> Query:
        """Split ``-term`` negatives out of ``text`` and add the explicit ``negatives``."""
        positive, inline = parse_query(text or "")
        extra = [n.strip() for n in negatives if n and n.strip()]
        query = cls(positive, tuple(dict.fromkeys(inline + extra)), image, **weights)
        if len(query.negatives) > MAX_NEGATIVES:
            raise VitrieveError(
                f"too many negative terms ({len(query.negatives)} > {MAX_NEGATIVES})"
            )
        if not query.text and query.image is None:
            raise VitrieveError("empty query: give some text or an image to search for")
        return query


def end_of_day(moment: datetime | None) -> datetime | None:
    """A bare date as an upper bound means the whole day (every front end's ``--taken-before
    2024-07-01`` includes that day)."""
    if moment is not None and moment.time() == datetime.min.time():
        if moment.date() == datetime.max.date():
            return datetime.max  # 9999-12-31: no next day to step back from
        return moment + timedelta(days=1) - timedelta(microseconds=1)
    return moment


def resolve_filters(store: MetadataStore, filters: Filters | None) -> np.ndarray | None:
    """Sorted int64 ids passing ``filters`` (``MetadataStore.filter_ids``, the one filter
    implementation); None means "no restriction"."""
    if filters is None or filters.is_empty():
        return None
    return store.filter_ids(filters)


def resolve_place(text: str) -> Resolution:
    """A place name ("Lisbon", "München", "Paris, Texas", "Portugal") or "LAT,LON", resolved
    offline (a shared name might mean several places: the most populous wins, the others are
    in ``Resolution.alternatives`` for the caller to report); VitrieveError when unknown."""
    from indexer.places.names import place_names

    text = (text or "").strip()
    if not text:
        raise VitrieveError("an empty place name")
    resolution = place_names().resolve(text)
    if resolution is None:
        raise VitrieveError(f"unknown place: {text!r} (a city, US state, country, continent, "
                            "or LAT,LON)")  # fmt: skip
    return resolution


def place_filter(place: Place, within_km: float | None = None) -> dict:
    """The ``Filters`` fields meaning "in ``place``": around a city or position a circle
    (``within_km``, else the place's own radius, else ``DEFAULT_WITHIN_KM``); a region, a
    country or a continent by its codes (its borders), so ``within_km`` needs a centre."""
    if place.latitude is not None and place.longitude is not None:
        radius = within_km if within_km is not None else place.radius_km or DEFAULT_WITHIN_KM
        return {"near": (place.latitude, place.longitude), "within_km": radius}
    if within_km is not None:
        raise VitrieveError(
            f"{place.label} is a {place.kind}, searched within its borders: a distance needs "
            "a city or a LAT,LON position"
        )
    if place.kind == "region" and place.country_code and place.region_code:
        return {"regions": ((place.country_code, place.region_code),)}
    if place.kind == "country" and place.country_code:
        return {"countries": (place.country_code,)}
    if place.country_codes:
        return {"countries": tuple(place.country_codes)}
    raise VitrieveError(f"{place.label} cannot be searched as a place")


def country_codes(values: Sequence[str]) -> tuple[str, ...]:
    """ISO codes from codes ("pt") or country names ("Portugal", "Deutschland")."""
    codes = []
    for value in values:
        value = (value or "").strip()
        if len(value) == 2 and value.isalpha() and value.isascii():
            codes.append(value.upper())
            continue
        from indexer.places.names import place_names

        found = [p for p in place_names().candidates(value) if p.kind == "country"]
        if not found:
            raise VitrieveError(f"not a country: {value!r} (give its name or ISO code: PT)")
        codes.append(found[0].country_code)
    return tuple(dict.fromkeys(codes))
