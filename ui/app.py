"""Streamlit entry point: ``streamlit run ui/app.py -- --library LIB`` (or ``vitrieve ui``).

This file is the frame around every page: page config, the library in use, navigation.
Each page lives in ui/views/ and talks to the engine through ui/state.py → retrieval.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from retrieval.service.serving import configure_serving
from ui import auth, state

VIEWS = Path(__file__).parent / "views"

st.set_page_config(page_title="vitrieve", page_icon=":material/photo_library:", layout="wide")
st.html(state.STYLE)
auth.require_login()  # only when secrets.toml has an [auth] section (docs/security.md)
configure_serving()  # the threads search latency is measured with (bench/search.py)

state.init_library_choice()

pages = [
    st.Page(VIEWS / "search.py", title="Search", icon=":material/search:", default=True),
    st.Page(VIEWS / "classify.py", title="Classify", icon=":material/label:"),
    st.Page(VIEWS / "library.py", title="Library", icon=":material/photo_library:"),
    st.Page(VIEWS / "model.py", title="Model", icon=":material/model_training:"),
]
page = st.navigation(pages)
with st.sidebar:
    state.library_badge()
page.run()
