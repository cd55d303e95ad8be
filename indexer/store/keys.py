"""API keys of a library (the HTTP API's ``Authorization: Bearer KEY``), kept in its database.

A key is 32 random bytes (``vtr_`` + URL-safe base64); only its SHA-256 is stored, so the
database never holds anything that opens the API. SHA-256 rather than a slow password hash:
a key has 256 bits of entropy, nothing a guess could find, and every request checks one.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError

from encoders.errors import VitrieveError
from indexer.store.metadata import MetadataStore
from indexer.store.schema import KEYS_SINCE, ApiKeyRow

log = logging.getLogger(__name__)

KEY_PREFIX = "vtr_"
SHOWN_CHARS = 10  # how much of a key a listing shows ("vtr_AbC123")
MAX_NAME = 128


@dataclass(frozen=True)
class ApiKey:
    """A key's record (never the key itself)."""

    id: int
    name: str
    prefix: str
    read_only: bool
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _record(row: ApiKeyRow) -> ApiKey:
    return ApiKey(row.id, row.name, row.prefix, bool(row.read_only), row.created_at,
                  row.revoked_at)  # fmt: skip


class KeyStore:
    """Create, list, revoke and check the API keys of one library's ``MetadataStore``."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store
        # a read-only library from before the keys table has no keys (and can get none)
        self.has_table = store.schema_version >= KEYS_SINCE

    def create(self, name: str = "", read_only: bool = False) -> tuple[str, ApiKey]:
        """A new key and its record; the key is returned once and never stored."""
        if self.store.read_only:
            raise VitrieveError("the library is read-only: no key can be added to it")
        name = (name or "").strip() or "key"
        if len(name) > MAX_NAME:
            raise VitrieveError(f"a key name is at most {MAX_NAME} characters")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKeyRow(name=name, prefix=key[:SHOWN_CHARS], key_hash=hash_key(key),
                        read_only=read_only, created_at=datetime.now())  # fmt: skip
        with self.store.session() as session, session.begin():
            session.add(row)
            session.flush()
            record = _record(row)
        log.info("created API key %s (%s)", record.id, record.name)
        return key, record

    def list(self) -> list[ApiKey]:
        """Every key of the library, revoked ones included, oldest first."""
        if not self.has_table:
            return []
        with self.store.session() as session:
            return [_record(r) for r in session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id))]

    def revoke(self, ident: str) -> ApiKey:
        """Revoke the key with this id, name or shown prefix (exactly one must match)."""
        matches = [k for k in self.list() if k.active and ident in (str(k.id), k.name, k.prefix)]
        if not matches:
            raise VitrieveError(f"no active key {ident!r} (see vitrieve keys list)")
        if len(matches) > 1:
            raise VitrieveError(f"{len(matches)} keys match {ident!r}: revoke it by id")
        query = update(ApiKeyRow).where(ApiKeyRow.id == matches[0].id)
        with self.store.session() as session, session.begin():
            session.execute(query.values(revoked_at=datetime.now()))
        log.info("revoked API key %s", matches[0].id)
        return [k for k in self.list() if k.id == matches[0].id][0]

    def has_active(self) -> bool:
        """Whether any key is configured (then every request must carry one)."""
        query = select(func.count()).select_from(ApiKeyRow).where(ApiKeyRow.revoked_at.is_(None))
        return bool(self._scalar(query))

    def check(self, key: str) -> ApiKey | None:
        """The active key's record, or None for an unknown or revoked key."""
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        query = select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_key(key),
                                        ApiKeyRow.revoked_at.is_(None))  # fmt: skip
        row = self._scalar(query)
        return _record(row) if row is not None else None

    def _scalar(self, query):
        """One value or row (None without a keys table); a database that cannot answer is
        one clear error."""
        if not self.has_table:
            return None
        try:
            with self.store.session() as session:
                return session.scalar(query)
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise VitrieveError(f"cannot read the library's API keys: {reason}") from exc
