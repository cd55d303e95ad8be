"""One open library for a long-running process, reopened when indexing rewrote it.

The API server and the UI both hold a library for hours while ``vitrieve index`` (or an
indexing job) rewrites it. A ``LibraryHandle`` keeps one open ``Library``; ``current()`` opens
it again when its files changed (manifest, vectors, database), reusing the loaded model while
the library's model is the same, and closes the library it replaces. A reader that still holds
the replaced library finishes on it: the FAISS file is replaced atomically, SQLite readers use
WAL, and closing the store only drops its idle connections.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from encoders.errors import VitrieveError
from encoders.runtime.device import DEFAULT_DEVICE
from indexer.layout import MANIFEST_FILE, VECTORS_FILE, locate_library, read_manifest
from indexer.store.metadata import DB_FILE

if TYPE_CHECKING:
    from retrieval.library.handle import Library

log = logging.getLogger(__name__)


class LibraryUnavailable(VitrieveError):
    """The library changed on disk and could not be opened again (the log has why); its
    message is the handle's name."""


def library_version(path: Path) -> tuple[float, ...]:
    """Changes whenever indexing rewrote the library at ``path`` (its manifest, vectors or
    database)."""
    names = (MANIFEST_FILE, VECTORS_FILE, DB_FILE)
    return tuple((path / n).stat().st_mtime if (path / n).exists() else 0.0 for n in names)


class LibraryHandle:
    """The up-to-date ``Library`` at ``path`` (``locate_library``'s reading of it).

    ``name``: what its users call it (an API server's library name; default: its path).
    ``warm``: load the model when (re)opening, so that a server's first query after a start or
    a re-index does not pay for it. ``compile``: the model's towers compiled (``ServingConfig``)."""

    def __init__(
        self, path: Path | str, device: str = DEFAULT_DEVICE, name: str | None = None,
        warm: bool = True, compile: bool = False,
    ) -> None:  # fmt: skip
        self.path, self.device, self.warm = locate_library(path), device, warm
        self.compile = compile
        self.name = name if name is not None else str(self.path)
        self._lock = threading.Lock()
        self._version = library_version(self.path)
        self._library = self._open(None)

    def current(self) -> Library:
        """The open library, reopened (same model) when its files changed since."""
        version = library_version(self.path)
        if version == self._version:
            return self._library
        with self._lock:
            if version != self._version:
                log.info("library %s changed on disk: reopening it", self.name)
                try:
                    fresh = self._open(self._library)
                except Exception as exc:  # broken on disk: the reason stays in the log
                    log.exception("library %s cannot be reopened", self.name)
                    raise LibraryUnavailable(self.name) from exc
                replaced, self._library, self._version = self._library, fresh, version
                replaced.close()
        return self._library

    def _open(self, previous: Library | None) -> Library:
        """Open the library; ``previous``'s model is reused while the library's is the same."""
        from retrieval.library.handle import Library

        manifest = read_manifest(self.path)
        active = manifest.active if manifest is not None else None
        encoder = previous.loaded_encoder if previous is not None else None
        if encoder is not None and (active is None or encoder.model_id != active.model_id):
            encoder = None
        library = Library.open(self.path, encoder=encoder, device=self.device, compile=self.compile)
        if self.warm and library.manifest.active is not None:
            library.encoder  # noqa: B018 — load the model now, not on the first query
        return library

    def close(self) -> None:
        self._library.close()
