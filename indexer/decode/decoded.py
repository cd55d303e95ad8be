"""One file → the model's input, a thumbnail and facts, or the reason it cannot be indexed.

Each file is read once: the bytes give the content hash, the decoded image (DCT-scaled once
for both) gives the model's input and the thumbnail; the CPU time of each stage travels back
with the result, so a run can say where its time went. Runs in the decode workers
(``decode``); on a CUDA device a JPEG nvJPEG can take is only planned here (``jpeg_plan``)
and decoded on the GPU (``gpu_decode``). The facts are the row's columns: size, format, and
what the EXIF says (``photo_facts``: time and offset, GPS, camera, lens).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from indexer.decode.images import DEFAULT_MAX_PIXELS, ImageError, decode_image, make_thumbnail
from indexer.decode.jpeg_plan import JpegJob, file_stamp, plan_jpeg
from indexer.decode.photo_facts import PhotoFacts, photo_facts
from indexer.pipeline.scan import hash_bytes


@dataclass(frozen=True)
class DecodeSettings:
    """What every worker needs, sent once when the worker starts."""

    # PIL RGB image → array (3, S, S): the encoder's preprocess, or its uint8 part (``pixels``)
    transform: Callable[[Any], Any]
    target_size: int
    max_pixels: int = DEFAULT_MAX_PIXELS
    thumb_size: int = 256
    gpu_jpeg: bool = False  # JPEGs nvJPEG can take are planned, not decoded (``jpeg_plan``)


@dataclass
class Decoded:
    """The outcome for one file: pixels + thumbnail + facts, or an error reason."""

    id: int
    # (3, S, S): uint8, or float32 if the transform gives it; a device tensor once nvJPEG decoded it
    pixels: np.ndarray | None = None
    thumb: bytes | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    cpu: dict[str, float] = field(default_factory=dict)  # stage → CPU seconds (this thread)
    worker: tuple[int, float] | None = None  # (pid, the worker's CPU seconds before this file)
    jpeg: JpegJob | None = None  # to be decoded on the GPU (``gpu_decode``): no pixels yet


class _Stopwatch:
    """CPU seconds of this thread per stage, for ``Decoded.cpu``."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self._last = time.thread_time()

    def lap(self, stage: str) -> None:
        now = time.thread_time()
        self.cpu[stage] = self.cpu.get(stage, 0.0) + now - self._last
        self._last = now


def decode_file(file_id: int, path: Path, settings: DecodeSettings) -> Decoded:
    """Read, hash, decode, preprocess and thumbnail one file; failures become ``error``.
    With ``settings.gpu_jpeg`` a JPEG the GPU can take is only planned (``Decoded.jpeg``)."""
    watch = _Stopwatch()
    try:
        stamp = file_stamp(path) if settings.gpu_jpeg else (0, 0)
        data = path.read_bytes()
    except OSError as exc:
        return Decoded(file_id, error=f"cannot read: {exc.strerror or exc}")
    watch.lap("read")
    digest = hash_bytes(data)
    watch.lap("hash")
    job = plan_jpeg(data, settings.max_pixels, str(path), stamp) if settings.gpu_jpeg else None
    watch.lap("plan")
    if job is not None:
        facts = {"content_hash": digest, **job.facts, **_header_facts(data).columns()}
        watch.lap("plan")
        return Decoded(file_id, facts=facts, jpeg=job, cpu=watch.cpu)
    return _decode_data(file_id, data, digest, settings, watch)


def _decode_data(
    file_id: int,
    data: bytes,
    digest: str,
    settings: DecodeSettings,
    watch: _Stopwatch | None = None,
) -> Decoded:
    """Decode, preprocess and thumbnail one file's bytes on the CPU (the safe decoder)."""
    watch = watch or _Stopwatch()
    try:
        decoded = decode_image(
            io.BytesIO(data),
            target_size=settings.target_size,
            max_pixels=settings.max_pixels,
            thumb_size=settings.thumb_size,
        )
        watch.lap("decode")
        pixels = np.asarray(settings.transform(decoded.image))
        watch.lap("pixels")
        thumb = make_thumbnail(decoded.image, settings.thumb_size)
        watch.lap("thumbnail")
    except Exception as exc:  # a decoder bug on one file must not stop the library either
        error = exc.reason if isinstance(exc, ImageError) else f"decode failed: {exc!r}"
        return Decoded(file_id, facts={"content_hash": digest}, error=error, cpu=watch.cpu)
    facts = {"content_hash": digest, "width": decoded.width, "height": decoded.height}
    facts.update(format=decoded.format, **decoded.facts.columns())
    return Decoded(file_id, pixels, thumb, facts, cpu=watch.cpu)


def _header_facts(data: bytes) -> PhotoFacts:
    """The EXIF facts of a JPEG the GPU will decode, from its header in memory (no pixels).

    ``plan_jpeg`` has read this header already but keeps only the date of its EXIF; reading
    it again here costs a header parse (tens of µs), not a file read."""
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
            return photo_facts(image.getexif())
    except Exception:  # plan_jpeg accepted this header: nothing should fail, and nothing may
        return PhotoFacts()
