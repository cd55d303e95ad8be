"""What a search asks for: query parsing (``"beach -people"``), filters, and filter resolution.

Filters become a set of allowed ids through one SQL query (SQLAlchemy expressions, so every
value is a bound parameter); the vector index then searches only those ids, so a filtered
top-k is never a top-k cut that filtering emptied afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import and_, exists, or_, select

from encoders.errors import VitrieveError
from indexer.schema import FileRow, LabelRow
from indexer.store import MetadataStore

_NEGATIVE = re.compile(r'(?:^|\s)-(?:"([^"]*)"|(\S+))')
LABEL_SEPARATOR = ":"
MAX_NEGATIVES = 64  # each negative term is one more text to encode per query
INT64 = (-(2**63), 2**63 - 1)  # what SQL integer columns hold


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


@dataclass(frozen=True)
class Filters:
    """Restrictions on which images a search may return (all given ones must hold)."""

    folder: str | None = None  # path prefix relative to the photo root, e.g. "2024/summer"
    taken_after: datetime | None = None
    taken_before: datetime | None = None
    modified_after: datetime | None = None
    modified_before: datetime | None = None
    formats: tuple[str, ...] = ()  # "JPEG", "PNG", ... (case-insensitive)
    label: str | None = None  # "LABEL" in any label set, or "SET:LABEL"
    min_label_score: float | None = None
    min_width: int | None = None
    min_height: int | None = None
    min_bytes: int | None = None

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) in (None, ()) for f in fields(self))


def _label_condition(filters: Filters):
    name = (filters.label or "").strip()
    conditions = [LabelRow.file_id == FileRow.id]
    if LABEL_SEPARATOR in name:
        label_set, name = (part.strip() for part in name.split(LABEL_SEPARATOR, 1))
        conditions.append(LabelRow.label_set == label_set)
    conditions.append(LabelRow.label == name)
    if filters.min_label_score is not None:
        conditions.append(LabelRow.score >= filters.min_label_score)
    return exists().where(*conditions)


def _ns(moment: datetime) -> int:
    """Nanoseconds since the epoch, clamped to 64 bits (year 1 and 9999 are valid bounds)."""
    try:
        return min(max(int(moment.timestamp() * 1_000_000_000), INT64[0]), INT64[1])
    except (OverflowError, ValueError, OSError):  # before the epoch range of this platform
        return INT64[0] if moment.year < 1970 else INT64[1]


def filter_conditions(filters: Filters) -> list:
    """SQLAlchemy conditions on ``files`` for ``filters`` (indexed rows only)."""
    conditions = [FileRow.status == "indexed"]
    folder = (filters.folder or "").strip().strip("/")
    if folder:
        conditions.append(
            or_(FileRow.path.startswith(folder + "/", autoescape=True), FileRow.path == folder)
        )
    if filters.taken_after is not None:
        conditions.append(FileRow.taken_at >= filters.taken_after)
    if filters.taken_before is not None:
        conditions.append(FileRow.taken_at <= filters.taken_before)
    if filters.modified_after is not None:
        conditions.append(FileRow.mtime_ns >= _ns(filters.modified_after))
    if filters.modified_before is not None:
        conditions.append(FileRow.mtime_ns <= _ns(filters.modified_before))
    if filters.formats:
        conditions.append(FileRow.format.in_([f.upper().lstrip(".") for f in filters.formats]))
    if filters.min_width is not None:
        conditions.append(FileRow.width >= filters.min_width)
    if filters.min_height is not None:
        conditions.append(FileRow.height >= filters.min_height)
    if filters.min_bytes is not None:
        conditions.append(FileRow.size >= filters.min_bytes)
    if filters.label:
        conditions.append(_label_condition(filters))
    return conditions


def resolve_filters(store: MetadataStore, filters: Filters | None) -> np.ndarray | None:
    """Sorted int64 ids passing ``filters``; None means "no restriction"."""
    if filters is None or filters.is_empty():
        return None
    _check_ranges(filters)
    query = select(FileRow.id).where(and_(*filter_conditions(filters))).order_by(FileRow.id)
    with store.session() as session:
        return np.fromiter(session.scalars(query), dtype=np.int64)


def _check_ranges(filters: Filters) -> None:
    """Clear errors for filter values no database could compare (before any SQL runs)."""
    for name in ("min_width", "min_height", "min_bytes"):
        value = getattr(filters, name)
        if value is not None and not INT64[0] <= value <= INT64[1]:
            raise VitrieveError(f"{name.replace('_', ' ')} out of range: {value}")
    texts = [filters.folder or "", filters.label or "", *filters.formats]
    if any("\x00" in text for text in texts):
        raise VitrieveError("a filter value contains a NUL character")
    try:
        for text in texts:
            text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: undecodable bytes from argv, or a bad client
        raise VitrieveError("a filter value is not valid Unicode text") from None
    for low, high, what in (
        (filters.taken_after, filters.taken_before, "taken"),
        (filters.modified_after, filters.modified_before, "modified"),
    ):
        if low is not None and high is not None and low > high:
            raise VitrieveError(f"empty {what} date range: {low:%Y-%m-%d} is after {high:%Y-%m-%d}")
