"""Choosing and decoding the frames of a video (indexer/video): scenes found at their cuts, long
shots sampled every few seconds, static shots not repeated, rotation applied, the cap, and every
kind of broken file refused with a reason or read up to where it breaks."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")

from videos import PALETTE, write_audio_only, write_video  # noqa: E402

from indexer.video.frames import SamplingOptions, sample_video  # noqa: E402
from indexer.video.probe import VideoError  # noqa: E402


def _scene_of(image, scenes) -> int:
    """Which scene a decoded frame shows, by its background colour (a corner pixel)."""
    corner = np.asarray(image.convert("RGB"))[2, 2].astype(int)
    distances = [
        np.abs(corner - np.array(PALETTE[i % len(PALETTE)][0])).sum() for i in range(len(scenes))
    ]
    return int(np.argmin(distances))


@pytest.mark.parametrize(
    ("suffix", "codec"), [(".mp4", "libx264"), (".mkv", "mpeg4"), (".webm", "libvpx-vp9")]
)
def test_every_scene_has_a_frame_inside_it(tmp_path, suffix, codec):
    path = tmp_path / f"cuts{suffix}"
    scenes = write_video(path, cuts=[3.0, 7.5], duration=12.0, codec=codec)
    sampled = sample_video(path, SamplingOptions(max_gap_s=4.0))
    assert sampled.facts.duration_s == pytest.approx(12.0, abs=0.3)
    assert not sampled.truncated
    for index, scene in enumerate(scenes):
        inside = [f for f in sampled.frames if scene.start <= f.t < scene.stop]
        assert inside, f"scene {index} ({scene.start}-{scene.stop} s) has no frame"
        assert all(_scene_of(f.image, scenes) == index for f in inside)
    times = [f.t for f in sampled.frames]
    assert times == sorted(times)


def test_a_long_shot_with_rare_keyframes_still_gets_a_frame_every_few_seconds(tmp_path):
    path = tmp_path / "long_gop.mp4"
    write_video(path, cuts=[], duration=20.0, gop=250)  # one keyframe for the whole file
    sampled = sample_video(path, SamplingOptions(max_gap_s=4.0, duplicate_below=0.0))
    times = [0.0, *[f.t for f in sampled.frames], 20.0]
    assert max(b - a for a, b in zip(times, times[1:], strict=False)) <= 4.0 + 0.2
    assert sampled.decoded > len(sampled.frames)  # the gaps were decoded, not just keyframes


def test_a_static_shot_keeps_one_frame(tmp_path):
    import av

    path = tmp_path / "static.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        still = np.full((48, 64, 3), 90, np.uint8)
        for n in range(150):
            frame = av.VideoFrame.from_ndarray(still, format="rgb24")
            frame.pts = n
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert len(sample_video(path).frames) == 1


def test_rotation_turns_frames_upright(tmp_path):
    path = tmp_path / "phone.mp4"
    write_video(path, cuts=[], duration=2.0, size=(160, 96), rotation=-90)
    sampled = sample_video(path)
    assert sampled.facts.rotation == 270
    image = np.asarray(sampled.frames[0].image)
    assert image.shape[0] > image.shape[1]  # stored landscape, shown portrait
    # The square sits in the stored frame's middle third of rows: upright, in the middle columns.
    square = np.argwhere(np.abs(image.astype(int) - PALETTE[0][1]).sum(axis=2) < 60)
    assert (
        square.size and square[:, 1].min() >= 96 // 3 - 4 and square[:, 1].max() <= 2 * 96 // 3 + 4
    )


def test_the_cap_spreads_frames_over_the_whole_video(tmp_path):
    path = tmp_path / "many_cuts.mp4"
    write_video(path, cuts=[float(s) for s in range(1, 30)], duration=30.0)
    sampled = sample_video(path, SamplingOptions(max_frames=5))
    assert len(sampled.frames) == 5
    assert sampled.frames[0].t < 2.0 and sampled.frames[-1].t > 27.0


def test_frames_are_scaled_to_the_short_side(tmp_path):
    path = tmp_path / "big.mp4"
    write_video(path, cuts=[], duration=1.0, size=(640, 360))
    image = sample_video(path, SamplingOptions(short_side=120)).frames[0].image
    assert min(image.size) == 120 and image.size[0] > image.size[1]


def test_a_truncated_video_keeps_the_frames_before_the_break(tmp_path):
    path = tmp_path / "cut.mkv"
    write_video(path, cuts=[2.0, 4.0, 6.0], duration=8.0, codec="mpeg4")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    sampled = sample_video(path)
    assert sampled.frames and sampled.frames[-1].t < 6.0


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_bytes(b""), "not a readable video"),
        (
            lambda p: p.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x17" * 4000),
            "not a readable video",
        ),
        (lambda p: write_audio_only(p), "audio only"),
    ],
    ids=["zero-length", "garbage-after-header", "audio-only"],
)
def test_broken_files_are_refused_with_a_reason(tmp_path, make, reason):
    path = tmp_path / "broken.mp4"
    make(path)
    with pytest.raises(VideoError) as caught:
        sample_video(path)
    assert reason in caught.value.reason


def test_a_declared_absurd_frame_size_is_refused(tmp_path):
    """An AVI whose headers declare 100,000 × 100,000 pixels (a video bomb): refused, not read."""
    path = tmp_path / "bomb.avi"
    write_video(path, cuts=[], duration=1.0, codec="rawvideo", size=(32, 32))
    data = bytearray(path.read_bytes())
    strf = data.index(b"strf")  # BITMAPINFOHEADER: size, then biWidth, biHeight
    struct.pack_into("<ii", data, strf + 12, 100_000, 100_000)
    avih = data.index(b"avih")  # MainAVIHeader: dwWidth and dwHeight at offsets 32 and 36
    struct.pack_into("<II", data, avih + 8 + 32, 100_000, 100_000)
    path.write_bytes(bytes(data))
    with pytest.raises(VideoError) as caught:
        sample_video(path)
    # FFmpeg itself may refuse the size before our check sees it: either way, a reason.
    assert caught.value.reason in {"the video stream declares no frame size"} or (
        "video bomb" in caught.value.reason
    )


def test_probe_refuses_sizes_and_lengths_no_camera_makes():
    """The bomb limits themselves, on a container stub declaring them."""
    from types import SimpleNamespace

    from indexer.video.probe import probe

    def container(width, height, seconds):
        context = SimpleNamespace(width=width, height=height, name="h264")
        stream = SimpleNamespace(
            codec_context=context, duration=seconds * 1000, time_base=Fraction(1, 1000),
            average_rate=Fraction(30), guessed_rate=None, base_rate=None, frames=0, metadata={},
        )  # fmt: skip
        return SimpleNamespace(
            streams=SimpleNamespace(video=[stream], audio=[]), duration=None, metadata={}
        )

    with pytest.raises(VideoError, match="video bomb"):
        probe(container(100_000, 100_000, 10), Path("x.mp4"))
    with pytest.raises(VideoError, match="implausible"):
        probe(container(1920, 1080, 10**7), Path("x.mp4"))
    with pytest.raises(VideoError, match="zero-length"):
        probe(container(1920, 1080, 0), Path("x.mp4"))
    facts = probe(container(1920, 1080, 61), Path("x.mp4"))
    assert (facts.width, facts.height, facts.duration_s, facts.fps) == (1920, 1080, 61.0, 30.0)


def test_time_budget_stops_a_slow_read(tmp_path):
    path = tmp_path / "slow.mp4"
    write_video(path, cuts=[1.0, 2.0], duration=3.0)
    with pytest.raises(VideoError) as caught:
        sample_video(path, SamplingOptions(time_budget_s=0.0))
    assert "took longer" in caught.value.reason
