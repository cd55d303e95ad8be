"""The libraries a server answers for, each reopened when indexing rewrote it.

A ``LibraryHandle`` keeps one open ``Library`` and its model; when indexing replaced the
library's files (manifest, vectors, database) it opens the library again with the same model,
as the UI does, so searches see the new index without a restart. A reader holding the old
handle finishes on it: the FAISS file is replaced atomically and SQLite readers use WAL.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from encoders.errors import VitrieveError
from encoders.runtime.device import DEFAULT_DEVICE
from indexer.layout import read_manifest
from indexer.store.keys import KeyStore
from retrieval.library.handle import Library, find_library, library_version

log = logging.getLogger(__name__)

NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class LibraryUnavailable(Exception):
    """The library could not be (re)opened: the server's log has why; a client gets 503."""


class LibraryHandle:
    """One served library, by name: ``current()`` is its up-to-date ``Library``."""

    def __init__(self, name: str, path: Path, device: str = DEFAULT_DEVICE) -> None:
        self.name, self.device = name, device
        self.path = find_library(Path(path))
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
                try:
                    self._library = self._reopen()
                except Exception as exc:  # broken on disk: the reason stays in the log
                    log.exception("library %s cannot be reopened", self.name)
                    raise LibraryUnavailable(self.name) from exc
                self._version = version
        return self._library

    def _reopen(self) -> Library:
        log.info("library %s changed on disk: reopening it", self.name)
        return self._open(self._library)

    def _open(self, previous: Library | None) -> Library:
        """Open the library with its model loaded (a server warms up before it answers);
        the previous handle's model is reused while the library's model is the same."""
        manifest = read_manifest(self.path)
        active = manifest.active if manifest is not None else None
        old = previous.manifest.active if previous is not None else None
        if previous is not None and old is not None and active is not None \
                and old.model_id == active.model_id:  # fmt: skip
            return Library.open(self.path, encoder=previous.encoder, device=self.device)
        library = Library.open(self.path, device=self.device)
        if library.manifest.active is not None:
            library.encoder  # noqa: B018 — load the model now, not on the first query
        return library

    @property
    def keys(self) -> KeyStore:
        return KeyStore(self.current().store)

    def close(self) -> None:
        self._library.close()


class Libraries:
    """Every served library by name; the first one is the default (``/v1/...``)."""

    def __init__(self, handles: list[LibraryHandle]) -> None:
        if not handles:
            raise VitrieveError("serve at least one library")
        self.by_name = {h.name: h for h in handles}
        if len(self.by_name) != len(handles):
            raise VitrieveError("two libraries have the same name: name them NAME=LIB")
        self.default = handles[0]

    @classmethod
    def open(cls, specs: list[tuple[str, Path]], device: str = DEFAULT_DEVICE) -> Libraries:
        for name, _path in specs:
            if not name or not set(name) <= NAME_CHARS:
                raise VitrieveError(f"a library name is letters, digits, - _ . only: {name!r}")
        return cls([LibraryHandle(name, path, device) for name, path in specs])

    def get(self, name: str | None) -> LibraryHandle:
        if name is None:
            return self.default
        handle = self.by_name.get(name)
        if handle is None:
            raise KeyError(name)
        return handle

    def any_keys(self) -> bool:
        """Whether any served library has an active API key."""
        return any(h.keys.has_active() for h in self.by_name.values())

    def close(self) -> None:
        for handle in self.by_name.values():
            handle.close()


def parse_spec(value: str, index: int) -> tuple[str, Path]:
    """``NAME=LIB`` or ``LIB`` (named after its folder; the photo folder's for ``.vitrieve``)."""
    name, sep, path = value.partition("=")
    if sep and name and "/" not in name:
        return name, Path(path)
    path_ = Path(value).expanduser()
    stem = path_.resolve().name
    if stem == ".vitrieve":
        stem = path_.resolve().parent.name
    stem = "".join(c if c in NAME_CHARS else "-" for c in stem).strip("-.")
    return (stem or f"library{index + 1}"), path_
