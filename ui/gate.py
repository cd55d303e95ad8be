"""What a page shows before its own content: the open library, or why there is none — a
message, a job's progress while the library is being made, or the first-run screen — and the
sidebar's library line. Pages import this; it imports ``state`` and ``components``, never a
page."""

from __future__ import annotations

import streamlit as st

from retrieval.library.handle import DEFAULT_LIBRARY_DIR, Library
from retrieval.service import jobs
from ui import components, state


def require_library(need_images: bool = True) -> Library:
    """The open library, or a message / the first-run screen and ``st.stop()``."""
    library, problem = state.open_library()
    job_dir = state.job_dir(state.library_path())
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
    path = state.library_path()
    if path is None:
        st.caption("No library open")
        return
    library, _problem = state.open_library()
    if library is None:
        st.caption(f":red[{path.name}: unavailable]")
        return
    name = library.root.name if library.path.name == DEFAULT_LIBRARY_DIR else library.path.name
    st.caption(f"Library **{name}** · {library.count():,} photos")
