"""The connection of a library's metadata store: the engine, its sessions and the schema check.

SQLite in WAL mode by default (``library.db`` in the library folder), PostgreSQL by URL. A
writable database is migrated to the current schema when opened; a read-only one must be
readable as it is (``schema.current_version``).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import URL, Engine, create_engine, event
from sqlalchemy.orm import sessionmaker

from encoders.errors import VitrieveError
from indexer.store.schema import current_version, migrate

DB_FILE = "library.db"
log = logging.getLogger(__name__)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (search, UI) never block the indexer
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: consistent after any crash
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


# What the "near" filter computes in SQL (``queries``): SQLite has these built in only where it
# was compiled with SQLITE_ENABLE_MATH_FUNCTIONS; elsewhere Python's stand in.
_MATH = {"radians": (1, math.radians), "sin": (1, math.sin), "cos": (1, math.cos),
         "pow": (2, math.pow)}  # fmt: skip


def _sqlite_math(dbapi_connection, _record) -> None:
    try:
        dbapi_connection.execute("SELECT radians(0), sin(0), cos(0), pow(2, 2)").fetchall()
    except Exception:  # no such function: this SQLite was built without them
        for name, (arity, function) in _MATH.items():
            dbapi_connection.create_function(name, arity, _null_safe(function), deterministic=True)


def _null_safe(function):
    """SQL NULL in, NULL out (a row without a position), as the built-in functions do."""
    return lambda *args: None if None in args else function(*args)


def sqlite_url(db: Path, read_only: bool = False) -> URL:
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


def library_url(library: Path, url: str | None = None, read_only: bool = False) -> str | URL:
    """The database of a library directory: ``url`` if given, else ``library/library.db``."""
    return url if url is not None else sqlite_url((library / DB_FILE).resolve(), read_only)


class Database:
    """An engine with its session factory, the schema brought to (or checked at) the current
    version when opened."""

    def __init__(self, url: str | URL, read_only: bool = False) -> None:
        """``read_only``: never write (SQLite URLs built by ``library_url`` open the file
        immutable); the schema must then be current already."""
        try:
            self.engine: Engine = create_engine(url, pool_pre_ping=True)
        except Exception as exc:  # bad URL or missing driver: one clear message
            raise VitrieveError(f"cannot use database {url!r}: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_math)
            if not read_only:
                event.listen(self.engine, "connect", _sqlite_pragmas)
        self.session = sessionmaker(self.engine, expire_on_commit=False)
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

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def analyze(self) -> None:
        """Refresh the query planner's statistics (after an indexing run changed rows).

        Without them SQLite picks an index by shape alone: for "near a point" it took the
        index on ``status`` (every indexed row) over the one on the position, 3× slower on
        100k rows; with them it takes the position's (measured in docs/decisions.md, issue 26).
        ~0.1 s per 100k rows; PostgreSQL samples the table."""
        statement = "ANALYZE" if self.engine.dialect.name == "sqlite" else "ANALYZE files"
        with self.engine.begin() as connection:
            connection.exec_driver_sql(statement)

    def close(self) -> None:
        self.engine.dispose()
