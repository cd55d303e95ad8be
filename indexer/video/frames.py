"""Which frames of a video to index, decoded as cheaply as the choice allows.

A search finds the *moment*, so each kept frame becomes a vector with its timestamp. The choice:

1. **Keyframes first, decoding nothing else** (``skip_frame = "NONKEY"``): FFmpeg then decodes
   one frame per group of pictures, a fraction of the stream's cost. Encoders put a keyframe at
   every scene cut they detect (x264 and x265 do by default) and phones every second or two,
   so keyframes already see the scene changes.
2. **A frame at least every ``max_gap_s``** of a long shot: where two chosen frames lie further
   apart (a screen recording with 10-second groups of pictures), the gap is filled by seeking to
   the keyframe before each missing time and decoding forward to it: full decoding only where
   the sampling needs it.
3. **Near-identical neighbours dropped**: each frame's 16×16 grey signature (scaled by FFmpeg's
   swscale, not in Python) is compared with the last kept one; a mean absolute difference below
   ``duplicate_below`` (0–1) drops it. A static shot keeps its first frame and the ``max_gap_s``
   reminders only where the picture moved.
4. **A cap per file** (``max_frames``): a long recording keeps frames evenly spread over its length.

Frames are converted to RGB at the caller's size (``short_side``) and turned upright by the
stream's display matrix. Decoding errors after some frames (a truncated file, garbage after a
valid start) keep what was decoded and say so (``truncated``); none at all is a ``VideoError``.
A per-file time budget bounds the whole read.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from indexer.video.probe import VideoError, VideoFacts, open_video, probe, video_stream

log = logging.getLogger(__name__)

SIGNATURE_SIDE = 16  # px of the grey signature that tells near-identical frames apart


@dataclass(frozen=True)
class SamplingOptions:
    """How densely a video is sampled (the defaults suit phone footage; see the module doc)."""

    max_gap_s: float = 4.0
    duplicate_below: float = 0.02
    max_frames: int = 300
    short_side: int = 256  # px of the kept frames' short side (model input and thumbnail)
    time_budget_s: float = 600.0
    threads: int = 0  # FFmpeg decoding threads; 0 lets FFmpeg choose


@dataclass
class VideoFrame:
    """One kept frame: seconds from the start, the picture upright, its grey signature."""

    t: float
    image: Image.Image
    signature: np.ndarray


@dataclass
class SampledVideo:
    facts: VideoFacts
    frames: list[VideoFrame]
    truncated: bool  # decoding stopped early on broken data; the frames before it are kept
    decoded: int  # frames FFmpeg decoded to make the choice (the cost, for the progress figures)


def sample_video(path: Path, options: SamplingOptions | None = None) -> SampledVideo:
    """The frames of ``path`` worth indexing, in time order (see the module doc)."""
    options = options or SamplingOptions()
    deadline = time.monotonic() + options.time_budget_s
    container = open_video(path)
    try:
        facts = probe(container, path)
        reader = _Reader(container, path, options, deadline)
        keyframes = reader.keyframes()
        if not keyframes:
            raise VideoError("no frame could be decoded", path)
        frames = _fill_gaps(reader, keyframes, facts.duration_s, options)
        frames = _drop_near_identical(frames, options.duplicate_below)
        frames = _spread(frames, options.max_frames)
        facts = replace(facts, rotation=reader.rotation)
        return SampledVideo(facts, frames, reader.truncated, reader.decoded)
    finally:
        container.close()


class _Reader:
    """Decodes from one open container: all keyframes, or the frame at a given time."""

    def __init__(self, container: Any, path: Path, options: SamplingOptions, deadline: float):
        self.container, self.path, self.options, self.deadline = container, path, options, deadline
        self.stream = video_stream(container, path)
        self.stream.thread_type = "AUTO"
        if options.threads:
            self.stream.codec_context.thread_count = options.threads
        self.truncated = False
        self.decoded = 0
        self.rotation = 0

    def keyframes(self) -> list[VideoFrame]:
        import av

        self.stream.codec_context.skip_frame = "NONKEY"
        frames: list[VideoFrame] = []
        try:
            for frame in self.container.decode(self.stream):
                self._tick()
                if frame.time is not None:
                    frames.append(self._convert(frame))
        except av.error.FFmpegError as exc:
            self._broken(exc, frames)
        finally:
            self.stream.codec_context.skip_frame = "DEFAULT"
        return frames

    def frames_at(self, times: list[float], keyframes: list[float]) -> list[VideoFrame]:
        """The first frame at or after each of ``times`` (sorted), decoding forward from the
        keyframe before each one, and seeking only where a keyframe lies between the position
        reached and the next time (decoding on would cost more than starting there)."""
        import av

        if self.truncated:
            return []  # the keyframe pass already met the broken part
        found: list[VideoFrame] = []
        position = float("inf")  # where decoding stands; inf: nothing decoded yet, seek first
        frames = iter(())
        try:
            for t in times:
                before = max((k for k in keyframes if k <= t), default=0.0)
                if position > t or before > position:
                    self.container.seek(
                        int(before / self.stream.time_base), stream=self.stream, backward=True
                    )
                    self.stream.codec_context.flush_buffers()
                    frames = self.container.decode(self.stream)
                for frame in frames:
                    self._tick()
                    if frame.time is None:
                        continue
                    position = frame.time
                    if frame.time >= t - 1e-3:
                        found.append(self._convert(frame))
                        break
                else:
                    break  # the stream ended
        except av.error.FFmpegError as exc:
            self._broken(exc, found)
        return found

    def _convert(self, frame: Any) -> VideoFrame:
        self.rotation = int(getattr(frame, "rotation", 0) or 0) % 360
        signature = frame.reformat(width=SIGNATURE_SIDE, height=SIGNATURE_SIDE, format="gray")
        width, height = _scaled(frame.width, frame.height, self.options.short_side)
        image = frame.reformat(width=width, height=height, format="rgb24").to_image()
        if self.rotation:
            image = image.rotate(self.rotation, expand=True)
        grey = signature.to_ndarray().astype(np.float32) / 255.0
        return VideoFrame(float(frame.time), image, np.rot90(grey, self.rotation // 90))

    def _tick(self) -> None:
        """One more frame decoded: counted, and the time budget checked."""
        self.decoded += 1
        if time.monotonic() > self.deadline:
            raise VideoError(f"took longer than {self.options.time_budget_s:.0f} s", self.path)

    def _broken(self, exc: Exception, frames: list) -> None:
        self.truncated = True
        if not frames and not self.decoded:
            raise VideoError(f"cannot decode the video stream ({exc})"[:120], self.path) from exc
        log.warning("%s: decoding stopped early (%s); keeping the frames before it", self.path, exc)


def _scaled(width: int, height: int, short_side: int) -> tuple[int, int]:
    scale = min(1.0, short_side / max(1, min(width, height)))
    return max(2, round(width * scale) // 2 * 2), max(2, round(height * scale) // 2 * 2)


def _fill_gaps(
    reader: _Reader, frames: list[VideoFrame], duration: float, options: SamplingOptions
) -> list[VideoFrame]:
    """Adds a frame wherever chosen frames lie more than ``max_gap_s`` apart (and at the end)."""
    times = [f.t for f in frames] + [duration]
    wanted = []
    for start, stop in zip(times, times[1:], strict=False):
        steps = int((stop - start) // options.max_gap_s)
        gap = (stop - start) / (steps + 1)
        wanted += [start + gap * (i + 1) for i in range(steps)]
    wanted = wanted[: max(0, options.max_frames * 4)]  # bounded work even for an endless shot
    filled = reader.frames_at(wanted, [f.t for f in frames]) if wanted else []
    merged = {round(f.t, 3): f for f in frames + filled}
    return [merged[t] for t in sorted(merged)]


def _drop_near_identical(frames: list[VideoFrame], below: float) -> list[VideoFrame]:
    kept: list[VideoFrame] = []
    for frame in frames:
        previous = kept[-1].signature if kept else None
        same_shape = previous is not None and previous.shape == frame.signature.shape
        if same_shape and float(np.abs(previous - frame.signature).mean()) < below:
            continue
        kept.append(frame)
    return kept


def _spread(frames: list[VideoFrame], cap: int) -> list[VideoFrame]:
    """At most ``cap`` frames, evenly spread over the kept ones (first and last kept)."""
    if len(frames) <= cap:
        return frames
    picks = np.linspace(0, len(frames) - 1, cap).round().astype(int)
    return [frames[i] for i in sorted(set(picks.tolist()))]
