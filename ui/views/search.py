"""Search page: words (with -negative terms), an example image, or both; filters in the
sidebar; a grid of results with score bars; "no good match" said plainly; load more."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

import streamlit as st

from encoders.errors import VitrieveError
from retrieval.search.query import Filters, Query
from ui import components, detail, gate, media

PAGE = 24  # results per "load more"
SEARCH = "search"  # session key: the query being shown and how many results


def _new_search(**query: Any) -> None:
    st.session_state[SEARCH] = {"limit": PAGE, **query}
    st.session_state.pop(detail.SELECTED, None)


def _similar(file_id: int) -> None:
    """ "More like this": search with the stored vector of an indexed image."""
    st.session_state.pop(detail.SELECTED, None)
    _new_search(text="", similar_to=int(file_id))


def _load_more() -> None:
    st.session_state[SEARCH]["limit"] += PAGE


def _filters_sidebar(library: Any) -> Filters:
    """Folder, dates, label, file type, sort: the sidebar's filter panel."""
    stats = library.stats()
    with st.sidebar:
        st.subheader("Filters")
        folder = st.text_input("Folder", placeholder="e.g. 2024/summer holiday", key="folder")
        dates = st.date_input("Taken between", value=(), format="YYYY-MM-DD")
        labels = components.label_options(library, tuple(stats.label_sets))
        label = st.selectbox("Label", labels, index=None, placeholder="any label")
        formats = st.multiselect("File type", sorted(stats.formats), placeholder="any type")
        st.radio("Order", ["Best match", "Newest first"], key="sort", horizontal=True)
    after = datetime.combine(dates[0], time.min) if len(dates) >= 1 else None
    before = datetime.combine(dates[1], time.max) if len(dates) == 2 else None
    return Filters(folder=folder.strip() or None, taken_after=after, taken_before=before,
                   label=label, formats=tuple(formats))  # fmt: skip


def _query_form(library: Any) -> None:
    """The query box, the example-image upload and the search button."""
    with st.form("query", border=False):
        left, right = st.columns([5, 1], vertical_alignment="bottom")
        text = left.text_input(
            "Describe the photo",
            key="query",
            placeholder="a red circle",
            help='Words to search for. Exclude with a minus: "a circle -red".',
        )
        submitted = right.form_submit_button(
            "Search", type="primary", width="stretch", key="run-search", icon=":material/search:"
        )
        with st.expander("Search with an image (and mix it with words)"):
            upload = st.file_uploader("Example photo", type=media.UPLOAD_TYPES)
            balance = st.slider("Words ↔ image", 0.0, 1.0, 0.5, help="Only when both are given.")
    if submitted:
        image = media.upload_image(upload, library.encoder.image_size)
        if upload is not None and image is None:
            return  # the decode error is already on the page
        if not text.strip() and image is None:
            st.warning("Type a few words, or add an example photo.")
            return
        _new_search(text=text.strip(), image=image, balance=balance)


def _query_of(search: dict) -> Query:
    if search.get("similar_to") is not None:
        return Query(image=int(search["similar_to"]))
    image, text = search.get("image"), search.get("text", "")
    weights = {}
    if image is not None and text:
        weights = {"text_weight": 1.0 - search["balance"], "image_weight": search["balance"]}
    return Query.parse(text, image=image, **weights)


def _heading(library: Any, search: dict, response: Any) -> None:
    if search.get("similar_to") is not None:
        name = media.display_name(library.record(search["similar_to"]).path)
        st.markdown(f"**Photos like {name}**")
    if not response.results:
        st.info("Nothing matches these filters.", icon=":material/filter_alt_off:")
    elif response.no_good_match:
        st.warning(
            "**No good match.** Nothing in this library looks like your query; "
            "these are the closest results.",
            icon=":material/search_off:",
        )
    else:
        st.caption(f"{response.relevant:,} good matches · "
                   f"{sum(response.timings_ms.values()):.0f} ms")  # fmt: skip


def _results(library: Any, filters: Filters) -> None:
    search = st.session_state.get(SEARCH)
    if not search:
        st.caption(f"{library.count():,} photos in this library. Try “a red circle”.")
        return
    sort = "date" if st.session_state.get("sort") == "Newest first" else "score"
    try:
        response = library.searcher.search(
            _query_of(search), filters, offset=0, limit=search["limit"], sort=sort
        )
    except VitrieveError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    _heading(library, search, response)
    strong = [r for r in response.results if not r.weak]
    weak = [r for r in response.results if r.weak]
    if strong and weak and search.get("similar_to") is None:
        components.result_grid(library, strong, detail.open_result, key="strong")
        st.markdown("**Less likely matches**")
        components.result_grid(library, weak, detail.open_result, key="weak")
    else:
        components.result_grid(library, response.results, detail.open_result, key="results")
    if response.has_more:
        st.button("Load more", on_click=_load_more, icon=":material/expand_more:")
    selected = st.session_state.get(detail.SELECTED)
    if selected is not None:
        detail.show(library, selected, search.get("text", ""), _similar)


library = gate.require_library()
st.title("Search")
filters = _filters_sidebar(library)
_query_form(library)
_results(library, filters)
