"""MetadataStore: the SQL side of a library (SQLite in WAL mode by default, PostgreSQL by URL;
the connection is ``database``'s, the records and filters ``queries``').

Queries are built with SQLAlchemy expressions (bound parameters, never string-built SQL).
Id lists are chunked so that a 100k-file library stays under every driver's parameter limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import URL, Engine, delete, exists, func, insert, select
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from encoders.errors import VitrieveError, check_text
from indexer.store.database import DB_FILE, Database, library_url
from indexer.store.queries import CHUNK as _CHUNK
from indexer.store.queries import (
    RECORD_COLUMNS,
    FileRecord,
    Filters,
    Label,
    check_filters,
    filter_conditions,
)
from indexer.store.queries import chunks as _chunks
from indexer.store.schema import (
    FACT_COLUMNS,
    FACTS_SINCE,
    STATUSES,
    EmbeddingRow,
    FileRow,
    LabelRow,
)

__all__ = ["DB_FILE", "FileRecord", "MetadataStore"]


# One class past 300 lines: it is the library's whole SQL interface (reads and writes share its
# database, chunking and row conversion); a split would be a mixin or one-line delegations.
class MetadataStore:
    """Files, embeddings metadata and labels of one library, on a ``Database``."""

    def __init__(self, url: str | URL, read_only: bool = False) -> None:
        """``read_only``: never write (SQLite URLs built by ``for_library`` open the file
        immutable); the schema must then be current already."""
        self.db = Database(url, read_only)

    @classmethod
    def for_library(
        cls, library: Path, url: str | None = None, read_only: bool = False
    ) -> MetadataStore:
        """The store of a library directory: ``url`` if given, else ``library/library.db``."""
        return cls(library_url(library, url, read_only), read_only)

    @property
    def engine(self) -> Engine:
        return self.db.engine

    @property
    def url(self) -> str:
        return self.db.url

    @property
    def read_only(self) -> bool:
        return self.db.read_only

    @property
    def schema_version(self) -> int:
        return self.db.schema_version

    def session(self) -> Session:
        return self.db.session()

    def close(self) -> None:
        self.db.close()

    # --- what the scanner and pipeline use -------------------------------------------------

    def all_files(self) -> list[FileRecord]:
        """Every row, deleted ones included (the scanner compares them with the disk)."""
        with self.session() as session:  # the record's columns: a read-only older schema too
            return [FileRecord(*row) for row in session.execute(select(*RECORD_COLUMNS))]

    def add_files(self, files: Iterable[tuple[str, int, int]]) -> None:
        """New ``(path, size, mtime_ns)`` files become pending; a deleted row at a path revives."""
        files = list(files)
        with self.session() as session, session.begin():
            paths = [p for p, _, _ in files]
            stale = {}
            for start in range(0, len(paths), _CHUNK):
                rows = session.execute(
                    select(FileRow.path, FileRow.id).where(
                        FileRow.path.in_(paths[start : start + _CHUNK])
                    )
                )
                stale.update(dict(rows.all()))
            fresh = [
                {"path": p, "size": s, "mtime_ns": m, "status": "pending"}
                for p, s, m in files
                if p not in stale
            ]
            if fresh:
                session.execute(insert(FileRow), fresh)
            revived = [(stale[p], s, m) for p, s, m in files if p in stale]
            self._reset(session, revived)

    def _reset(self, session: Session, files: Sequence[tuple[int, int, int]]) -> None:
        """Rows whose content is new: pending, facts cleared, stale labels and vectors dropped."""
        if not files:
            return
        cleared = dict.fromkeys(("content_hash", "width", "height", "format", "taken_at"))
        cleared.update(dict.fromkeys(FACT_COLUMNS))
        cleared.update(error=None, thumb=None, indexed_at=None, status="pending")
        session.execute(
            sql_update(FileRow),
            [{"id": i, "size": s, "mtime_ns": m, **cleared} for i, s, m in files],
        )
        for chunk in _chunks([i for i, _, _ in files]):
            session.execute(delete(LabelRow).where(LabelRow.file_id.in_(chunk)))
            session.execute(delete(EmbeddingRow).where(EmbeddingRow.file_id.in_(chunk)))

    def mark_changed(self, files: Sequence[tuple[int, int, int]]) -> None:
        """``(id, size, mtime_ns)`` rows whose content changed: to be embedded again."""
        with self.session() as session, session.begin():
            self._reset(session, files)

    def update_rows(self, changes: Sequence[dict]) -> None:
        """Bulk column updates by id (moves, touched mtimes): each dict has ``id``."""
        if changes:
            with self.session() as session, session.begin():
                session.execute(sql_update(FileRow), list(changes))

    def remove_rows(self, ids: Sequence[int]) -> None:
        """Forget rows entirely (a stale deleted row at the path a moved file now takes)."""
        with self.session() as session, session.begin():
            for chunk in _chunks(ids):
                session.execute(delete(LabelRow).where(LabelRow.file_id.in_(chunk)))
                session.execute(delete(EmbeddingRow).where(EmbeddingRow.file_id.in_(chunk)))
                session.execute(delete(FileRow).where(FileRow.id.in_(chunk)))

    def mark_deleted(self, ids: Sequence[int]) -> None:
        """Files gone from disk: status ``deleted``, their vectors forgotten (labels kept)."""
        with self.session() as session, session.begin():
            for chunk in _chunks(ids):
                session.execute(delete(EmbeddingRow).where(EmbeddingRow.file_id.in_(chunk)))
                session.execute(
                    sql_update(FileRow).where(FileRow.id.in_(chunk)).values(status="deleted")
                )

    def work_list(self, generation: int) -> list[tuple[int, str]]:
        """``(id, path)`` of live files without a vector in ``generation``, in id order."""
        has_vector = exists().where(
            EmbeddingRow.file_id == FileRow.id, EmbeddingRow.generation == generation
        )
        query = (
            select(FileRow.id, FileRow.path)
            .where(FileRow.status.in_(("pending", "indexed")), ~has_vector)
            .order_by(FileRow.id)
        )
        with self.session() as session:
            return [(int(i), p) for i, p in session.execute(query)]

    def record_batch(
        self,
        generation: int,
        model_id: str,
        indexed: Sequence[dict],
        failed: Sequence[tuple[int, str] | tuple[int, str, str | None]],
        active: bool,
    ) -> None:
        """One atomic commit: decoded facts + embeddings rows for ``indexed``, reasons for
        ``failed`` (``(id, reason)`` or ``(id, reason, content_hash)``). Rows become
        ``indexed`` now if ``generation`` is the active one."""
        now = datetime.now()
        with self.session() as session, session.begin():
            if indexed:
                status = {"status": "indexed", "indexed_at": now} if active else {}
                session.execute(sql_update(FileRow), [{**row, **status} for row in indexed])
                session.execute(
                    insert(EmbeddingRow),
                    [
                        {
                            "file_id": r["id"],
                            "generation": generation,
                            "model_id": model_id,
                            "created_at": now,
                        }
                        for r in indexed
                    ],
                )
            if failed:
                session.execute(
                    sql_update(FileRow),
                    [
                        {
                            "id": f[0],
                            "status": "failed",
                            "error": f[1][:2000],
                            "content_hash": f[2] if len(f) > 2 else None,  # for move detection
                        }
                        for f in failed
                    ],
                )

    def retry_failed(self) -> int:
        """Failed files become pending again (a run with ``retry_failed``); returns how many."""
        query = sql_update(FileRow).where(FileRow.status == "failed")
        with self.session() as session, session.begin():
            return session.execute(query.values(status="pending", error=None)).rowcount

    def embedded_ids(self, generation: int) -> np.ndarray:
        """Ids with an embeddings row in ``generation`` (what the index must hold)."""
        query = select(EmbeddingRow.file_id).where(EmbeddingRow.generation == generation)
        with self.session() as session:
            return np.fromiter(session.scalars(query), dtype=np.int64)

    def unembed(self, ids: Sequence[int], generation: int) -> None:
        """Rows that lost their vector (crash repair): embed them again."""
        with self.session() as session, session.begin():
            for chunk in _chunks(ids):
                session.execute(
                    delete(EmbeddingRow).where(
                        EmbeddingRow.generation == generation, EmbeddingRow.file_id.in_(chunk)
                    )
                )
                session.execute(
                    sql_update(FileRow)
                    .where(FileRow.id.in_(chunk), FileRow.status == "indexed")
                    .values(status="pending")
                )

    def switch_generation(self, new: int) -> None:
        """Make ``new`` the searchable generation: its rows indexed, older vectors forgotten."""
        in_new = select(EmbeddingRow.file_id).where(EmbeddingRow.generation == new)
        with self.session() as session, session.begin():
            session.execute(
                sql_update(FileRow)
                .where(FileRow.id.in_(in_new), FileRow.status == "pending")
                .values(status="indexed", indexed_at=datetime.now())
            )
            session.execute(delete(EmbeddingRow).where(EmbeddingRow.generation != new))

    # --- what retrieval, ``vitrieve status`` and zero-shot read ---------------------------

    def get_files(self, ids: Sequence[int] | np.ndarray) -> list[FileRecord]:
        """Rows for ``ids``, in the given order (ids without a row are left out)."""
        ids = [int(i) for i in ids]
        found: dict[int, FileRecord] = {}
        with self.session() as session:
            for chunk in _chunks(ids):
                query = select(*RECORD_COLUMNS).where(FileRow.id.in_(chunk))
                for row in session.execute(query):
                    found[row[0]] = FileRecord(*row)
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
        if filters.uses_facts() and self.schema_version < FACTS_SINCE:
            raise VitrieveError(
                "this library has no places or cameras yet: run `vitrieve index` on it once "
                "with this vitrieve (its photos' EXIF is read again; nothing is re-embedded)"
            )
        query = select(FileRow.id).where(*filter_conditions(filters)).order_by(FileRow.id)
        with self.session() as session:
            return np.fromiter(session.scalars(query), dtype=np.int64)

    def status_counts(self) -> dict[str, int]:
        """Number of files per status (every status present, zeros included)."""
        query = select(FileRow.status, func.count()).group_by(FileRow.status)
        with self.session() as session:
            counts = dict(session.execute(query).all())
        return {s: int(counts.get(s, 0)) for s in STATUSES}

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
                for chunk in _chunks(sorted({v["file_id"] for v in values})):
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
            batches = [query.where(LabelRow.file_id.in_(c)) for c in _chunks([int(i) for i in ids])]
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
        width = len(RECORD_COLUMNS)
        query = select(*RECORD_COLUMNS, LabelRow.label_set, LabelRow.label, LabelRow.score)
        query = query.outerjoin(LabelRow, LabelRow.file_id == FileRow.id)
        records: dict[int, FileRecord] = {}
        labels: dict[int, list[Label]] = {}
        with self.session() as session:
            for chunk in _chunks([int(i) for i in ids]):
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


def _best_first(labels: dict[int, list[Label]]) -> dict[int, list[Label]]:
    return {k: sorted(v, key=lambda x: -x.score) for k, v in labels.items()}
