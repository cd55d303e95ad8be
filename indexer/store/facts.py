"""Where, when and with what each photo was taken, in the store: the backfill's reads and
writes, and the facts a results page shows.

The indexer writes these columns with each batch (``MetadataStore.record_batch``); a library
indexed before they existed (schema < 3) gets them from ``facts_todo`` / ``write_facts`` on
its next run, which read the EXIF again without re-embedding anything. A read-only library of
an older schema has none: ``read_facts`` answers nothing for it rather than failing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
from sqlalchemy import func, or_, select
from sqlalchemy import update as sql_update

from indexer.store.metadata import MetadataStore
from indexer.store.queries import chunks
from indexer.store.schema import FACTS_SINCE, FileRow


@dataclass(frozen=True)
class PhotoPlace:
    """The stored facts of one file (every field None when unknown)."""

    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    lens: str | None = None
    utc_offset_minutes: int | None = None
    city: str | None = None
    region_code: str | None = None
    country_code: str | None = None
    place_geonameid: int | None = None

    @property
    def camera(self) -> str | None:
        """ "Apple iPhone 14": the make, and the model unless it repeats the make."""
        make, model = self.camera_make, self.camera_model
        if make and model and model.lower().startswith(make.lower()):
            return model
        return " ".join(part for part in (make, model) if part) or None


_COLUMNS = tuple(getattr(FileRow, f.name) for f in fields(PhotoPlace))


def _outdated(version: int) -> list:
    outdated = or_(FileRow.facts_version.is_(None), FileRow.facts_version < version)
    return [FileRow.status == "indexed", outdated]


def count_facts_todo(store: MetadataStore, version: int) -> int:
    """How many indexed rows have facts older than ``version`` (or none read yet)."""
    with store.session() as session:
        return int(session.scalar(select(func.count()).where(*_outdated(version))) or 0)


def facts_todo(
    store: MetadataStore, version: int, after: int = 0, limit: int = 500
) -> list[tuple[int, str]]:
    """``(id, path)`` of indexed rows whose facts are older than ``version`` (or were never
    read), with ids above ``after``, in id order: one page of the backfill."""
    query = (
        select(FileRow.id, FileRow.path)
        .where(*_outdated(version), FileRow.id > after)
        .order_by(FileRow.id)
        .limit(limit)
    )
    with store.session() as session:
        return [(int(i), p) for i, p in session.execute(query)]


def write_facts(store: MetadataStore, rows: Sequence[dict]) -> None:
    """Bulk updates by id (each dict has ``id`` and the fact columns to set), one transaction."""
    if rows:
        with store.session() as session, session.begin():
            session.execute(sql_update(FileRow), list(rows))


def read_facts(store: MetadataStore, ids: Sequence[int] | np.ndarray) -> dict[int, PhotoPlace]:
    """The facts of ``ids`` that have any (a read-only library of an older schema: none)."""
    if store.schema_version < FACTS_SINCE:
        return {}
    out: dict[int, PhotoPlace] = {}
    with store.session() as session:
        for chunk in chunks([int(i) for i in ids]):
            query = select(FileRow.id, *_COLUMNS).where(FileRow.id.in_(chunk))
            for file_id, *values in session.execute(query):
                if any(value is not None for value in values):
                    out[int(file_id)] = PhotoPlace(*values)
    return out
