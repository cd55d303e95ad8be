"""A library directory on disk: its files, ``library.json``, and the single-writer lock.

::

    LIB/library.json       model reference and id, index kind, generation, versions
    LIB/library.db         SQLite metadata (unless a database URL is given)
    LIB/vectors.faiss      the searchable index (the active generation)
    LIB/vectors.next.faiss an index being built for another model (switched in when complete)
    LIB/staging/gN/        vectors committed with their rows but not yet merged into an index
    LIB/models/<model id>/ the checkpoint each generation was embedded with (hard links or a copy:
                           retraining or resuming into the run folder it came from leaves the
                           library searchable)
    LIB/thumbs/            WebP thumbnails, ``thumbs/<id // 1000>/<id>.webp``

The default library of a photo folder ``PHOTOS`` is ``PHOTOS/.vitrieve``; ``locate_library`` is
the one place that decides which folder a path given by a user means.
"""

from __future__ import annotations

import fcntl
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from encoders.atomic import TEMP_PATTERN, atomic_write_bytes
from encoders.errors import VitrieveError

MANIFEST_FILE = "library.json"
VECTORS_FILE = "vectors.faiss"
NEXT_VECTORS_FILE = "vectors.next.faiss"
MODELS_DIR = "models"
LIBRARY_VERSION = 1
DEFAULT_LIBRARY_DIR = ".vitrieve"


@dataclass
class Generation:
    """One index built with one model. Generations count up; the highest is the newest."""

    generation: int
    model_ref: str  # what the user passed to --model (checkpoint directory or name)
    model_id: str  # the weights' content id: decides whether re-embedding is needed
    embed_dim: int
    index_kind: str = "auto"  # what was asked for ("auto" decides by size)
    built_kind: str = ""  # what the index file holds now ("flat", "ivfpq", "hnsw")


@dataclass
class Manifest:
    """The contents of ``library.json``."""

    root: str  # the photo folder (absolute)
    active: Generation | None = None
    building: Generation | None = None  # a new model's index under construction
    switching: bool = False  # set while vectors.next.faiss is being renamed over vectors.faiss
    database: str | None = None  # a URL when the metadata is not the local SQLite file
    version: int = LIBRARY_VERSION
    versions: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        gens = {k: Generation(**data[k]) if data.get(k) else None for k in ("active", "building")}
        rest = {k: v for k, v in data.items() if k not in ("active", "building")}
        return cls(**rest, **gens)


def locate_library(path: Path | str | None = None, *, new: bool = False) -> Path:
    """The library a user means by ``path`` (None: the current folder), resolved: ``path``
    itself when it holds ``library.json``, else its photo-folder library ``path/.vitrieve``.

    ``new=True`` is for a library that indexing may be about to make (``index``, an indexing
    job, the UI's job file): when neither holds a library yet, ``path/.vitrieve`` if that
    folder exists (a first run under way), else ``path`` itself. Without it, no library there
    is a VitrieveError. Every command, engine, job, server and page asks this function."""
    path = Path.cwd() if path is None else Path(path).expanduser()
    nested = path / DEFAULT_LIBRARY_DIR
    for candidate in (path, nested):
        if (candidate / MANIFEST_FILE).is_file():
            return candidate.resolve()
    if not new:
        raise VitrieveError(
            f"no library at {path} (no {MANIFEST_FILE}): index a photo folder first"
        )
    return (nested if nested.is_dir() else path).resolve()


def read_manifest(library: Path) -> Manifest | None:
    """The manifest of ``library``, or None when there is no library there yet."""
    path = library / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        manifest = Manifest.from_dict(data)
    except (OSError, ValueError, TypeError) as exc:
        raise VitrieveError(f"cannot read {path}: {exc}") from exc
    if manifest.version > LIBRARY_VERSION:
        raise VitrieveError(f"{path} is from a newer vitrieve (library version {manifest.version})")
    return manifest


def write_manifest(library: Path, manifest: Manifest) -> None:
    """Replace ``library.json`` atomically (``encoders.atomic``)."""
    atomic_write_bytes(library / MANIFEST_FILE, manifest.to_json().encode("utf-8"))


THUMB_SCRATCH = "thumbs/.partial"  # temporary thumbnail files (a dot folder: never an id's)


def remove_temporaries(library: Path) -> list[str]:
    """Delete what atomic writes of a killed run left behind (an index-sized temporary file
    per kill during a FAISS save) in the library folder and its staging folders; returns
    their names. Call it holding the writer lock. Only the writer's own files count: a reader
    may be writing its calibration beside them. Thumbnails are written through one scratch
    folder (``THUMB_SCRATCH``), so the thousands of thumbnail folders are never walked."""
    owned = "|".join(re.escape(n) for n in (MANIFEST_FILE, VECTORS_FILE, NEXT_VECTORS_FILE))
    patterns = [(library, re.compile(rf"^\.({owned}){TEMP_PATTERN}$"))]
    patterns.append((library / THUMB_SCRATCH, re.compile(rf"^\.\d+\.webp{TEMP_PATTERN}$")))
    staged = re.compile(rf"^\..+\.npz{TEMP_PATTERN}$")
    patterns += [(folder, staged) for folder in sorted((library / "staging").glob("g*"))]
    removed = []
    for folder, pattern in patterns:
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if pattern.match(path.name) and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path.name)
    return removed


def vectors_path(library: Path, building: bool = False) -> Path:
    return library / (NEXT_VECTORS_FILE if building else VECTORS_FILE)


def model_path(library: Path, model_id: str) -> Path:
    """The library's own copy of the checkpoint with content id ``model_id``."""
    return library / MODELS_DIR / model_id


def staging_dir(library: Path, generation: int) -> Path:
    return library / "staging" / f"g{generation}"


def thumb_relpath(file_id: int) -> str:
    return f"thumbs/{file_id // 1000}/{file_id}.webp"


def write_thumbnail(library: Path, file_id: int, data: bytes) -> None:
    """Store a file's thumbnail atomically (no fsync: it can be remade); a killed write
    leaves its temporary file in ``THUMB_SCRATCH``, which ``remove_temporaries`` sweeps."""
    target = library / thumb_relpath(file_id)
    atomic_write_bytes(target, data, fsync=False, scratch=library / THUMB_SCRATCH)


@contextmanager
def writer_lock(library: Path) -> Iterator[None]:
    """Hold the library's writer lock: two indexing runs on one library would corrupt it."""
    library.mkdir(parents=True, exist_ok=True)
    with open(library / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise VitrieveError(f"{library} is being indexed by another process") from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
