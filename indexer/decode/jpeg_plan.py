"""Which files the GPU decodes, and the plain steps around it: tested on the CPU.

On a CUDA device the indexer decodes JPEGs with nvJPEG (``gpu_decode``). A CPU worker reads
and hashes each file as always, then reads the JPEG header with Pillow (no pixels decoded): a
file goes to the GPU only when it is a complete baseline YCbCr or greyscale JPEG within the
pixel limit. Everything else — other formats, CMYK/YCCK, RGB stored without YCbCr, progressive
or MPO files, a missing end marker (truncated or trailing data), bombs, unreadable headers — is
decoded in the worker by the safe CPU decoder, which records every failure as before. The
header also gives what the GPU path cannot read from pixels: the displayed size, the EXIF
orientation and date.

A job carries the file's path and stamp (size, modification time), not its bytes: megabytes
per file through the worker pool's result pipe would cap the rate, so the embedding process
reads the file again (from the page cache) and uses it only if it is still the file the
worker hashed (``read_unchanged``); a file changed meanwhile goes to the CPU decoder.

The GPU's resizes are planned here too (``resize_steps``): CUDA's bicubic antialias kernel keeps
its filter weights in a block's 48 KiB of shared memory and refuses a pass that reduces an axis
by more than about 47× (a panorama's thumbnail, a 12,000-pixel image's), which used to surface
only after the file had been decoded; such a resize now goes in steps of at most
``MAX_RESIZE_STEP``× per axis.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from indexer.decode.images import exif_taken_at

EXIF_ORIENTATION = 0x0112
GPU_MODES = ("RGB", "L")  # Pillow's modes for YCbCr and greyscale JPEGs; CMYK stays on the CPU
END_OF_IMAGE = b"\xff\xd9"
MAX_RESIZE_STEP = 32  # per-axis reduction of one GPU antialias pass (the kernel fails past ~47×)


@dataclass(frozen=True)
class JpegJob:
    """A JPEG the GPU will decode: where it is, its orientation and the facts stored for it."""

    orientation: int  # EXIF orientation 1..8 (1: as stored)
    facts: dict[str, Any]  # width, height (displayed), format, taken_at
    path: str = ""
    stamp: tuple[int, int] = (0, 0)  # (size, mtime_ns) before the worker read it


def file_stamp(path: Path) -> tuple[int, int]:
    """(size, modification time in ns): what tells a file rewritten since it was read."""
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def read_unchanged(job: JpegJob) -> bytes | None:
    """The job's file, if it is still the one the worker read (same stamp before and after
    this read, and as many bytes); None otherwise."""
    path = Path(job.path)
    try:
        if file_stamp(path) != job.stamp:
            return None
        data = path.read_bytes()
        if file_stamp(path) != job.stamp or len(data) != job.stamp[0]:
            return None
    except OSError:
        return None
    return data


def plan_jpeg(
    data: bytes, max_pixels: int, path: str = "", stamp: tuple[int, int] = (0, 0)
) -> JpegJob | None:
    """A ``JpegJob`` when nvJPEG can take ``data`` (the file at ``path``, as stamped before it
    was read); None sends it to the CPU decoder."""
    if data.rstrip(b"\0")[-2:] != END_OF_IMAGE:  # cut short, or a trailer nvJPEG may trip on
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
                return _job(image, max_pixels, path, stamp)
    except Exception:  # any doubt about the header: the CPU decoder decides and records it
        return None


def _job(image: Image.Image, max_pixels: int, path: str, stamp: tuple[int, int]) -> JpegJob | None:
    width, height = image.size
    progressive = image.info.get("progressive") or image.info.get("progression")
    stored_rgb = image.info.get("adobe_transform") == 0  # RGB without YCbCr (Adobe APP14)
    if (
        image.format != "JPEG"
        or image.mode not in GPU_MODES
        or progressive
        or stored_rgb
        or not 0 < width * height <= max_pixels
    ):
        return None
    exif = image.getexif()
    orientation = exif.get(EXIF_ORIENTATION, 1)
    if not isinstance(orientation, int) or not 1 <= orientation <= 8:
        orientation = 1
    if orientation >= 5:  # rotated by 90°: the displayed size swaps
        width, height = height, width
    facts = {"width": width, "height": height, "format": "JPEG", "taken_at": exif_taken_at(exif)}
    return JpegJob(orientation, facts, path, stamp)


def orient(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """A (C, H, W) image as displayed under EXIF ``orientation`` (``ImageOps.exif_transpose``)."""
    height, width = -2, -1
    if orientation == 2:
        return image.flip(width)
    if orientation == 3:
        return image.flip(height, width)
    if orientation == 4:
        return image.flip(height)
    if orientation == 5:
        return image.transpose(height, width)
    if orientation == 6:
        return image.rot90(-1, (height, width))  # 90° clockwise
    if orientation == 7:
        return image.rot90(1, (height, width)).flip(width)
    if orientation == 8:
        return image.rot90(1, (height, width))  # 90° counter-clockwise
    return image


def plan_batches(pixel_counts: Sequence[int], max_batch: int, max_pixels: int) -> list[list[int]]:
    """Indices grouped into nvJPEG batches of at most ``max_batch`` files and ``max_pixels``
    decoded pixels (device memory), in order; a file larger than that goes alone."""
    batches: list[list[int]] = []
    current: list[int] = []
    total = 0
    for index, count in enumerate(pixel_counts):
        if current and (len(current) >= max_batch or total + count > max_pixels):
            batches.append(current)
            current, total = [], 0
        current.append(index)
        total += count
    if current:
        batches.append(current)
    return batches


def short_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) with the short side ``size``: torchvision's ``resize(image, size)`` rule (the long
    side truncated), so the GPU path and the CPU transform crop the same image."""
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def resize_steps(
    size: tuple[int, int], target: tuple[int, int], max_step: float = MAX_RESIZE_STEP
) -> list[tuple[int, int]]:
    """The sizes (h, w) a resize from ``size`` to ``target`` passes through, ``target`` last:
    as few passes as keep each axis's reduction per pass within ``max_step``, the reduction
    split evenly (geometrically) between them. Enlarged axes need no extra pass."""
    reductions = [s / t for s, t in zip(size, target, strict=True) if s > t]
    passes = max([math.ceil(math.log(r) / math.log(max_step) - 1e-9) for r in reductions] + [1])
    steps = [
        tuple(
            max(round(s * (t / s) ** (k / passes)), t) if s > t else t
            for s, t in zip(size, target, strict=True)
        )
        for k in range(1, passes)
    ]
    return [*steps, tuple(target)]
