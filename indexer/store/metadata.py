"""MetadataStore: the SQL side of a library (SQLite in WAL mode by default, PostgreSQL by URL).

Queries are built with SQLAlchemy expressions (bound parameters, never string-built SQL).
Id lists are chunked so that a 100k-file library stays under every driver's parameter limit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np
from sqlalchemy import URL, Engine, create_engine, delete, event, exists, insert, select
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session, sessionmaker

from encoders.errors import VitrieveError
from indexer.store.queries import CHUNK as _CHUNK
from indexer.store.queries import FileRecord, StoreQueries
from indexer.store.queries import chunks as _chunks
from indexer.store.queries import to_record as _record
from indexer.store.schema import EmbeddingRow, FileRow, LabelRow, current_version, migrate

__all__ = ["DB_FILE", "FileRecord", "MetadataStore"]

DB_FILE = "library.db"
log = logging.getLogger(__name__)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (search, UI) never block the indexer
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: consistent after any crash
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_url(db: Path, read_only: bool = False) -> URL:
    """The SQLite URL of ``db``, built from parts: a folder named ``50%`` or ``a#b`` is a
    path, not URL syntax. ``read_only``: open without writing anything beside the file — on
    a read-only file system WAL mode cannot create its ``-shm`` file, so the file is opened
    immutable (no locks; a write-ahead log left by an unfinished run is not read)."""
    if not read_only:
        return URL.create("sqlite", database=str(db))
    wal = db.with_name(db.name + "-wal")
    if wal.exists() and wal.stat().st_size:
        log.warning("%s exists: its last changes are not visible to a read-only open", wal)
    uri = f"file:{quote(db.as_posix(), safe='/')}?mode=ro&immutable=1"  # SQLite URI escapes
    return URL.create("sqlite", database=uri, query={"uri": "true"})


class MetadataStore(StoreQueries):
    """Files, embeddings metadata and labels of one library (writes here, reads in
    ``StoreQueries``)."""

    def __init__(self, url: str | URL, read_only: bool = False) -> None:
        """``read_only``: never write (SQLite URLs built by ``for_library`` open the file
        immutable); the schema must then be current already."""
        try:
            self.engine: Engine = create_engine(url, pool_pre_ping=True)
        except Exception as exc:  # bad URL or missing driver: one clear message
            raise VitrieveError(f"cannot use database {url!r}: {exc}") from exc
        if self.engine.dialect.name == "sqlite" and not read_only:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self.read_only = read_only
        try:
            with self.engine.begin() as connection:
                self.schema_version = (
                    current_version(connection) if read_only else migrate(connection)
                )
        except VitrieveError:
            raise
        except Exception as exc:
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]  # no SQLAlchemy help
            raise VitrieveError(f"cannot open database {self.url}: {reason}") from exc

    @classmethod
    def for_library(
        cls, library: Path, url: str | None = None, read_only: bool = False
    ) -> MetadataStore:
        """The store of a library directory: ``url`` if given, else ``library/library.db``."""
        if url is None:
            return cls(_sqlite_url((library / DB_FILE).resolve(), read_only), read_only)
        return cls(url, read_only)

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
