"""The libraries a server answers for, by name, each a ``retrieval.library.reopen.LibraryHandle``
(reopened when indexing rewrote it, the model kept while it is the same, the replaced library
closed), with the API keys kept in its database."""

from __future__ import annotations

from pathlib import Path

from encoders.errors import VitrieveError
from encoders.runtime.device import DEFAULT_DEVICE
from indexer.store.keys import KeyStore
from retrieval.library.reopen import LibraryHandle, LibraryUnavailable

__all__ = ["Libraries", "LibraryUnavailable", "ServedLibrary", "parse_spec"]

NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class ServedLibrary(LibraryHandle):
    """One served library, by name: ``current()`` is its up-to-date ``Library`` (reopened by
    ``retrieval.library.reopen`` when indexing rewrote it), ``keys`` its API keys."""

    def __init__(
        self, name: str, path: Path, device: str = DEFAULT_DEVICE, compile: bool = False
    ) -> None:
        super().__init__(path, device, name=name, compile=compile)

    @property
    def keys(self) -> KeyStore:
        return KeyStore(self.current().store)


class Libraries:
    """Every served library by name; the first one is the default (``/v1/...``)."""

    def __init__(self, handles: list[ServedLibrary]) -> None:
        if not handles:
            raise VitrieveError("serve at least one library")
        self.by_name = {h.name: h for h in handles}
        if len(self.by_name) != len(handles):
            raise VitrieveError("two libraries have the same name: name them NAME=LIB")
        self.default = handles[0]

    @classmethod
    def open(
        cls, specs: list[tuple[str, Path]], device: str = DEFAULT_DEVICE, compile: bool = False
    ) -> Libraries:
        for name, _path in specs:
            if not name or not set(name) <= NAME_CHARS:
                raise VitrieveError(f"a library name is letters, digits, - _ . only: {name!r}")
        return cls([ServedLibrary(name, path, device, compile) for name, path in specs])

    def get(self, name: str | None) -> ServedLibrary:
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
