"""Which library the app shows, and its one open handle per process.

The library comes from ``--library`` after ``--`` on the ``streamlit run`` command line, or from
the Library page (kept in session state and in the URL's ``?library=``; the picker can open any
library directory anyway, so the URL grants nothing new — files are still only served through
the opened library's own accessors). Opening goes through ``retrieval``: a
``LibraryHandle`` per library directory, cached for the process (``st.cache_resource``), which
reopens the library when indexing rewrote it and closes the one it replaces; a missing or
broken library becomes a message on the page, never a traceback. This module renders nothing:
what a page shows before its own content is ``ui.gate``'s.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import streamlit as st

from encoders.errors import VitrieveError
from encoders.runtime.device import DEFAULT_DEVICE
from retrieval.library.handle import Library, locate_library
from retrieval.library.reopen import LibraryHandle
from retrieval.service.serving import DEFAULT_SERVING

log = logging.getLogger(__name__)

LIBRARY_KEY = "library_path"
MAX_PATH_CHARS = 4096  # PATH_MAX on Linux


def _argv() -> argparse.Namespace:
    """``--library LIB`` and ``--device DEV`` from the script arguments (after ``--``)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--library", default=None)
    parser.add_argument("--device", default=DEFAULT_DEVICE)
    known, _ = parser.parse_known_args(sys.argv[1:])
    return known


def _argv_library() -> str | None:
    return _argv().library


def device() -> str:
    """Where this server's models run (``vitrieve ui --device``; resolved by the CLI)."""
    return _argv().device


def init_library_choice() -> None:
    """First run of a session: the library in the URL (a library picked on the Library page
    survives a reload), else the one given on the command line."""
    if LIBRARY_KEY not in st.session_state:
        st.session_state[LIBRARY_KEY] = st.query_params.get("library") or _argv_library()
    chosen = st.session_state[LIBRARY_KEY]
    if chosen and chosen != _argv_library() and st.query_params.get("library") != chosen:
        st.query_params["library"] = chosen  # page switches drop the URL's parameters


def library_path() -> Path | None:
    """The chosen library's path; None when none is chosen or the value is not a usable path
    (it may come from the URL: NUL bytes, names too long, ``~unknown-user`` are refused here
    so no page trips over them)."""
    chosen = st.session_state.get(LIBRARY_KEY)
    if not chosen or not isinstance(chosen, str) or len(chosen) > MAX_PATH_CHARS:
        return None
    try:
        path = Path(chosen).expanduser()
        path.exists()  # raises for a NUL byte or a name over the file system's limit
    except (OSError, ValueError, RuntimeError):
        return None
    return path


def job_dir(path: Path | None) -> Path | None:
    """Where the library at ``path`` keeps its job file, also while a first indexing run is
    making it (``locate_library``'s reading, as the job's)."""
    if path is None:
        return None
    try:
        return locate_library(path, new=True)
    except (VitrieveError, OSError, ValueError, RuntimeError):  # NUL byte, symlink loop
        return None


def choose_library(path: Path | str) -> None:
    """Switch this session to another library (the Library page's picker)."""
    st.session_state[LIBRARY_KEY] = str(Path(path).expanduser().resolve())
    st.query_params["library"] = st.session_state[LIBRARY_KEY]
    st.session_state.pop("search", None)


def _close(handle: LibraryHandle) -> None:
    handle.close()


@st.cache_resource(show_spinner="Opening the library…", max_entries=4, on_release=_close)
def _handle(library_dir: str, on: str) -> LibraryHandle:
    """The library's handle (its model loaded once), shared by every session of this server."""
    return LibraryHandle(Path(library_dir), device=on, compile=DEFAULT_SERVING.compile)


def library_by_dir(library_dir: str | Path) -> Library:
    """The up-to-date library in ``library_dir`` (reopened after indexing)."""
    return _handle(str(locate_library(Path(library_dir))), device()).current()


def open_library() -> tuple[Library | None, str | None]:
    """The current library, or None and a one-line reason it cannot be opened."""
    path = library_path()
    if path is None:
        chosen = st.session_state.get(LIBRARY_KEY)
        return None, (f"Not a usable library path: {str(chosen)[:80]!r}" if chosen else None)
    if not path.exists():
        return None, f"Library not found: {path}"
    if not path.is_dir():
        return None, f"Not a library directory: {path}"
    try:
        return library_by_dir(path), None
    except VitrieveError as exc:
        return None, str(exc)
    except Exception as exc:  # a broken library must not crash the page
        log.exception("cannot open library %s", path)
        return None, f"Cannot open {path}: {exc}"
