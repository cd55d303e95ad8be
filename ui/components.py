"""Reusable pieces of the pages: result grid, image card, score bar, charts, first-run screen.

Images reach the browser only as bytes read through the library's own accessors
(``ui.media``), so a card can never show a file that is not in the library.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from retrieval.labels.export import COLUMNS as EXPORT_COLUMNS
from retrieval.labels.export import export_string
from retrieval.search.duplicates import DEFAULT_THRESHOLD
from retrieval.service import jobs
from retrieval.service.demo import default_cache
from ui import media, state

STRONG, WEAK = "#2e7d32", "#9e9e9e"


def score_bar(score: float, weak: bool = False) -> None:
    """A thin horizontal bar: how well this result matches (0..1 after calibration)."""
    width = max(0.0, min(1.0, float(score))) * 100
    colour = WEAK if weak else STRONG
    st.html(
        f'<div class="vt-score" title="score {score:.2f}">'
        f'<div style="width:{width:.0f}%;background:{colour}"></div></div>'
    )


def image_card(library: Any, result: Any, on_open: Callable[[int], None], key: str) -> None:
    """One result: thumbnail, score bar, file name, and a button that opens the large view."""
    thumb = media.thumbnail_bytes(library, result.id)
    if thumb is None:
        st.warning("missing", icon=":material/broken_image:")
    else:
        st.image(thumb, width="stretch", alt=media.display_name(result.path))
    score_bar(media.bar_value(result), weak=media.is_weak(result))
    with st.container(horizontal=True, vertical_alignment="center", gap="small"):
        st.html(
            f'<p class="vt-meta" title="{html.escape(str(result.path))}">'
            f"{html.escape(media.display_name(result.path))}</p>",
            width="stretch",
        )
        st.button(
            "Open",
            key=f"open-{key}-{result.id}",
            on_click=on_open,
            args=(result.id,),
            type="tertiary",
            help=f"{result.path} · score {result.score:.3f}",
        )


def result_grid(
    library: Any, results: Sequence[Any], on_open: Callable[[int], None], key: str = "grid"
) -> None:
    """A responsive grid of image cards that reflows with the window width."""
    grid = st.grid("auto", min_column_width=150, gap="small", key=f"{key}-cells")
    for result in results:
        with grid.container(border=True):
            image_card(library, result, on_open, key)


def probability_chart(probabilities: dict[str, float], height: int = 220) -> None:
    """Horizontal bars, one per label, largest first."""
    frame = pd.DataFrame(
        {"label": list(probabilities), "probability": [float(p) for p in probabilities.values()]}
    )
    st.bar_chart(
        frame,
        x="label",
        y="probability",
        horizontal=True,
        sort="-probability",
        height=height,
        x_label="probability",
        y_label="",
    )


def counts_chart(counts: dict[str, int], x: str, y: str = "images", height: int = 220) -> None:
    """A bar chart of counts keyed by category or period (already ordered by the caller)."""
    if not counts:
        st.caption("nothing to show yet")
        return
    frame = pd.DataFrame({x: [str(k) for k in counts], y: list(counts.values())})
    st.bar_chart(frame, x=x, y=y, sort=False, height=height)


def first_run(reason: str | None = None) -> None:
    """The welcome screen of an empty or absent library: what to do next, and the demo."""
    st.title("Welcome to vitrieve")
    st.write(
        reason
        or "There are no photos to search yet. Index a folder of your photos, or try the "
        "demo library of synthetic pictures (shapes, colours and scenes) first."
    )
    left, right = st.columns(2, border=True)
    with left:
        st.subheader(":material/photo_library: Index your photos")
        st.write("Open the **Library** page, point it at a folder and watch it index.")
        st.page_link("views/library.py", label="Go to Library", icon=":material/arrow_forward:")
    with right:
        st.subheader(":material/auto_awesome: Try the demo")
        st.write("A few hundred synthetic photos and a small model trained here "
                 "(a few minutes, once; cached afterwards).")  # fmt: skip
        st.button("Build the demo library", icon=":material/play_arrow:", type="primary",
                  on_click=_start_demo, key="start-demo")  # fmt: skip
        st.caption("Or from a terminal:")
        st.code("make demo        # or: vitrieve demo", language="bash")


def _start_demo() -> None:
    try:
        state.choose_library(jobs.start_demo(default_cache(os.environ.get("XDG_CACHE_HOME"))))
    except Exception as exc:  # shown on the page, never a traceback
        st.session_state["demo-error"] = str(exc)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


@st.fragment(run_every=1.0)
def live_job(job_dir: Path) -> None:
    """A background job's progress, redrawn every second; the whole page reruns when it ends
    (its counts and charts changed)."""
    status = jobs.read_status(job_dir)
    if status is None or not status.running:
        st.rerun()
    job_progress(status)


def job_progress(status: Any) -> None:
    """A background job's progress bar: found/done/failed, images per second, time left."""
    processed = status.done + status.failed
    line = (
        f"{status.kind.capitalize()} `{status.target}` · {processed:,}/{status.found:,} "
        f"({status.failed:,} failed) · {status.rate:.1f} images/s · ETA {_duration(status.eta_s)}"
    )
    if status.running:
        st.progress(status.fraction, text=line)
        if status.message:
            st.caption(status.message)
    elif status.state == "done":
        st.success(f"Finished: {status.message or line}", icon=":material/check_circle:")
    elif status.state == "interrupted":
        st.warning(
            f"The last {status.kind} job was interrupted ({status.message}). Start it again to "
            "resume where it stopped.",
            icon=":material/pause_circle:",
        )
    else:
        st.error(f"The last {status.kind} job failed: {status.message}", icon=":material/error:")


