"""Walk a photo folder and compare it with what the store knows: new, changed, moved, deleted.

Cheap facts first: a file whose size and mtime match its row is unchanged without being read.
Content hashes (SHA-256 of the whole file) are computed only to confirm a change when the row
has a hash, and to recognise moves: a new path is hashed only when a vanished file had the
same size.

The hash is SHA-256: CPUs with SHA-NI hash it in hardware (docs/decisions.md).

Symlinks are never followed, to files or to folders: a link cannot loop the walk, cannot pull
files from outside the root into the library, and cannot index the same photo twice. They are
listed in ``ScanResult.skipped``. Hidden files and folders (a leading dot: ``.git``, ``._IMG``
AppleDouble files, ``.vitrieve``) and the library's own folder are skipped.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from indexer.decode.images import IMAGE_SUFFIXES, looks_like_image

log = logging.getLogger(__name__)

HASH_CHUNK = 1 << 20
HASH = "sha256"  # what decoding stores


class Known(Protocol):
    """What the scanner needs of a stored row (``store.FileRecord`` fits)."""

    id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str | None
    status: str


@dataclass(frozen=True)
class FoundFile:
    """A file on disk: POSIX path relative to the root, size in bytes, mtime in ns."""

    path: str
    size: int
    mtime_ns: int


@dataclass
class ScanResult:
    new: list[FoundFile] = field(default_factory=list)
    changed: list[tuple[int, FoundFile]] = field(default_factory=list)  # (row id, file)
    touched: list[tuple[int, FoundFile]] = field(default_factory=list)  # same content, new mtime
    unchanged: list[int] = field(default_factory=list)
    moved: list[tuple[int, FoundFile]] = field(default_factory=list)  # (row id, new place)
    deleted: list[int] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    skipped: list[str] = field(default_factory=list)  # symlinks

    @property
    def found(self) -> int:
        return (
            len(self.new)
            + len(self.changed)
            + len(self.touched)
            + len(self.unchanged)
            + len(self.moved)
        )


def hash_bytes(data: bytes) -> str:
    """The content hash of a file's bytes (hex), as stored in ``files.content_hash``."""
    return hashlib.new(HASH, data).hexdigest()


def content_hash(path: Path) -> str:
    """The content hash of a file (hex), read in chunks."""
    digest = hashlib.new(HASH)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def walk(
    root: Path, exclude: Iterable[Path] = (), result: ScanResult | None = None
) -> Iterator[FoundFile]:
    """Image files under ``root`` (by suffix, or by content for other suffixes), sorted.

    Folders that cannot be listed and files that cannot be stat-ed go to
    ``result.unreadable``; symlinks to ``result.skipped``.
    """
    result = result if result is not None else ScanResult()
    excluded = {os.path.realpath(p) for p in exclude}
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            result.unreadable.append((_relative(root, Path(folder)) + "/", _reason(exc)))
            continue
        subfolders = []
        for entry in entries:
            found = _visit(root, entry, excluded, result, subfolders)
            if found is not None:
                yield found
        stack.extend(reversed(subfolders))


def _visit(
    root: Path, entry: os.DirEntry, excluded: set[str], result: ScanResult, subfolders: list
) -> FoundFile | None:
    if entry.name.startswith("."):
        return None
    relative = _relative(root, Path(entry.path))
    try:
        if entry.is_symlink():
            result.skipped.append(relative)
            return None
        info = entry.stat(follow_symlinks=False)
    except OSError as exc:
        result.unreadable.append((relative, _reason(exc)))
        return None
    if stat.S_ISDIR(info.st_mode):
        if os.path.realpath(entry.path) not in excluded:
            subfolders.append(Path(entry.path))
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    is_image = Path(entry.name).suffix.lower() in IMAGE_SUFFIXES or (
        info.st_size > 0 and looks_like_image(Path(entry.path))
    )
    return FoundFile(relative, info.st_size, info.st_mtime_ns) if is_image else None


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def scan(root: Path, known: Iterable[Known], exclude: Iterable[Path] = ()) -> ScanResult:
    """Compare the files under ``root`` with the stored rows ``known``."""
    result = ScanResult()
    rows = {row.path: row for row in known}
    seen: set[str] = set()
    for found in walk(root, exclude, result):
        seen.add(found.path)
        row = rows.get(found.path)
        if row is None or row.status == "deleted":
            result.new.append(found)
        elif row.size == found.size and row.mtime_ns == found.mtime_ns:
            result.unchanged.append(row.id)
        else:
            _classify_change(root, row, found, result)
    vanished = [r for p, r in rows.items() if p not in seen and r.status != "deleted"]
    _match_moves(root, vanished, result)
    return result


def _classify_change(root: Path, row: Known, found: FoundFile, result: ScanResult) -> None:
    """Size or mtime differ: a new mtime over the same bytes is only a touch."""
    if row.content_hash and row.size == found.size:
        try:
            same = row.content_hash == content_hash(root / found.path)
        except OSError as exc:
            result.unreadable.append((found.path, _reason(exc)))
            return
        if same:
            result.touched.append((row.id, found))
            return
    result.changed.append((row.id, found))


def _match_moves(root: Path, vanished: list[Known], result: ScanResult) -> None:
    """Pair vanished rows with new files of the same size and hash; the rest are deleted."""
    by_size: dict[int, list[Known]] = defaultdict(list)
    for row in vanished:
        if row.content_hash:
            by_size[row.size].append(row)
    matched: set[int] = set()
    still_new = []
    for found in result.new:
        candidates = [r for r in by_size.get(found.size, ()) if r.id not in matched]
        if not candidates:
            still_new.append(found)
            continue
        try:
            digest = content_hash(root / found.path)
        except OSError:
            still_new.append(found)  # decoding will record why it cannot be read
            continue
        row = next((r for r in candidates if r.content_hash == digest), None)
        if row is None:
            still_new.append(found)
        else:
            matched.add(row.id)
            result.moved.append((row.id, found))
    result.new = still_new
    result.deleted = [r.id for r in vanished if r.id not in matched]
