"""Read side of the MetadataStore: what retrieval, ``vitrieve status`` and zero-shot use."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime

import numpy as np
from sqlalchemy import and_, delete, exists, func, insert, select
from sqlalchemy.orm import Session

from indexer.schema import FileRow, LabelRow

CHUNK = 5000  # ids per IN (...) clause: under every driver's parameter limit


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


_RECORD_FIELDS = tuple(f.name for f in fields(FileRecord))


def to_record(row: FileRow) -> FileRecord:
    return FileRecord(**{name: getattr(row, name) for name in _RECORD_FIELDS})


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

    def filter_ids(
        self,
        *,
        folder: str | None = None,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
        formats: Sequence[str] | None = None,
        label: tuple[str, str] | None = None,
        min_label_score: float | None = None,
        min_bytes: int | None = None,
        min_side: int | None = None,
    ) -> np.ndarray:
        """Sorted int64 ids of indexed files matching every given filter.

        ``folder`` is a path prefix relative to the library root; ``label`` is
        ``(label_set, label)``; ``min_side`` is the shorter image side in pixels.
        """
        conditions = [FileRow.status == "indexed"]
        if folder and folder.strip("/"):
            conditions.append(FileRow.path.startswith(folder.strip("/") + "/", autoescape=True))
        if date_from is not None:
            conditions.append(FileRow.taken_at >= date_from)
        if date_to is not None:
            conditions.append(FileRow.taken_at <= date_to)
        if formats:
            conditions.append(FileRow.format.in_([f.upper() for f in formats]))
        if min_bytes is not None:
            conditions.append(FileRow.size >= min_bytes)
        if min_side is not None:
            conditions.append(and_(FileRow.width >= min_side, FileRow.height >= min_side))
        if label is not None:
            labelled = [LabelRow.file_id == FileRow.id, LabelRow.label_set == label[0]]
            labelled.append(LabelRow.label == label[1])
            if min_label_score is not None:
                labelled.append(LabelRow.score >= min_label_score)
            conditions.append(exists().where(*labelled))
        query = select(FileRow.id).where(*conditions).order_by(FileRow.id)
        with self.session() as session:
            return np.fromiter(session.scalars(query), dtype=np.int64)

    def status_counts(self) -> dict[str, int]:
        """Number of files per status (every status present, zeros included)."""
        query = select(FileRow.status, func.count()).group_by(FileRow.status)
        with self.session() as session:
            counts = dict(session.execute(query).all())
        return {s: int(counts.get(s, 0)) for s in ("pending", "indexed", "failed", "deleted")}

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
        self, label_set: str, ids: Sequence[int] | None = None
    ) -> dict[int, list[tuple[str, float]]]:
        """Labels of a set per file id, best score first (all files, or only ``ids``)."""
        query = select(LabelRow.file_id, LabelRow.label, LabelRow.score).where(
            LabelRow.label_set == label_set
        )
        batches = (
            [query]
            if ids is None
            else [query.where(LabelRow.file_id.in_(chunk)) for chunk in chunks(list(ids))]
        )
        out: dict[int, list[tuple[str, float]]] = {}
        with self.session() as session:
            for q in batches:
                for file_id, lab, score in session.execute(q):
                    out.setdefault(int(file_id), []).append((lab, float(score)))
        return {k: sorted(v, key=lambda x: -x[1]) for k, v in out.items()}

    def label_sets(self) -> list[str]:
        """Names of the label sets stored."""
        with self.session() as session:
            return list(session.scalars(select(LabelRow.label_set).distinct()))
