"""Classify page: label images with any words (zero-shot), see the probabilities, and label
the whole library in the background, with the results table downloadable as CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from encoders.errors import VitrieveError
from retrieval.labels.export import export_string
from retrieval.labels.zeroshot import (
    ABSTAIN,
    DEFAULT_NULL_Z,
    DEFAULT_PROBABILITY_THRESHOLD,
    DEFAULT_SET,
    DEFAULT_TEMPLATES,
    ZeroShotClassifier,
    parse_labels,
)
from retrieval.search.query import Filters
from retrieval.service import jobs
from ui import components, gate, media, state

MAX_IMAGES = 24  # images classified on the page at once (the whole library goes to a job)
EXAMPLE_LABELS = "red circle\nblue square\ngreen triangle\nyellow star"


RESULTS = "classified"  # session key: the last classification shown


@st.cache_resource(max_entries=8, show_spinner="Encoding the labels…")
def _classifier(
    library_dir: str, labels: tuple[str, ...], templates: tuple[str, ...], abstain: float,
    null_z: float | None,
) -> ZeroShotClassifier:  # fmt: skip
    library = state.library_by_dir(library_dir)
    return ZeroShotClassifier(library.encoder, list(labels), list(templates), abstain, null_z)


def _settings() -> tuple[list[str], list[str], float, float | None] | None:
    left, right = st.columns(2)
    text = left.text_area("Labels, one per line", EXAMPLE_LABELS, height=150, key="labels")
    custom = right.text_area(
        "Prompt templates (optional, one per line, {} = the label)",
        placeholder="a photo of a {}.\na drawing of a {}.",
        height=150,
        help=f"Empty: the built-in ensemble of {len(DEFAULT_TEMPLATES)} CLIP-style templates.",
    )
    left, right = st.columns(2, vertical_alignment="bottom")
    abstain = left.slider(
        "Say “none of these” below probability",
        0.0,
        0.9,
        DEFAULT_PROBABILITY_THRESHOLD,
        0.05,
    )
    unrelated = right.checkbox(
        "Also when the best label is no closer than unrelated text",
        value=True,  # the CLI's default too (--null-z): the same labels, the same verdicts
        help="Compares each photo with a bank of neutral captions (stricter).",
    )
    try:
        labels = parse_labels(text)
    except VitrieveError as exc:
        st.warning(str(exc))
        return None
    templates = [t.strip() for t in custom.splitlines() if t.strip()] or list(DEFAULT_TEMPLATES)
    return labels, templates, abstain, (DEFAULT_NULL_Z if unrelated else None)


def _library_images(library: Any) -> list[tuple[int, str]]:
    folder = st.text_input("Folder of the library (empty: all)", placeholder="2024/summer holiday")
    ids = library.ids(Filters(folder=folder.strip() or None))[:MAX_IMAGES]
    return [(int(i), library.record(int(i)).path) for i in ids]


def _classify_library(clf: ZeroShotClassifier, library: Any, items: list[tuple[int, str]]):
    return clf.classify_vectors(library.vectors([i for i, _ in items]))


def _classify_uploads(clf: ZeroShotClassifier, uploads: list, size: int):
    images = [(u.name, media.upload_image(u, size)) for u in media.capped_uploads(uploads)]
    images = [(n, im) for n, im in images if im is not None]
    return (
        [n for n, _ in images],
        [im for _, im in images],
        clf.classify_images([im for _, im in images]),
    )


def _verdict(name: str, verdict: Any) -> str:
    if verdict.label is not None:
        return f"**{name}** → **{verdict.label}** ({verdict.score:.0%})"
    closest = max(verdict.probabilities, key=verdict.probabilities.get)
    return f"**{name}** → **none of these** (closest: {closest}, {verdict.score:.0%})"


def _show_verdicts(names: list[str], pictures: list, verdicts: list) -> None:
    for name, picture, verdict in zip(names, pictures, verdicts, strict=True):
        with st.container(border=True):
            left, right = st.columns([1, 3], vertical_alignment="center")
            if picture is not None:
                left.image(picture, width="stretch")
            with right:
                st.markdown(_verdict(name, verdict))
                components.probability_chart(verdict.probabilities, height=160)
    labels = list(verdicts[0].probabilities) if verdicts else []
    columns = ["image", "label", "score", *(f"p({k})" for k in labels)]
    rows = [
        (name, verdict.label or ABSTAIN, float(verdict.score),
         *(float(verdict.probabilities[k]) for k in labels))
        for name, verdict in zip(names, verdicts, strict=True)
    ]  # fmt: skip
    st.dataframe(pd.DataFrame(rows, columns=columns), hide_index=True)
    st.download_button("Download CSV", export_string(rows, "csv", columns), "classified.csv",
                       "text/csv", icon=":material/download:")  # fmt: skip


def _whole_library(library: Any, labels: list[str], templates: list[str], abstain: float,
                   null_z: float | None) -> None:  # fmt: skip
    st.subheader("Label the whole library")
    name = st.text_input("Label set name", DEFAULT_SET, help="Labels become a search filter.")
    if st.button("Label all photos", icon=":material/sell:"):
        try:
            jobs.start_labeling(library, labels, templates, name.strip(), abstain, null_z)
        except VitrieveError as exc:
            st.error(str(exc))
    status = jobs.read_status(Path(library.path))
    if status is not None and status.kind == "label":
        if status.running:
            components.live_job(Path(library.path))
        else:
            components.job_progress(status)
    sets = library.stats().label_sets
    if sets:
        components.labels_download(library, st.selectbox("Results of label set", sets))


library = gate.require_library()
st.title("Classify")
settings = _settings()
source = st.segmented_control("Images", ["Upload", "From the library"], default="Upload")
if source == "Upload":
    uploads = st.file_uploader("Photos to classify", type=media.UPLOAD_TYPES,
                               accept_multiple_files=True)  # fmt: skip
else:
    items = _library_images(library)
if settings is not None and st.button(
    "Classify", type="primary", icon=":material/label:", key="classify"
):
    labels, templates, abstain, null_z = settings
    clf = _classifier(str(library.path), tuple(labels), tuple(templates), abstain, null_z)
    st.session_state.pop(RESULTS, None)
    if source == "Upload":
        if not uploads:
            st.warning("Add one or more photos first.")
        else:
            size = library.encoder.image_size
            st.session_state[RESULTS] = _classify_uploads(clf, uploads, size)
    elif items:
        verdicts = _classify_library(clf, library, items)
        pictures = [media.thumbnail_bytes(library, i) for i, _ in items]
        st.session_state[RESULTS] = ([p for _, p in items], pictures, verdicts)
    else:
        st.info("No photos in that folder.")
if RESULTS in st.session_state:
    _show_verdicts(*st.session_state[RESULTS])
st.divider()
if settings is not None:
    _whole_library(library, *settings)
