"""SQL tables of a library (SQLAlchemy 2 ORM) and their versioned migrations.

A file's primary key is also its vector id in FAISS, so ids are never reused for other content:
a moved file keeps its row (and vector and labels); a deleted file keeps its row as ``deleted``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    inspect,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from encoders.errors import VitrieveError

STATUSES = ("pending", "indexed", "failed", "deleted")


class Base(DeclarativeBase):
    pass


class FileRow(Base):
    """One file under the library root. ``id`` is the FAISS vector id.

    Where and with what a photo was taken (schema 3, ``decode.photo_facts``): the EXIF GPS
    position, camera and lens, the UTC offset of ``taken_at``, and the nearest city of the
    position with its region and country (``places.reverse``). ``facts_version`` says which
    version of that reading a row has had (NULL: none yet; a backfill reads those again)."""

    __tablename__ = "files"
    __table_args__ = (
        Index("ix_files_country_region", "country_code", "region_code"),
        Index("ix_files_position", "latitude", "longitude"),
        {"sqlite_autoincrement": True},  # never reuse an id: it names a vector
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True)  # POSIX, relative to the library root
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String(16), index=True)
    taken_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    thumb: Mapped[str | None] = mapped_column(Text)  # relative to the library directory
    indexed_at: Mapped[datetime | None] = mapped_column(DateTime)
    latitude: Mapped[float | None] = mapped_column(Float)  # degrees, north positive
    longitude: Mapped[float | None] = mapped_column(Float)  # degrees, east positive
    altitude: Mapped[float | None] = mapped_column(Float)  # metres above sea level
    camera_make: Mapped[str | None] = mapped_column(String(64))
    camera_model: Mapped[str | None] = mapped_column(String(64))
    lens: Mapped[str | None] = mapped_column(String(160))
    utc_offset_minutes: Mapped[int | None] = mapped_column(Integer)  # of ``taken_at``
    city: Mapped[str | None] = mapped_column(Text)  # the nearest shipped city's name
    region_code: Mapped[str | None] = mapped_column(String(20))  # GeoNames admin1 code
    # ISO 3166-1; indexed with ``region_code`` (the pair's index serves country alone too)
    country_code: Mapped[str | None] = mapped_column(String(2))
    place_geonameid: Mapped[int | None] = mapped_column(BigInteger)
    facts_version: Mapped[int | None] = mapped_column(Integer)


# The columns schema 3 added to ``files`` (all nullable: an upgraded library fills them later).
FACT_COLUMNS = (
    "latitude", "longitude", "altitude", "camera_make", "camera_model", "lens",
    "utc_offset_minutes", "city", "region_code", "country_code", "place_geonameid",
    "facts_version",
)  # fmt: skip


class EmbeddingRow(Base):
    """File ``file_id`` has a vector (id = file id) in index generation ``generation``."""

    __tablename__ = "embeddings"

    file_id: Mapped[int] = mapped_column(
        ForeignKey("files.id", ondelete="CASCADE"), primary_key=True
    )
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class LabelRow(Base):
    """A zero-shot label of a file within a named label set (one row per label and score)."""

    __tablename__ = "labels"
    __table_args__ = (Index("ix_labels_set_label", "label_set", "label"),)

    file_id: Mapped[int] = mapped_column(
        ForeignKey("files.id", ondelete="CASCADE"), primary_key=True
    )
    label_set: Mapped[str] = mapped_column(String(128), primary_key=True)
    label: Mapped[str] = mapped_column(String(256), primary_key=True)
    score: Mapped[float] = mapped_column(Float)


class ApiKeyRow(Base):
    """An HTTP API key of this library (``vitrieve keys``): only its SHA-256 is kept, never
    the key; ``prefix`` is its first characters, so a listing can tell keys apart."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    read_only: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)


class SchemaVersion(Base):
    """The single row says which migrations have been applied."""

    __tablename__ = "schema_version"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)


def _migrate_to_1(connection: Connection) -> None:
    """Version 1: files, embeddings, labels (created from the ORM models above)."""
    Base.metadata.create_all(
        connection,
        tables=[FileRow.__table__, EmbeddingRow.__table__, LabelRow.__table__],
    )


def _migrate_to_2(connection: Connection) -> None:
    """Version 2: the HTTP API's keys (``api_keys``)."""
    Base.metadata.create_all(connection, tables=[ApiKeyRow.__table__])


def _migrate_to_3(connection: Connection) -> None:
    """Version 3: where, when and with what (``FACT_COLUMNS``) and their indexes.

    A database created at version 3 already has them (version 1 creates ``files`` from the
    model above): only the missing columns are added, each as ``ALTER TABLE ... ADD COLUMN``
    (nullable, no default: instant on SQLite and PostgreSQL whatever the table's size)."""
    table = FileRow.__table__
    present = {column["name"] for column in inspect(connection).get_columns(table.name)}
    preparer = connection.dialect.identifier_preparer
    for name in FACT_COLUMNS:
        if name not in present:
            column = table.c[name]
            kind = column.type.compile(dialect=connection.dialect)
            connection.exec_driver_sql(
                f"ALTER TABLE {preparer.quote(table.name)} ADD COLUMN {preparer.quote(name)} {kind}"
            )
    for index in table.indexes:
        if set(index.columns.keys()) & set(FACT_COLUMNS):
            index.create(connection, checkfirst=True)


# One function per schema version, applied in order; never edit a released one, add the next.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    1: _migrate_to_1,
    2: _migrate_to_2,
    3: _migrate_to_3,
}
SCHEMA_VERSION = max(MIGRATIONS)
# The oldest schema a read-only library is read with as it is: the migrations after it only
# added what reading does without (version 2's API keys: a library without them has none;
# version 3's facts: a library without them has no places or cameras to filter by).
READABLE_SINCE = 1
KEYS_SINCE = 2  # the schema version that has the ``api_keys`` table
FACTS_SINCE = 3  # the schema version that has ``FACT_COLUMNS``


def current_version(connection: Connection) -> int:
    """The schema version of a database that must not be written (a read-only library):
    VitrieveError unless this vitrieve can read it as it is (``READABLE_SINCE`` onwards)."""
    try:
        current = connection.execute(select(SchemaVersion.version)).scalar() or 0
    except Exception as exc:  # no version table: not (yet) a library database
        raise VitrieveError("the read-only library's database has no schema version") from exc
    if not READABLE_SINCE <= current <= SCHEMA_VERSION:
        raise VitrieveError(
            f"the library is read-only and its schema is version {current}, not "
            f"{SCHEMA_VERSION}: open it once where it can be written to upgrade it"
        )
    return current


def migrate(connection: Connection) -> int:
    """Bring the schema to ``SCHEMA_VERSION`` inside the caller's transaction; return it."""
    SchemaVersion.__table__.create(connection, checkfirst=True)
    current = connection.execute(select(SchemaVersion.version)).scalar() or 0
    if current > SCHEMA_VERSION:
        raise VitrieveError(
            f"library schema version {current} is newer than this vitrieve ({SCHEMA_VERSION})"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        MIGRATIONS[version](connection)
    if current != SCHEMA_VERSION:
        connection.execute(SchemaVersion.__table__.delete())
        connection.execute(SchemaVersion.__table__.insert().values(version=SCHEMA_VERSION))
    return SCHEMA_VERSION
