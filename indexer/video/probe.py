"""What a video file is: duration, frame rate, size, codec, rotation and date, read from its
container without decoding a frame, and refused with a short reason when it cannot be indexed.

Every way a video can be unusable — not a container FFmpeg reads, zero length, audio only, a
declared frame size or length no camera makes (a "video bomb": a header that asks for terabytes
of pixels) — is a ``VideoError`` with a ``reason`` the indexer records per file, as it does for
images. PyAV is imported lazily: photo-only libraries never load FFmpeg.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from encoders.errors import VitrieveError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset(".mp4 .mov .m4v .mkv .webm .avi .3gp .3g2 .mts .m2ts".split())  # noqa: SIM905
# Above any camera (8K is 33 MP): a larger declared frame is a bomb, refused before decoding.
MAX_FRAME_PIXELS = 8192 * 8192
MAX_DURATION_S = 48 * 3600  # two days of footage: beyond it the header is lying
# Container timestamps whose year is before this are a camera's unset clock, not a date.
EARLIEST_PLAUSIBLE_YEAR = 1990


class VideoError(VitrieveError):
    """A file that cannot be indexed as a video; ``reason`` is short and stored per file."""

    def __init__(self, reason: str, path: Path | str | None = None) -> None:
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path else reason)


@dataclass(frozen=True)
class VideoFacts:
    """A video's facts as its container declares them."""

    duration_s: float
    fps: float
    width: int  # as stored; as displayed when rotation is 90 or 270 the two swap
    height: int
    codec: str
    rotation: int  # the display matrix: degrees counter-clockwise to show frames upright
    frames: int  # declared frame count, 0 when the container does not say
    taken_at: datetime | None


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def open_video(path: Path) -> Any:
    """The PyAV container of ``path``, or a ``VideoError`` saying why not."""
    import av

    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoError(f"not a readable video ({_short(exc)})", path) from exc


def video_stream(container: Any, path: Path) -> Any:
    if not container.streams.video:
        kind = "audio only" if container.streams.audio else "no video stream"
        raise VideoError(kind, path)
    return container.streams.video[0]


def probe(container: Any, path: Path) -> VideoFacts:
    """Facts of an opened container's first video stream, checked against the bomb limits."""
    stream = video_stream(container, path)
    context = stream.codec_context
    width, height = int(context.width or 0), int(context.height or 0)
    if width <= 0 or height <= 0:
        raise VideoError("the video stream declares no frame size", path)
    if width * height > MAX_FRAME_PIXELS:
        raise VideoError(f"frame size {width}×{height} is beyond any camera (a video bomb?)", path)
    duration = _duration_s(container, stream)
    if duration <= 0:
        raise VideoError("zero-length video", path)
    if duration > MAX_DURATION_S:
        raise VideoError(f"declared length {duration / 3600:.0f} h is implausible", path)
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    return VideoFacts(
        duration_s=duration,
        fps=fps,
        width=width,
        height=height,
        codec=context.name or "unknown",
        rotation=0,  # known once a frame is decoded (its display matrix): see frames.py
        frames=max(0, int(stream.frames or 0)),
        taken_at=_creation_time(container.metadata) or _creation_time(stream.metadata),
    )


def _duration_s(container: Any, stream: Any) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return 0.0


def _creation_time(metadata: dict | None) -> datetime | None:
    """``creation_time`` (ISO 8601, UTC, as MP4/MOV muxers write it), if plausible."""
    value = (metadata or {}).get("creation_time")
    if not value:
        return None
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.year >= EARLIEST_PLAUSIBLE_YEAR else None


def _short(exc: BaseException) -> str:
    text = str(exc).split(":")[-1].strip() or type(exc).__name__
    return text[:80]
