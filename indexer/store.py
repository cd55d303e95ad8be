"""MetadataStore: the SQL side of a library (SQLite in WAL mode by default, PostgreSQL by URL).

Queries are built with SQLAlchemy expressions (bound parameters, never string-built SQL).
Id lists are chunked so that a 100k-file library stays under every driver's parameter limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, and_, create_engine, delete, event, exists, func, insert, select
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session, sessionmaker

from encoders.errors import VitrieveError
from indexer.schema import EmbeddingRow, FileRow, LabelRow, migrate

DB_FILE = "library.db"
_CHUNK = 5000  # ids per IN (...) clause


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


def _record(row: FileRow) -> FileRecord:
    return FileRecord(**{name: getattr(row, name) for name in _RECORD_FIELDS})


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield [int(i) for i in ids[start : start + _CHUNK]]


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (search, UI) never block the indexer
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: consistent after any crash
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class MetadataStore:
    """Files, embeddings metadata and labels of one library."""

    def __init__(self, url: str) -> None:
        try:
            self.engine: Engine = create_engine(url, pool_pre_ping=True)
        except Exception as exc:  # bad URL or missing driver: one clear message
            raise VitrieveError(f"cannot use database {url!r}: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        try:
            with self.engine.begin() as connection:
                self.schema_version = migrate(connection)
        except VitrieveError:
            raise
        except Exception as exc:
            raise VitrieveError(f"cannot open database {self.url}: {exc}") from exc

    @classmethod
    def for_library(cls, library: Path, url: str | None = None) -> MetadataStore:
        """The store of a library directory: ``url`` if given, else ``library/library.db``."""
        return cls(url or f"sqlite:///{(library / DB_FILE).resolve()}")

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def session(self) -> Session:
        return self._session()

    def close(self) -> None:
        self.engine.dispose()

    # --- what the scanner and pipeline use -------------------------------------------------

    def all_files(self) -> list[FileRecord]:
        """Every row, deleted ones included (the scanner compares them with the disk)."""
        with self.session() as session:
            return [_record(r) for r in session.scalars(select(FileRow))]

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
                stale.update(dict(rows.tuples().all()))
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
            return [(int(i), p) for i, p in session.execute(query).tuples()]

    def record_batch(
        self,
        generation: int,
        model_id: str,
        indexed: Sequence[dict],
        failed: Sequence[tuple[int, str]],
        active: bool,
    ) -> None:
        """One atomic commit: decoded facts + embeddings rows for ``indexed``, reasons for
        ``failed``. Rows become ``indexed`` now if ``generation`` is the active one."""
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
                    [{"id": i, "status": "failed", "error": reason[:2000]} for i, reason in failed],
                )

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

    # --- what retrieval, status and zero-shot use ------------------------------------------

    def get_files(self, ids: Sequence[int] | np.ndarray) -> list[FileRecord]:
        """Rows for ``ids``, in the given order (ids without a row are left out)."""
        ids = [int(i) for i in ids]
        found: dict[int, FileRecord] = {}
        with self.session() as session:
            for chunk in _chunks(ids):
                for row in session.scalars(select(FileRow).where(FileRow.id.in_(chunk))):
                    found[row.id] = _record(row)
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
            counts = dict(session.execute(query).tuples().all())
        return {s: int(counts.get(s, 0)) for s in ("pending", "indexed", "failed", "deleted")}

    def failures(self, limit: int | None = None) -> list[tuple[str, str]]:
        """``(path, reason)`` of failed files, by path."""
        query = select(FileRow.path, FileRow.error).where(FileRow.status == "failed")
        with self.session() as session:
            rows = session.execute(query.order_by(FileRow.path).limit(limit)).tuples()
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
        self, label_set: str, ids: Sequence[int] | None = None
    ) -> dict[int, list[tuple[str, float]]]:
        """Labels of a set per file id, best score first (all files, or only ``ids``)."""
        query = select(LabelRow.file_id, LabelRow.label, LabelRow.score).where(
            LabelRow.label_set == label_set
        )
        batches = (
            [query]
            if ids is None
            else [query.where(LabelRow.file_id.in_(chunk)) for chunk in _chunks(list(ids))]
        )
        out: dict[int, list[tuple[str, float]]] = {}
        with self.session() as session:
            for q in batches:
                for file_id, lab, score in session.execute(q).tuples():
                    out.setdefault(int(file_id), []).append((lab, float(score)))
        return {k: sorted(v, key=lambda x: -x[1]) for k, v in out.items()}

    def label_sets(self) -> list[str]:
        """Names of the label sets stored."""
        with self.session() as session:
            return list(session.scalars(select(LabelRow.label_set).distinct()))
