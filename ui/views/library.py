"""Library page: pick or create a library, index a folder in the background, statistics,
failed files and duplicate groups."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import streamlit as st

from encoders.errors import VitrieveError
from retrieval.library.handle import DEFAULT_LIBRARY_DIR
from retrieval.service import jobs
from ui import components, state

st.title("Library")
RECENT_S = 600  # a finished job stays on the page this long
MAX_FAILURES_SHOWN = 1000


def _picker() -> None:
    """Open another library: a library directory or a photo folder that has one."""
    current = state.library_path()
    with st.form("pick-library", border=False):
        left, right = st.columns([5, 1], vertical_alignment="bottom")
        chosen = left.text_input(
            "Library or photo folder",
            value=str(current or ""),
            placeholder="/path/to/photos  or  /path/to/photos/.vitrieve",
        )
        if right.form_submit_button("Open", width="stretch") and chosen.strip():
            state.choose_library(chosen.strip())
            st.rerun()


def _index_form(library) -> None:
    """Start indexing a folder: the current library's root, or a new folder."""
    stats = library.stats() if library is not None else None
    empty = stats is None or stats.vectors == 0
    panel = st.expander("Index a folder", icon=":material/create_new_folder:", expanded=empty)
    with panel, st.form("index-folder", border=False):
        st.caption("New and changed photos are added; indexing runs in the background.")
        picked = state.library_path()
        if picked is not None and picked.name == DEFAULT_LIBRARY_DIR:
            picked = picked.parent
        guess = str(picked) if picked is not None and picked.is_dir() else ""
        photos = st.text_input("Photo folder", value=stats.root if stats else guess)
        model = st.text_input(
            "Model checkpoint", value=(stats.model_ref or "") if stats else "",
            help="A checkpoint directory (config.json + model.safetensors)",
        )  # fmt: skip
        if st.form_submit_button("Start indexing", type="primary", icon=":material/play_arrow:"):
            _start(photos.strip(), model.strip(), library.path if library else None)


def _start(photos: str, model: str, library_dir: Path | None) -> None:
    if not photos or not model:
        st.error("Give a photo folder and a model checkpoint.")
        return
    try:
        target, _ = jobs.start_indexing(Path(photos), model, library_dir, device=state.device())
    except VitrieveError as exc:
        st.error(str(exc))
        return
    state.choose_library(target)
    st.rerun()  # the progress panel sits above this form


def _job_panel(library_dir: Path) -> None:
    """The library's last job, read from its job file (so it survives a page reload)."""
    status = jobs.read_status(library_dir)
    if status is None:
        return
    if status.running:
        components.live_job(library_dir)
        return
    recent = status.finished_at and time.time() - status.finished_at < RECENT_S
    if recent or status.state in ("failed", "interrupted"):
        components.job_progress(status)


def _statistics(library) -> None:
    stats = library.stats()
    counts = stats.counts
    cols = st.columns(4)
    cols[0].metric("Images", f"{stats.vectors:,}")
    cols[1].metric("Failed", f"{counts.get('failed', 0):,}")
    cols[2].metric("Pending", f"{counts.get('pending', 0):,}")
    cols[3].metric("Label sets", len(stats.label_sets))
    st.caption(f"Photos in `{stats.root}` · library in `{stats.path}` · index `{stats.index_kind}`")
    left, right = st.columns(2)
    with left:
        st.markdown("**Formats**")
        components.counts_chart(dict(sorted(stats.formats.items())), x="format")
    with right:
        st.markdown("**Taken, by month**")
        components.counts_chart(stats.taken_by_month, x="month")
    if stats.label_sets:
        st.markdown("**Labels**")
        st.dataframe(components.label_table(library, stats.label_sets), hide_index=True)


def _failures(library) -> None:
    failures = library.failures(limit=MAX_FAILURES_SHOWN)
    with st.expander(f"Failed files ({len(failures)})", icon=":material/error:"):
        if failures:
            frame = pd.DataFrame(failures, columns=["file", "reason"])
            st.dataframe(frame, hide_index=True, width="stretch")
        else:
            st.caption("No file failed to index.")


def _duplicates(library) -> None:
    with st.expander("Duplicate groups", icon=":material/content_copy:"):
        components.duplicate_groups(library)


_picker()
library, problem = state.open_library()
path = state.library_path()
job_dir = library.path if library is not None else state.job_dir(path)
job = jobs.read_status(Path(job_dir)) if job_dir is not None and Path(job_dir).is_dir() else None
if problem and not (job is not None and job.running):
    st.warning(problem, icon=":material/warning:")
if job_dir is not None and Path(job_dir).is_dir():
    _job_panel(Path(job_dir))
if library is not None:
    if library.count() == 0:
        st.info("This library has no searchable photos yet: index a folder below.")
    else:
        _statistics(library)
_index_form(library)
if library is not None and library.count() > 0:
    _duplicates(library)
if library is not None:
    _failures(library)
