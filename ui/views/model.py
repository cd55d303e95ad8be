"""Model page: which model the library uses, its configuration, its training curves."""

from __future__ import annotations

import streamlit as st

from encoders.errors import VitrieveError
from encoders.training.layout import CURVES_FILE
from encoders.weights.checkpoint import CONFIG_FILE
from ui import gate, model_files

st.title("Model")
library = gate.require_library()
stats = library.stats()
if not stats.model_ref:
    st.info("This library has no model yet: index a folder on the Library page.")
    st.stop()

cols = st.columns(3)
cols[0].metric("Model id", stats.model_id or "–")
cols[1].metric("Vectors", f"{stats.vectors:,}")
cols[2].metric("Index", stats.index_kind)
st.caption(f"Checkpoint `{stats.model_ref}`")


def _loaded_config() -> dict | None:
    """What the model is, as loaded: a checkpoint written before its text tower's own figures
    were recorded (a MiniLM tower saved with the BPE tower's) still shows the real ones."""
    try:
        return library.encoder.config.to_dict()
    except VitrieveError:
        return None


config, loaded = model_files.written_config(library), _loaded_config()
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
    found = model_files.training_curves(library)
    if found is None:
        st.caption(f"No {CURVES_FILE}: this model was not trained here (or its run folder moved).")
    else:
        st.image(found.read_bytes(), caption=f"{found}", width="stretch")
