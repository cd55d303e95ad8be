"""The large view of one result: the photo, its metadata and labels, "more like this",
and an "explain" toggle that overlays where the query matched."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import streamlit as st

from encoders.errors import VitrieveError
from retrieval.search.query import parse_query
from retrieval.service.uploads import explain_jpeg
from ui import media

SELECTED = "selected_id"


def open_result(file_id: int) -> None:
    """Button callback: show this result large (until the dialog is dismissed)."""
    st.session_state[SELECTED] = int(file_id)


def close() -> None:
    """Dialog dismissed: back to the grid."""
    st.session_state.pop(SELECTED, None)


def _metadata(library: Any, file_id: int) -> str:
    """The photo's facts as a short Markdown list."""
    record = library.record(file_id)
    facts = [
        ("Folder", str(PurePosixPath(record.path).parent)),
        ("Size", f"{record.width} × {record.height} px" if record.width else "–"),
        ("Format", f"{record.format or '–'} · {record.size / 1024:,.0f} KB"),
        ("Taken", record.taken_at.strftime("%Y-%m-%d %H:%M") if record.taken_at else "–"),
        ("Id", str(record.id)),
    ]
    return "\n".join(f"- **{name}** {value}" for name, value in facts)


def _labels(library: Any, file_id: int) -> None:
    labels = library.searcher.labels_of([file_id]).get(file_id, [])
    if labels:
        st.markdown(" ".join(f":blue-badge[{label_set}: {label} {score:.2f}]"
                             for label_set, label, score in labels[:8]))  # fmt: skip
    else:
        st.caption("No labels yet (Classify → label the whole library).")


def _explain(library: Any, file_id: int, query_text: str) -> bytes | None:
    try:
        return explain_jpeg(library, file_id, query_text)
    except VitrieveError as exc:
        st.warning(str(exc))
        return None


@st.dialog("Photo", width="large", on_dismiss=close)
def show(library: Any, file_id: int, query_text: str, on_similar) -> None:
    """The dialog body; ``on_similar(file_id)`` (a callback) starts a "more like this" search."""
    if st.session_state.get(SELECTED) != file_id:
        st.rerun(scope="app")  # "more like this" closed it: redraw the page behind
    try:
        record = library.record(file_id)
    except VitrieveError as exc:
        st.error(str(exc))
        return
    explain = False
    query_text = parse_query(query_text)[0]  # the words to find, without -negatives
    if query_text:
        explain = st.toggle(f"Explain: where does “{query_text}” match?", key=f"explain-{file_id}")
    picture = _explain(library, file_id, query_text) if explain else None
    if picture is None:
        picture = media.large_bytes(library, file_id)
    left, right = st.columns([3, 2])
    with left:
        if picture is None:
            st.error("This photo cannot be shown.", icon=":material/broken_image:")
        else:
            st.image(picture, width="stretch", alt=media.display_name(record.path))
    with right:
        st.subheader(media.display_name(record.path), divider="gray")
        st.markdown(_metadata(library, file_id))
        _labels(library, file_id)
        st.button("More like this", icon=":material/image_search:", type="primary",
                  on_click=on_similar, args=(file_id,))  # fmt: skip
