"""Read side of the MetadataStore: rows by id or path, the one filter implementation, counts,
and the one label reader — what retrieval, ``vitrieve status`` and zero-shot use.

Filters become a set of allowed ids through one SQL query (SQLAlchemy expressions, so every
value is a bound parameter); the vector index then searches only those ids, so a filtered
top-k is never a top-k cut that filtering emptied afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import delete, exists, func, insert, or_, select
from sqlalchemy.orm import Session

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
_RECORD_COLUMNS = tuple(getattr(FileRow, name) for name in _RECORD_FIELDS)


def to_record(row: FileRow) -> FileRecord:
    return FileRecord(**{name: getattr(row, name) for name in _RECORD_FIELDS})


def _best_first(labels: dict[int, list[Label]]) -> dict[int, list[Label]]:
    return {k: sorted(v, key=lambda x: -x.score) for k, v in labels.items()}


def chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield [int(i) for i in ids[start : start + CHUNK]]


class StoreQueries:
    """Queries by id, filters, counts and labels (mixed into ``MetadataStore``)."""

    def session(self) -> Session:  # provided by MetadataStore
        raise NotImplementedError

    def get_files(self, ids: Sequence[int] | np.ndarray) -> list[FileRecord]:
        """Rows for ``ids``, in the given order (ids without a row are left out)."""
        ids = [int(i) for i in ids]
        found: dict[int, FileRecord] = {}
        with self.session() as session:
            for chunk in chunks(ids):
                for row in session.scalars(select(FileRow).where(FileRow.id.in_(chunk))):
                    found[row.id] = to_record(row)
        return [found[i] for i in ids if i in found]

    def indexed_id(self, path: str) -> int | None:
        """The id of the indexed file at ``path`` (relative to the photo root, POSIX)."""
        query = select(FileRow.id).where(FileRow.path == path, FileRow.status == "indexed")
        with self.session() as session:
            return session.scalar(query)

    def filter_ids(self, filters: Filters | None = None, **values: Any) -> np.ndarray:
        """Sorted int64 ids of indexed files passing ``filters`` (or ``Filters(**values)``)."""
        filters = filters or Filters(**values)
        check_filters(filters)
        query = select(FileRow.id).where(*filter_conditions(filters)).order_by(FileRow.id)
        with self.session() as session:
            return np.fromiter(session.scalars(query), dtype=np.int64)

    def status_counts(self) -> dict[str, int]:
        """Number of files per status (every status present, zeros included)."""
        query = select(FileRow.status, func.count()).group_by(FileRow.status)
        with self.session() as session:
            counts = dict(session.execute(query).all())
        return {s: int(counts.get(s, 0)) for s in ("pending", "indexed", "failed", "deleted")}

    def format_counts(self) -> dict[str, int]:
        """Indexed files per format ("unknown" when none was recorded)."""
        query = select(FileRow.format, func.count()).where(FileRow.status == "indexed")
        with self.session() as session:
            rows = session.execute(query.group_by(FileRow.format))
            return {str(f or "unknown"): int(n) for f, n in rows}

    def taken_dates(self) -> list[datetime]:
        """When each indexed photo was taken, for those whose date is known."""
        query = select(FileRow.taken_at).where(
            FileRow.status == "indexed", FileRow.taken_at.is_not(None)
        )
        with self.session() as session:
            return list(session.scalars(query))

    def failures(self, limit: int | None = None) -> list[tuple[str, str]]:
        """``(path, reason)`` of failed files, by path."""
        query = select(FileRow.path, FileRow.error).where(FileRow.status == "failed")
        with self.session() as session:
            rows = session.execute(query.order_by(FileRow.path).limit(limit))
            return [(p, e or "unknown error") for p, e in rows]

    def write_labels(
        self, label_set: str, rows: Iterable[tuple[int, str, float]], replace: bool = True
    ) -> None:
        """Store ``(file_id, label, score)`` rows of a label set; ``replace`` clears the set's
        earlier labels of those files first."""
        values = [
            {"file_id": int(i), "label_set": label_set, "label": lab, "score": float(s)}
            for i, lab, s in rows
        ]
        with self.session() as session, session.begin():
            if replace:
                for chunk in chunks(sorted({v["file_id"] for v in values})):
                    session.execute(
                        delete(LabelRow).where(
                            LabelRow.label_set == label_set, LabelRow.file_id.in_(chunk)
                        )
                    )
            if values:
                session.execute(insert(LabelRow), values)

    def read_labels(
        self, label_set: str | None = None, ids: Sequence[int] | np.ndarray | None = None
    ) -> dict[int, list[Label]]:
        """The one label reader: every label per file id (all files, or only ``ids``; all
        sets, or only ``label_set``), best score first."""
        query = select(LabelRow.file_id, LabelRow.label_set, LabelRow.label, LabelRow.score)
        if label_set is not None:
            query = query.where(LabelRow.label_set == check_text(label_set, "a label set name"))
        if ids is None:
            batches = [query]
        else:
            batches = [query.where(LabelRow.file_id.in_(c)) for c in chunks([int(i) for i in ids])]
        out: dict[int, list[Label]] = {}
        with self.session() as session:
            for batch in batches:
                for file_id, name, lab, score in session.execute(batch):
                    out.setdefault(int(file_id), []).append(Label(name, lab, float(score)))
        return _best_first(out)

    def files_with_labels(
        self, ids: Sequence[int] | np.ndarray
    ) -> tuple[dict[int, FileRecord], dict[int, list[Label]]]:
        """A results page's file rows and every label of each (best first), in one SQL query
        by primary key: half the cost of a rows query plus ``read_labels`` (a page is at most
        a few hundred ids, and the query sits on every search's path)."""
        width = len(_RECORD_COLUMNS)
        query = select(*_RECORD_COLUMNS, LabelRow.label_set, LabelRow.label, LabelRow.score)
        query = query.outerjoin(LabelRow, LabelRow.file_id == FileRow.id)
        records: dict[int, FileRecord] = {}
        labels: dict[int, list[Label]] = {}
        with self.session() as session:
            for chunk in chunks([int(i) for i in ids]):
                for row in session.execute(query.where(FileRow.id.in_(chunk))):
                    record = records.get(row[0]) or FileRecord(*row[:width])
                    records[record.id] = record
                    if row[width + 1] is not None:  # a label (the outer join's NULLs: none)
                        name, lab, score = row[width:]
                        labels.setdefault(record.id, []).append(Label(name, lab, float(score)))
        return records, _best_first(labels)

    def label_sets(self) -> list[str]:
        """Names of the label sets stored."""
        with self.session() as session:
            return list(session.scalars(select(LabelRow.label_set).distinct()))


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
