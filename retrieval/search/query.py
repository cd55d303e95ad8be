"""What a search asks for: query parsing (``"beach -people"``), and which images it may
return (``Filters``, implemented once by the store: ``indexer.store.queries``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image

from encoders.errors import VitrieveError
from indexer.store.metadata import MetadataStore
from indexer.store.queries import LABEL_SEPARATOR, Filters

__all__ = [
    "DEFAULT_LIMIT", "LABEL_SEPARATOR", "Filters", "ImageInput", "Query", "end_of_day",
    "is_file", "parse_query",
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
