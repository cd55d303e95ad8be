"""Images that arrive from outside the library (browser uploads): size-capped, decoded safely.

They go through the indexer's own decoder (format allow-list, EXIF orientation, decompression
bomb and truncation guards), so an upload is held to exactly the rules a library file is.
Also: display-sized renderings of library files, decoded the same way (HEIC included).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image

from encoders.errors import VitrieveError
from indexer.decode.images import ImageError, decode_image

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # a phone photo is a few MB
MAX_UPLOAD_PIXELS = 60_000_000  # stricter than for library files: uploads come from anyone


def decode_upload(
    data: bytes, target_size: int, max_bytes: int = MAX_UPLOAD_BYTES, name: str = "upload"
) -> Image.Image:
    """Uploaded bytes → an RGB image reduced for a model of input ``target_size``.

    VitrieveError (one clear line) for too large, empty or unreadable uploads.
    """
    if not data:
        raise VitrieveError(f"{name}: empty upload")
    if len(data) > max_bytes:
        raise VitrieveError(
            f"{name}: {len(data) / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB upload limit"
        )
    try:
        return decode_image(
            io.BytesIO(data), target_size=target_size, max_pixels=MAX_UPLOAD_PIXELS
        ).image
    except ImageError as exc:
        raise VitrieveError(f"{name}: {exc.reason}") from exc


def display_image(path: Path, max_side: int = 1280) -> Image.Image:
    """A library file decoded safely and reduced to at most ``max_side`` pixels."""
    try:
        image = decode_image(path, target_size=max_side).image
    except ImageError as exc:
        raise VitrieveError(f"{path.name}: {exc.reason}") from exc
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return image


def _jpeg(image: Image.Image, quality: int = 85) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def display_jpeg(path: Path, max_side: int = 1280) -> bytes:
    """A library file as a JPEG no larger than ``max_side``: what a browser can always show."""
    return _jpeg(display_image(path, max_side))


def explain_jpeg(library: Any, file_id: int, text: str, max_side: int = 1280) -> bytes:
    """The photo ``file_id`` of an open Library with the heatmap of where ``text`` matched."""
    from retrieval.search.explain import explain, overlay

    image = display_image(library.file_path(file_id), max_side)
    return _jpeg(overlay(image, explain(library.encoder, text, image)))
