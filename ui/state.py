"""Which library the app shows, opened once per process (``st.cache_resource``).

The library comes from ``--library`` after ``--`` on the ``streamlit run`` command line, or from
the Library page (kept in session state and in the URL's ``?library=``; the picker can open any
library directory anyway, so the URL grants nothing new — files are still only served through
the opened library's own accessors). Opening goes through ``retrieval.library.handle.Library``;
a missing or broken library becomes a message on the page, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import streamlit as st

from encoders.errors import VitrieveError
from encoders.runtime.device import DEFAULT_DEVICE
from encoders.runtime.encoder import Encoder
from indexer.layout import read_manifest
from retrieval.library.handle import (
    DEFAULT_LIBRARY_DIR,
    Library,
    find_library,
    library_model,
    library_version,
)
from retrieval.service import jobs

log = logging.getLogger(__name__)

LIBRARY_KEY = "library_path"
MAX_PATH_CHARS = 4096  # PATH_MAX on Linux

STYLE = """
<style>
  .vt-score { height: 6px; border-radius: 3px; background: rgba(128,128,128,.18);
              margin: 2px 0 0 0; }
  .vt-score > div { height: 6px; border-radius: 3px; }
  .vt-meta { font-size: .78rem; opacity: .75; white-space: nowrap; overflow: hidden;
             text-overflow: ellipsis; margin: 0; }
  [data-testid="stImage"] img { border-radius: 6px; }
  [data-testid="stElementContainer"]:has(.vt-meta) { min-width: 0; flex: 1 1 0; }
  .block-container { padding-top: 2.2rem; }
</style>
"""


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


def library_dir_for(path: Path | None) -> Path | None:
    """Where a library's files (and its job file) are: ``path`` or ``path/.vitrieve``."""
    if path is None:
        return None
    nested = path / DEFAULT_LIBRARY_DIR
    return nested if nested.is_dir() else path


def choose_library(path: Path | str) -> None:
    """Switch this session to another library (the Library page's picker)."""
    st.session_state[LIBRARY_KEY] = str(Path(path).expanduser().resolve())
    st.query_params["library"] = st.session_state[LIBRARY_KEY]
    st.session_state.pop("search", None)


@st.cache_resource(show_spinner="Loading the model…", max_entries=2)
def _encoder(library_dir: str, model_id: str, on: str) -> Encoder:
    """The model, loaded once per process and shared by every reopening of its library."""
    del model_id  # part of the cache key: a re-index with another model loads the new one
    return library_model(Path(library_dir), on)


def _close(library: Library) -> None:
    library.close()


@st.cache_resource(show_spinner="Opening the library…", max_entries=4, on_release=_close)
def _open(library_dir: str, version: tuple[float, ...]) -> Library:
    """The library opened once per version; the handle of an older version is closed when
    the cache lets it go."""
    del version  # part of the cache key only
    manifest = read_manifest(Path(library_dir))
    active = manifest.active if manifest is not None else None
    encoder = _encoder(library_dir, active.model_id, device()) if active else None
    return Library.open(Path(library_dir), encoder=encoder, device=device())


def library_by_dir(library_dir: str | Path) -> Library:
    """The cached handle of the library in ``library_dir`` (reopened after indexing)."""
    path = find_library(Path(library_dir))
    return _open(str(path), library_version(path))


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


def require_library(need_images: bool = True) -> Library:
    """The open library, or a message / the first-run screen and ``st.stop()``."""
    from ui import components

    library, problem = open_library()
    job_dir = library_dir_for(library_path())
    job = jobs.read_status(job_dir) if job_dir is not None and job_dir.is_dir() else None
    if job is not None and job.running and (library is None or library.count() == 0):
        st.title("Preparing the library")
        components.live_job(job_dir)
        st.stop()
    if library is None and problem:
        st.error(problem, icon=":material/error:")
        st.page_link(
            "views/library.py", label="Pick or create a library", icon=":material/folder_open:"
        )
        st.stop()
    if library is None:
        if "demo-error" in st.session_state:
            st.error(st.session_state.pop("demo-error"))
        components.first_run()
        st.stop()
    if need_images and library.count() == 0:
        components.first_run(
            f"The library in `{library.path}` has no searchable photos yet. Index a folder on "
            "the Library page, or try the demo library first."
        )
        st.stop()
    return library


def library_badge() -> None:
    """Sidebar line: which library is open and how many images it holds."""
    path = library_path()
    if path is None:
        st.caption("No library open")
        return
    library, problem = open_library()
    if library is None:
        st.caption(f":red[{path.name}: unavailable]")
        return
    name = library.root.name if library.path.name == DEFAULT_LIBRARY_DIR else library.path.name
    st.caption(f"Library **{name}** · {library_size(library):,} photos")


def library_size(library: Library) -> int:
    return int(library.count())