def label_table(library: Any, label_sets: Sequence[str]) -> pd.DataFrame:
    """Images per best label in each label set (counted by the database)."""
    rows = [
        {"label set": name, "label": label, "images": images}
        for name in label_sets
        for label, images in library.label_counts(name).items()
    ]
    frame = pd.DataFrame(rows, columns=["label set", "label", "images"])
    return frame.sort_values(["label set", "images"], ascending=[True, False])


def label_options(library: Any, label_sets: tuple[str, ...]) -> list[str]:
    """Every "set:label" stored in the library, for the label filter."""
    return [
        f"{name}:{label}"
        for name in label_sets
        for label in sorted(library.label_counts(name, best_only=False))
    ]


def labels_download(library: Any, label_set: str) -> None:
    """A label set's labels — every label of every photo — as a table and as the CSV that
    ``vitrieve export`` writes (one format and one writer: ``read_export`` reads both)."""
    rows = library.label_rows(label_set)
    st.dataframe(pd.DataFrame(rows, columns=EXPORT_COLUMNS), hide_index=True, height=260)
    st.download_button("Download labels as CSV", export_string(rows, "csv"), f"{label_set}.csv",
                       "text/csv", icon=":material/download:")  # fmt: skip


def duplicate_groups(library: Any) -> None:
    """Near-identical photos found from the stored vectors, largest groups first."""
    threshold = st.slider(
        "Similarity threshold", 0.90, 1.0, DEFAULT_THRESHOLD, 0.005,
        help="Cosine similarity above which two photos count as copies.",
    )  # fmt: skip
    groups = library.duplicates(threshold)
    if not groups:
        st.caption("No near-duplicates at this threshold.")
        return
    st.caption(f"{len(groups)} groups, {sum(len(g.ids) for g in groups)} photos")
    for group in groups[:30]:
        with st.container(border=True):
            st.caption(f"{len(group.ids)} photos · similarity ≥ {group.min_similarity:.3f}")
            cells = st.grid(8, min_column_width=90, gap="small", key=f"dup-{group.ids[0]}")
            for file_id, path in zip(group.ids, group.paths, strict=True):
                with cells.container():
                    thumb = media.thumbnail_bytes(library, file_id)
                    if thumb is not None:
                        st.image(thumb, width="stretch")
                    st.html(f'<p class="vt-meta">{html.escape(path)}</p>')
