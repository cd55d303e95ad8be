"""What the MetadataStore's reads return (``FileRecord``, ``Label``) and the one filter
implementation (``Filters`` → SQL conditions), with the id chunking every query uses.

Filters become a set of allowed ids through one SQL query (SQLAlchemy expressions, so every
value is a bound parameter); the vector index then searches only those ids, so a filtered
top-k is never a top-k cut that filtering emptied afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import exists, or_

from encoders.errors import VitrieveError, check_text
from indexer.store.schema import FileRow, LabelRow

CHUNK = 5000  # ids per IN (...) clause: under every driver's parameter limit
LABEL_SEPARATOR = ":"  # a label filter "SET:LABEL"
INT64 = (-(2**63), 2**63 - 1)  # what SQL integer columns hold


@dataclass(frozen=True)
class FileRecord:
    """A read-only copy of a ``files`` row, safe to use after its session is closed."""

    id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str | None
    width: int | None
    height: int | None
    format: str | None
    taken_at: datetime | None
    status: str
    error: str | None
    thumb: str | None
    indexed_at: datetime | None


class Label(NamedTuple):
    """One zero-shot label of one file."""

    label_set: str
    label: str
    score: float


@dataclass(frozen=True)
class Filters:
    """Restrictions on which images a search may return (all given ones must hold)."""

    folder: str | None = None  # the folder (relative to the photo root) and what is under it
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


_RECORD_FIELDS = tuple(f.name for f in fields(FileRecord))
RECORD_COLUMNS = tuple(getattr(FileRow, name) for name in _RECORD_FIELDS)


def to_record(row: FileRow) -> FileRecord:
    return FileRecord(**{name: getattr(row, name) for name in _RECORD_FIELDS})


def chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield [int(i) for i in ids[start : start + CHUNK]]


def filter_conditions(filters: Filters) -> list:
    """SQLAlchemy conditions on ``files`` for ``filters`` (indexed rows only)."""
    conditions = [FileRow.status == "indexed"]
    folder = (filters.folder or "").strip().strip("/")
    if folder:
        conditions.append(
            or_(FileRow.path.startswith(folder + "/", autoescape=True), FileRow.path == folder)
        )
    bounds = [
        (filters.taken_after, FileRow.taken_at.__ge__),
        (filters.taken_before, FileRow.taken_at.__le__),
        (_ns(filters.modified_after), FileRow.mtime_ns.__ge__),
        (_ns(filters.modified_before), FileRow.mtime_ns.__le__),
        (filters.min_width, FileRow.width.__ge__),
        (filters.min_height, FileRow.height.__ge__),
        (filters.min_bytes, FileRow.size.__ge__),
    ]
    conditions += [compare(value) for value, compare in bounds if value is not None]
    if filters.formats:
        conditions.append(FileRow.format.in_([f.upper().lstrip(".") for f in filters.formats]))
    if filters.label:
        conditions.append(_label_condition(filters))
    return conditions


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


def _ns(moment: datetime | None) -> int | None:
    """Nanoseconds since the epoch, clamped to 64 bits (year 1 and 9999 are valid bounds)."""
    if moment is None:
        return None
    try:
        return min(max(int(moment.timestamp() * 1_000_000_000), INT64[0]), INT64[1])
    except (OverflowError, ValueError, OSError):  # before the epoch range of this platform
        return INT64[0] if moment.year < 1970 else INT64[1]


def check_filters(filters: Filters) -> None:
    """Clear errors for filter values no database could compare (before any SQL runs)."""
    for name in ("min_width", "min_height", "min_bytes"):
        value = getattr(filters, name)
        if value is not None and not INT64[0] <= value <= INT64[1]:
            raise VitrieveError(f"{name.replace('_', ' ')} out of range: {value}")
    for text in [filters.folder or "", filters.label or "", *filters.formats]:
        check_text(text, "a filter value")
    for low, high, what in (
        (filters.taken_after, filters.taken_before, "taken"),
        (filters.modified_after, filters.modified_before, "modified"),
    ):
        if low is not None and high is not None and low > high:
            raise VitrieveError(f"empty {what} date range: {low:%Y-%m-%d} is after {high:%Y-%m-%d}")
