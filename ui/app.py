"""Streamlit entry point: ``streamlit run ui/app.py -- --library LIB`` (or ``vitrieve ui``).

This file is the frame around every page: page config, the library in use, navigation.
Each page lives in ui/views/; pages import the shared pieces (``gate``, ``components``,
``detail``, ``media``, ``state``), which talk to the engine through ``retrieval``'s ``Library``
and never import a page or each other in a circle (tests/ui/test_structure.py).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from retrieval.service.serving import configure_serving
from ui import auth, gate, state

VIEWS = Path(__file__).parent / "views"
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

st.set_page_config(page_title="vitrieve", page_icon=":material/photo_library:", layout="wide")
st.html(STYLE)
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
    gate.library_badge()
page.run()
