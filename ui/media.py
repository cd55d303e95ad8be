"""Image bytes for the browser, read only through the library's accessors.

``Library.file_path`` and ``Library.thumbnail_path`` refuse ids that are not in the library and
paths that would leave it, so nothing here can be made to read another file. Uploads are
size-capped and decoded by the indexer's safe decoder (through ``retrieval.service.uploads``).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import PurePosixPath
from typing import Any

import streamlit as st
from PIL import Image

from encoders.errors import VitrieveError
from retrieval.service.uploads import MAX_UPLOAD_BYTES, decode_upload, display_jpeg
from ui import state

log = logging.getLogger(__name__)

MAX_UPLOADS = 24  # files classified per click: Streamlit caps each file's size, not their number
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "heic", "heif", "avif"]


def display_name(path: str) -> str:
    return PurePosixPath(str(path)).name


def bar_value(result: Any) -> float:
    """What the score bar shows: the calibrated score (0.5 = relevance cut-off)."""
    return float(getattr(result, "calibrated", result.score))


def is_weak(result: Any) -> bool:
    return bool(getattr(result, "weak", False))


def thumbnail_bytes(library: Any, file_id: int) -> bytes | None:
    """The stored WebP thumbnail, else a small rendering of the file itself; None if neither."""
    try:
        thumb = library.thumbnail_path(file_id)
        if thumb is not None:
            return thumb.read_bytes()
        return _rendered(str(library.path), library.record(file_id).id, 384)
    except (VitrieveError, OSError) as exc:
        log.info("no thumbnail for %s: %s", file_id, exc)
        return None


def large_bytes(library: Any, file_id: int) -> bytes | None:
    """The photo itself, decoded safely and re-encoded at display size."""
    try:
        return _rendered(str(library.path), library.record(file_id).id, 1280)
    except (VitrieveError, OSError) as exc:
        log.info("cannot show %s: %s", file_id, exc)
        return None


@st.cache_data(max_entries=64, show_spinner=False)
def _rendered(library_dir: str, file_id: int, max_side: int) -> bytes:
    library = state.library_by_dir(library_dir)
    return display_jpeg(library.file_path(file_id), max_side=max_side)


def capped_uploads(uploads: list | None) -> list:
    """At most ``MAX_UPLOADS`` files of a multi-file uploader (a warning on the page if more)."""
    uploads = list(uploads or [])
    if len(uploads) > MAX_UPLOADS:
        st.warning(f"Only the first {MAX_UPLOADS} of {len(uploads)} photos are used.")
    return uploads[:MAX_UPLOADS]


def upload_image(uploaded: Any, target_size: int) -> Image.Image | None:
    """An uploaded file → RGB image, or an error on the page and None."""
    if uploaded is None:
        return None
    data = uploaded.getvalue()
    try:
        return _decoded_upload(hashlib.sha256(data).hexdigest(), data, target_size, uploaded.name)
    except VitrieveError as exc:
        st.error(str(exc), icon=":material/broken_image:")
        return None


@st.cache_data(max_entries=8, show_spinner=False)
def _decoded_upload(digest: str, _data: bytes, target_size: int, name: str) -> Image.Image:
    del digest  # the cache key; ``_data`` (leading underscore) is not hashed again
    return decode_upload(_data, target_size, MAX_UPLOAD_BYTES, name)
