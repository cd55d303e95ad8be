"""Videos made by the tests with PyAV: scenes of coloured, moving shapes with hard cuts at known
seconds, in several containers and codecs, and broken files of the kinds a library holds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# (background, shape colour) per scene: far apart, so a cut is a large pixel change.
PALETTE = [((20, 20, 160), (250, 220, 0)), ((200, 30, 30), (255, 255, 255)),
           ((20, 140, 40), (0, 0, 0)), ((240, 240, 240), (120, 0, 160))]  # fmt: skip


@dataclass(frozen=True)
class Scene:
    start: float
    stop: float
    background: tuple[int, int, int]


def frame_pixels(t: float, scenes: list[Scene], size: tuple[int, int]) -> np.ndarray:
    """The picture at ``t`` seconds: the scene's background with a square moving across it."""
    width, height = size
    index = next(i for i, s in enumerate(scenes) if s.start <= t < s.stop or s is scenes[-1])
    background, colour = PALETTE[index % len(PALETTE)]
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[:] = background
    side = height // 3
    x = int((t - scenes[index].start) * 12) % max(1, width - side)
    pixels[height // 3 : height // 3 + side, x : x + side] = colour
    return pixels


def write_video(
    path: Path,
    cuts: list[float],
    duration: float,
    *,
    codec: str = "libx264",
    fps: int = 10,
    size: tuple[int, int] = (160, 96),
    rotation: int = 0,
    gop: int | None = None,
) -> list[Scene]:
    """A video of scenes split at ``cuts`` (seconds); returns the scenes it shows."""
    import av

    bounds = [0.0, *cuts, duration]
    scenes = [
        Scene(a, b, PALETTE[i % len(PALETTE)][0])
        for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False))
    ]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if gop:
            stream.codec_context.gop_size = gop
        if rotation:
            stream.set_display_rotation(rotation)
        for n in range(int(duration * fps)):
            frame = av.VideoFrame.from_ndarray(frame_pixels(n / fps, scenes, size), format="rgb24")
            frame.pts = n
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return scenes


def write_audio_only(path: Path, seconds: float = 1.0) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = int(16000 * seconds)
        frame_size = stream.codec_context.frame_size or 1024
        for start in range(0, samples, frame_size):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, frame_size), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate = 16000
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
