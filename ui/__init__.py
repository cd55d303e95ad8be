"""The Streamlit UI (``vitrieve ui``): pages over retrieval's Library, never the layers below."""
