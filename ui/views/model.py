"""Model page: which model the library uses, its configuration, its training curves."""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from encoders.errors import VitrieveError
from encoders.weights.checkpoint import CONFIG_FILE
from retrieval.library.handle import model_dir
from ui import state

st.title("Model")
library = state.require_library()
stats = library.stats()
if not stats.model_ref:
    st.info("This library has no model yet: index a folder on the Library page.")
    st.stop()

checkpoint = model_dir(library.path, library.manifest) or Path(stats.model_ref).expanduser()
CURVES_FILE = "curves.png"  # what ``vitrieve train`` writes beside the checkpoint
cols = st.columns(3)
cols[0].metric("Model id", stats.model_id or "–")
cols[1].metric("Vectors", f"{stats.vectors:,}")
cols[2].metric("Index", stats.index_kind)
st.caption(f"Checkpoint `{stats.model_ref}`")


def _config() -> dict | None:
    """The checkpoint's config.json as written."""
    path = checkpoint / CONFIG_FILE
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
    return None


def _loaded_config() -> dict | None:
    """What the model is, as loaded: a checkpoint written before its text tower's own figures
    were recorded (a MiniLM tower saved with the BPE tower's) still shows the real ones."""
    try:
        return library.encoder.config.to_dict()
    except VitrieveError:
        return None


config, loaded = _config(), _loaded_config()
left, right = st.columns([2, 3])
with left:
    st.subheader("Configuration")
    if config is None and loaded is None:
        st.caption("config.json not found next to the checkpoint.")
    else:
        model_cfg = loaded or config.get("model_cfg", config)
        vision = model_cfg.get("vision_cfg", {})
        text = model_cfg.get("text_cfg", {})
        tower = f"{text['hf_model_name']}, " if text.get("hf_model_name") else ""
        st.markdown(
            f"- embedding size **{model_cfg.get('embed_dim', '?')}**\n"
            f"- image {vision.get('image_size', '?')} px, patches of "
            f"{vision.get('patch_size', '?')} px, width {vision.get('width', '?')}, "
            f"{vision.get('layers', '?')} layers\n"
            f"- text {tower}context {text.get('context_length', '?')}, "
            f"width {text.get('width', '?')}, "
            f"{text.get('layers', '?')} layers"
        )
        if config is not None:
            with st.expander(CONFIG_FILE):
                st.json(config, expanded=2)
with right:
    st.subheader("Training curves")
    curves = [p / CURVES_FILE for p in (checkpoint, checkpoint.parent)]
    found = next((p for p in curves if p.is_file()), None)
    if found is None:
        st.caption("No curves.png: this model was not trained here (or its run folder moved).")
    else:
        st.image(found.read_bytes(), caption=f"{found}", width="stretch")
