"""Video indexing throughput: seconds of 1080p30 H.264 indexed per wall-clock second.

Generated footage (cached): scenes of moving shapes with hard cuts every 3–20 s, 1920×1080 at
30 fps, x264 with a keyframe at least every 2 s and at every scene cut, as phones record. Three
ways through the same files, in one process, one after the other:

- **vitrieve**: ``indexer.video.frames.sample_video`` with the default sampling (keyframes,
  gaps filled, near-identical frames dropped), then the kept frames embedded with ViT-B-32
  (random weights: the cost is the same) by the Encoder at its default precision;
- **one preview frame per video** (what Immich embeds): the first keyframe, embedded;
- **every frame decoded** by FFmpeg (the decode ceiling: no embedding).

Prints, per way: seconds of video per second (× real time), frames kept per minute of video,
the split decode vs encode, and the process's peak resident memory. Never asserts timings.
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from encoders.model.clip import create_model
from encoders.model.config import load_config
from encoders.runtime.encoder import Encoder
from encoders.weights.checkpoint import save_checkpoint
from indexer.video.frames import SamplingOptions, sample_video

SIZE = (1920, 1080)
FPS = 30


def make_footage(folder: Path, minutes: float, clip_minutes: float, seed: int = 0) -> list[Path]:
    """``minutes`` of footage in clips of ``clip_minutes``, written once into ``folder``."""
    import av

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    clips = max(1, round(minutes / clip_minutes))
    paths = []
    for n in range(clips):
        path = folder / f"clip{n:02d}_{clip_minutes:g}min.mp4"
        paths.append(path)
        if path.exists():
            continue
        seconds = clip_minutes * 60
        cuts, t = [], 0.0
        while (t := t + rng.uniform(3, 20)) < seconds:
            cuts.append(t)
        partial = path.with_suffix(".partial.mp4")
        with av.open(str(partial), "w") as container:
            stream = container.add_stream("libx264", rate=FPS)
            stream.width, stream.height = SIZE
            stream.pix_fmt = "yuv420p"
            stream.codec_context.gop_size = 2 * FPS  # and a keyframe at each cut (scenecut)
            stream.options = {"preset": "superfast", "crf": "23"}  # ultrafast turns scenecut off
            base = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
            scene = 0
            for i in range(int(seconds * FPS)):
                time_s = i / FPS
                while scene < len(cuts) and time_s >= cuts[scene]:
                    scene += 1
                colour = np.random.default_rng(scene).integers(0, 255, 3, dtype=np.uint8)
                base[:] = colour
                x = int(time_s * 200) % (SIZE[0] - 300)
                base[400:700, x : x + 300] = 255 - colour
                frame = av.VideoFrame.from_ndarray(base, format="rgb24")
                frame.pts = i
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        partial.rename(path)
    return paths


def decode_all(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def preview_frame(path: Path):
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONKEY"
        return next(iter(container.decode(stream))).to_image()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="footage in total")
    parser.add_argument("--clip-minutes", type=float, default=2.0)
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "vitrieve-video"
    )
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--skip-full-decode", action="store_true")
    args = parser.parse_args()
    paths = make_footage(args.cache, args.minutes, args.clip_minutes)
    seconds = args.minutes * 60
    with tempfile.TemporaryDirectory() as scratch:
        save_checkpoint(create_model(load_config(args.model)), Path(scratch) / "model")
        encoder = Encoder.load(Path(scratch) / "model")
    encoder.encode_images([preview_frame(paths[0])])  # warm-up

    begin = time.perf_counter()
    kept, decoded, encode_s = 0, 0, 0.0
    for path in paths:
        sampled = sample_video(path, SamplingOptions())
        decoded += sampled.decoded
        kept += len(sampled.frames)
        began = time.perf_counter()
        encoder.encode_images([frame.image for frame in sampled.frames])
        encode_s += time.perf_counter() - began
    total = time.perf_counter() - begin
    print(
        f"footage: {len(paths)} clips, {seconds / 60:.1f} min of {SIZE[0]}x{SIZE[1]} at {FPS} fps"
    )
    print(
        f"vitrieve:        {seconds / total:6.1f}x real time ({total:.1f} s: decode+choose "
        f"{total - encode_s:.1f} s, encode {encode_s:.1f} s); {kept / (seconds / 60):.1f} frames "
        f"kept per minute ({decoded} decoded, {decoded / (seconds * FPS):.1%} of all frames)"
    )
    begin = time.perf_counter()
    encoder.encode_images([preview_frame(path) for path in paths])
    total = time.perf_counter() - begin
    print(f"preview frame:   {seconds / total:6.1f}x real time ({total:.1f} s; 1 frame per video)")
    if not args.skip_full_decode:
        begin = time.perf_counter()
        frames = sum(decode_all(path) for path in paths)
        total = time.perf_counter() - begin
        print(
            f"decode every frame: {seconds / total:6.1f}x real time ({frames / total:.0f} frames/s)"
        )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
