"""Recognised text of a library: one row per text line and one search document per file, with
a substring index: SQLite FTS5 ``trigram`` or PostgreSQL ``pg_trgm`` (GIN).

Documents are stored *folded* (``fold``: lower case, accents and ligatures removed) by Python,
so both databases match "cafe muller" to "Café Müller" the same way and neither needs
``unaccent`` or a diacritics-aware tokenizer (SQLite's trigram ``remove_diacritics`` needs
3.45). The store answers *which files may match* (index lookups); ranking is the
searcher's (``retrieval.search.text_match``).

A file's text is keyed by its file id, which a moved file keeps. A ``text_docs`` row means
"recognised" (``body`` may be empty: no text; ``error`` set: it failed), so an indexing run
recognises only files without one.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, bindparam, text

_LIGATURES = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d",
                            "þ": "th", "ı": "i", "ß": "ss"})  # fmt: skip


def fold(value: str) -> str:
    """Lower case without accents: "Café Müller" -> "cafe muller" (NFKD, marks dropped)."""
    decomposed = unicodedata.normalize("NFKD", value.casefold().translate(_LIGATURES))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@dataclass(frozen=True)
class StoredLine:
    """A text line as stored (the shape of ``indexer.ocr.TextLine``)."""

    text: str
    confidence: float
    polygon: tuple[tuple[float, float], ...]


_SQLITE_DDL = [
    "CREATE TABLE IF NOT EXISTS text_docs (file_id INTEGER PRIMARY KEY, body TEXT NOT NULL,"
    " folded TEXT NOT NULL, error TEXT, recogniser TEXT)",
    "CREATE TABLE IF NOT EXISTS text_lines (file_id INTEGER NOT NULL, line_no INTEGER NOT NULL,"
    " text TEXT NOT NULL, confidence REAL NOT NULL, polygon TEXT NOT NULL,"
    " PRIMARY KEY (file_id, line_no))",
    "CREATE VIRTUAL TABLE IF NOT EXISTS text_fts USING fts5(folded, content='text_docs',"
    " content_rowid='file_id', tokenize='trigram')",
    "CREATE TRIGGER IF NOT EXISTS text_docs_ai AFTER INSERT ON text_docs BEGIN"
    " INSERT INTO text_fts(rowid, folded) VALUES (new.file_id, new.folded); END",
    "CREATE TRIGGER IF NOT EXISTS text_docs_ad AFTER DELETE ON text_docs BEGIN"
    " INSERT INTO text_fts(text_fts, rowid, folded) VALUES ('delete', old.file_id, old.folded);"
    " END",
]
_POSTGRES_DDL = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE TABLE IF NOT EXISTS text_docs (file_id BIGINT PRIMARY KEY, body TEXT NOT NULL,"
    " folded TEXT NOT NULL, error TEXT, recogniser TEXT)",
    "CREATE TABLE IF NOT EXISTS text_lines (file_id BIGINT NOT NULL, line_no INTEGER NOT NULL,"
    " text TEXT NOT NULL, confidence REAL NOT NULL, polygon TEXT NOT NULL,"
    " PRIMARY KEY (file_id, line_no))",
    "CREATE INDEX IF NOT EXISTS text_docs_trgm ON text_docs USING gin (folded gin_trgm_ops)",
]


_INSERT_DOC = text(
    "INSERT INTO text_docs (file_id, body, folded, error, recogniser) VALUES (:f, :b, :d, :e, :r)"
)
_RECOGNISED = text("SELECT file_id FROM text_docs WHERE file_id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)


def halves(term: str) -> list[str]:
    """The two halves of ``term``: a word one edit away from it (a substitution, insertion
    or deletion) still contains one of them whole, so they find its fuzzy candidates."""
    middle = len(term) // 2
    return [term[:middle], term[middle:]]


class TextIndex:
    """Text lines and search documents in the library's database (``engine``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self.ensure_schema()

    def ensure_schema(self) -> None:
        """Create the tables and index if missing (idempotent)."""
        with self.engine.begin() as db:
            for statement in _POSTGRES_DDL if self.postgres else _SQLITE_DDL:
                db.execute(text(statement))

    def put(self, file_id: int, lines: Sequence, recogniser: str = "", error: str | None = None):
        """Replace the text of ``file_id`` with ``lines`` (or record ``error``), atomically."""
        self.put_many([(file_id, lines, error)], recogniser)

    def put_many(self, items: Sequence[tuple[int, Sequence, str | None]], recogniser: str = ""):
        """``put`` for many (file id, lines, error) in one transaction (the indexer's batches:
        one commit per file costs ~25 ms of fsync on SQLite)."""
        docs, rows = [], []
        for file_id, lines, error in items:
            body = "\n".join(line.text for line in lines)
            docs.append({"f": file_id, "b": body, "d": fold(body), "e": error, "r": recogniser})
            rows.extend({"f": file_id, "n": n, "t": line.text, "c": float(line.confidence),
                         "p": json.dumps([list(p) for p in line.polygon])}
                        for n, line in enumerate(lines))  # fmt: skip
        if not docs:
            return
        with self.engine.begin() as db:
            self._delete(db, [d["f"] for d in docs])
            db.execute(_INSERT_DOC, docs)
            if rows:
                db.execute(text("INSERT INTO text_lines VALUES (:f, :n, :t, :c, :p)"), rows)

    def remove(self, file_ids: Iterable[int]) -> None:
        with self.engine.begin() as db:
            self._delete(db, list(file_ids))

    @staticmethod
    def _delete(db, ids: list[int]) -> None:
        if not ids:
            return
        for table in ("text_lines", "text_docs"):
            db.execute(text(f"DELETE FROM {table} WHERE file_id IN :ids")
                       .bindparams(bindparam("ids", expanding=True)), {"ids": ids})  # fmt: skip

    def missing(self, file_ids: Iterable[int]) -> list[int]:
        """Those of ``file_ids`` not recognised yet (no document, not even a failure)."""
        ids = list(file_ids)
        with self.engine.connect() as db:
            done = {r[0] for r in db.execute(_RECOGNISED, {"ids": ids})}
        return [i for i in ids if i not in done]

    def lines(self, file_id: int) -> list[StoredLine]:
        with self.engine.connect() as db:
            rows = db.execute(text("SELECT text, confidence, polygon FROM text_lines WHERE "
                                   "file_id = :f ORDER BY line_no"), {"f": file_id})  # fmt: skip
            return [StoredLine(t, c, tuple(tuple(p) for p in json.loads(poly)))
                    for t, c, poly in rows]  # fmt: skip

    def documents(self, file_ids: Iterable[int]) -> dict[int, str]:
        """The folded document of each of ``file_ids`` that has text."""
        ids = list(file_ids)
        if not ids:
            return {}
        with self.engine.connect() as db:
            rows = db.execute(text("SELECT file_id, folded FROM text_docs WHERE file_id IN :ids "
                                   "AND folded != ''").bindparams(bindparam("ids", expanding=True)),
                              {"ids": ids})  # fmt: skip
            return dict(rows.all())

    def candidates(self, groups: Sequence[Sequence[str]], limit: int = 5000) -> dict[int, str]:
        """Files whose folded text contains, for every group of ``groups``, one of its needles
        (already folded), with that text: one index query (FTS5 trigram MATCH, or pg_trgm
        GIN behind LIKE), so a query costs one round trip whatever its number of words."""
        groups = [[n for n in (n.strip() for n in g) if n] for g in groups]
        if not groups or not all(groups):
            return {}
        needles = [n for g in groups for n in g]
        if self.postgres or min(len(n) for n in needles) < 3:  # FTS5 trigram needs 3 chars
            params, clauses = {}, []
            for group in groups:
                ors = []
                for needle in group:
                    params[f"p{len(params)}"] = "%" + _escape(needle) + "%"
                    ors.append(f"folded LIKE :p{len(params) - 1} ESCAPE '\\'")
                clauses.append("(" + " OR ".join(ors) + ")")
            where = " AND ".join(clauses)
            sql = f"SELECT file_id, folded FROM text_docs WHERE {where} LIMIT {int(limit)}"
        else:
            quoted = ["(" + " OR ".join('"' + n.replace('"', '""') + '"' for n in g) + ")"
                      for g in groups]  # fmt: skip
            params = {"q": " AND ".join(quoted)}
            sql = (
                "SELECT d.file_id, d.folded FROM text_fts JOIN text_docs d ON d.file_id = "
                f"text_fts.rowid WHERE text_fts MATCH :q LIMIT {int(limit)}"
            )
        with self.engine.connect() as db:
            return dict(db.execute(text(sql), params).all())

    def count(self) -> int:
        with self.engine.connect() as db:
            return int(db.execute(text("SELECT count(*) FROM text_docs")).scalar_one())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
