"""One atomic write for every file vitrieve replaces: checkpoints, ``library.json``, vector
indexes, shards, training and job state, thumbnails.

Readers see the old file or the new one, never half of one: the data goes to a temporary file
in the same folder (so the rename stays on one file system), is flushed and fsynced, renamed
over the target with ``os.replace``, and the folder is fsynced so that the rename itself
survives a power cut. A failure at any step removes the temporary file and leaves the target
as it was. It lives in ``encoders``, the lowest layer, because every layer writes files.

Temporary files are named ``.NAME.XXXXXXXX.tmp`` (``TEMP_PATTERN``), which is how
``indexer.layout.remove_temporaries`` recognises what a killed run left behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

TEMP_SUFFIX = ".tmp"
# what follows ``.NAME`` in a temporary file's name: tempfile.mkstemp's eight characters
TEMP_PATTERN = r"\.[A-Za-z0-9_]{8}\.tmp"


def atomic_write(
    target: Path,
    write: Callable[[Path], object],
    *,
    fsync: bool = True,
    scratch: Path | None = None,
) -> None:
    """Replace ``target`` with what ``write(tmp)`` writes to the temporary path ``tmp``.

    For writers that need a path (safetensors, FAISS, parquet). ``fsync=False`` for files that
    can be remade (thumbnails, previews): it survives a killed process, not a power cut, and
    costs no disk flush. ``scratch``: the folder for the temporary file, when not ``target``'s
    own (it must be on the same file system)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(scratch) if scratch is not None else target.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=folder)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        if fsync:
            with tmp.open("rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    if fsync:
        fsync_dir(target.parent)


def atomic_write_bytes(
    target: Path, data: bytes, fsync: bool = True, scratch: Path | None = None
) -> None:
    """Replace ``target`` with ``data`` (see ``atomic_write``)."""
    atomic_write(target, lambda tmp: tmp.write_bytes(data), fsync=fsync, scratch=scratch)


def atomic_write_text(target: Path, text: str, fsync: bool = True) -> None:
    """Replace ``target`` with ``text`` encoded as UTF-8 (see ``atomic_write``)."""
    atomic_write_bytes(target, text.encode("utf-8"), fsync=fsync)


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
