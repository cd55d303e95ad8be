"""The GPU decode path's decisions and image steps, run on the CPU with CPU tensors: which
files go to nvJPEG, orientation, batch sizing, resize planning, the stream protocol around each
decode call, the model input and thumbnail it makes."""

from __future__ import annotations

import io
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from library_factory import jpeg_bytes, photo
from PIL import Image, ImageOps
from torchvision.io import decode_jpeg
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from encoders.model.transforms import eval_transform
from indexer.decode.decoded import Decoded
from indexer.decode.gpu_decode import DecodeStream, GpuJpegDecoder, prepare
from indexer.decode.jpeg_plan import (
    MAX_RESIZE_STEP,
    file_stamp,
    orient,
    plan_batches,
    plan_jpeg,
    read_unchanged,
    resize_steps,
    short_side_size,
)
from indexer.decode.pixels import split_transform

LIMIT = 4_000_000


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif.get_ifd(0x8769)[0x9003] = "2021:07:14 09:30:00"
    return exif


def test_a_baseline_jpeg_is_planned_with_its_displayed_size_and_date() -> None:
    job = plan_jpeg(jpeg_bytes(photo(80, 40, seed=1), exif=_exif(6)), LIMIT)
    assert job is not None and job.orientation == 6
    assert (job.facts["width"], job.facts["height"], job.facts["format"]) == (40, 80, "JPEG")
    assert job.facts["taken_at"].year == 2021
    grey = plan_jpeg(jpeg_bytes(photo(seed=2, mode="L")), LIMIT)
    assert grey is not None and grey.orientation == 1 and grey.facts["taken_at"] is None
    padded = plan_jpeg(jpeg_bytes(photo(seed=3)) + b"\0\0\0", LIMIT)  # zero padding after EOI
    assert padded is not None


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(jpeg_bytes(photo(seed=4, mode="CMYK")), id="cmyk"),
        pytest.param(jpeg_bytes(photo(seed=5), progressive=True), id="progressive"),
        pytest.param(jpeg_bytes(photo(seed=5), keep_rgb=True), id="rgb-without-ycbcr"),
        pytest.param(jpeg_bytes(photo(256, 192, seed=6))[:3000], id="truncated"),
        pytest.param(jpeg_bytes(photo(seed=7)) + b"trailer", id="trailing-data"),
        pytest.param(_png(photo(seed=8)), id="png"),
        pytest.param(b"", id="empty"),
        pytest.param(b"\xff\xd8 not really a jpeg \xff\xd9", id="bad-header"),
        pytest.param(jpeg_bytes(Image.new("L", (2100, 2000))), id="over-the-pixel-limit"),
    ],
)
def test_what_nvjpeg_cannot_take_goes_to_the_cpu_decoder(data: bytes) -> None:
    assert plan_jpeg(data, LIMIT) is None


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_matches_pillows_exif_transpose(orientation: int) -> None:
    image = photo(7, 5, seed=orientation)
    expected = np.asarray(ImageOps.exif_transpose(_with_orientation(image, orientation)))
    tensor = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
    got = orient(tensor, orientation).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(got, expected)


def _with_orientation(image: Image.Image, orientation: int) -> Image.Image:
    out = io.BytesIO()
    image.save(out, format="PNG", exif=_exif(orientation))
    return Image.open(io.BytesIO(out.getvalue()))


def test_batches_respect_the_file_and_pixel_limits() -> None:
    assert plan_batches([], 4, 100) == []
    assert plan_batches([10] * 9, 4, 1000) == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
    assert plan_batches([40, 40, 40, 500, 10], 8, 100) == [[0, 1], [2], [3], [4]]


def test_prepare_makes_the_cpu_paths_model_input_and_a_thumbnail() -> None:
    image = photo(300, 200, seed=9)
    per_image, _ = split_transform(eval_transform(64))
    expected = torch.from_numpy(per_image(image)).float()
    tensor = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
    pixels, thumb = prepare(tensor, 1, 64, 128)
    assert pixels.dtype == torch.uint8 and pixels.shape == (3, 64, 64)
    assert (pixels.float() - expected).abs().mean() < 2.0  # the same picture, ±rounding
    assert thumb.shape == (85, 128, 3) and thumb.dtype == torch.uint8
    grey = torch.full((1, 20, 30), 77, dtype=torch.uint8)
    pixels, thumb = prepare(grey, 6, 16, 128)  # rotated, smaller than the thumbnail
    assert pixels.shape == (3, 16, 16) and int(pixels.float().mean().round()) == 77
    assert thumb.shape == (30, 20, 3)


def _cuda_antialias_pass_fits(size: tuple[int, int], target: tuple[int, int]) -> bool:
    """CUDA's bicubic antialias kernel's own check (aten/src/ATen/native/cuda/
    UpSampleBilinear2d.cu, ``upsample_gen2d_aa_out_cuda_template``), for fp32 and the 48 KiB of
    shared memory a block gets: the weights of a 32-wide block row and ``block_y`` rows, and
    ``block_y`` rows of partial sums, must fit with ``block_y`` ≥ 1."""
    shared, warp = 48 * 1024 // 4, 32
    taps = [math.ceil(2 * max(s / t, 1.0)) * 2 + 1 for s, t in zip(size, target, strict=True)]
    return (shared - taps[1] * warp) // (taps[0] * (warp + 1)) >= 1


@pytest.mark.parametrize(
    ("size", "target"),
    [((2000, 3000), (224, 336)), ((1000, 30000), (9, 256)), ((12000, 8000), (256, 171)),
     ((60000, 400), (256, 2)), ((100, 100), (224, 224)), ((2, 90000), (1, 256))],
)  # fmt: skip
def test_resizes_are_planned_in_passes_the_cuda_kernel_accepts(size, target) -> None:
    steps = resize_steps(size, target)
    assert steps[-1] == target
    before = size
    for step in steps:
        assert _cuda_antialias_pass_fits(before, step), (before, step)
        assert all(b / s <= MAX_RESIZE_STEP for b, s in zip(before, step, strict=True))
        before = step
    reduction = max(s / t for s, t in zip(size, target, strict=True))
    assert len(steps) == (1 if reduction <= MAX_RESIZE_STEP else 2)  # no pass more than needed


def test_the_kernel_model_refuses_what_one_pass_did_before() -> None:
    assert _cuda_antialias_pass_fits((2000, 3000), (224, 336))  # 9×: one pass, as before
    assert not _cuda_antialias_pass_fits((12000, 12000), (250, 250))  # 48×
    assert not _cuda_antialias_pass_fits((1000, 30000), (9, 256))  # a panorama's thumbnail


@pytest.mark.parametrize(("height", "width"), [(200, 300), (300, 200), (97, 333), (64, 64)])
def test_model_size_is_torchvisions_short_side_resize(height: int, width: int) -> None:
    image = torch.zeros(3, height, width)
    resized = TF.resize(image, 64, InterpolationMode.BICUBIC, antialias=True)
    assert tuple(resized.shape[-2:]) == short_side_size(height, width, 64)


def test_a_panorama_is_prepared_in_passes_close_to_one_pass() -> None:
    ramp = torch.linspace(0, 255, 12_000)
    wave = 127.5 + 127.5 * torch.sin(torch.linspace(0, 12.0, 150))[:, None]
    image = torch.stack(
        [ramp.expand(150, -1), wave.expand(-1, 12_000), ramp.flip(0).expand(150, -1)]
    )
    pixels, thumb = prepare(image.round().to(torch.uint8), 1, 32, 256)  # thumbnail: 47× smaller
    assert pixels.shape == (3, 32, 32) and thumb.shape == (3, 256, 3)
    one_pass = TF.resize(image, [3, 256], InterpolationMode.BICUBIC, antialias=True)
    difference = (thumb.permute(2, 0, 1).float() - one_pass.round().clamp(0, 255)).abs()
    assert float(difference.mean()) < 2.0 and float(difference.max()) < 12


class RecordingStream(DecodeStream):
    """The stream protocol, recorded on the CPU: which step ran, and inside ``active`` or not."""

    def __init__(self) -> None:
        super().__init__(torch.device("cpu"))
        self.log: list[str] = []
        self.depth = 0
        self.handed: list[torch.Tensor] = []

    def active(self):
        stream = self

        class Active:
            def __enter__(self) -> None:
                stream.depth += 1

            def __exit__(self, *exc) -> None:
                stream.depth -= 1

        return Active()

    def before_decode(self) -> None:
        self.log.append("sync" if self.depth else "sync outside")

    def consumer(self):
        self.log.append("consumer")
        return "the encoder's stream"

    def hand_over(self, tensors, consumer) -> None:
        self.log.append(f"hand over to {consumer}" + ("" if not self.depth else " inside"))
        self.handed = list(tensors)


def test_every_decode_call_follows_a_wait_and_pixels_are_handed_over(tmp_path: Path) -> None:
    good = jpeg_bytes(photo(64, 48, seed=10))
    broken = good[:200] + bytes(len(good) - 202) + b"\xff\xd9"
    items = [_item(tmp_path, n, good if n != 2 else broken) for n in (1, 2, 3)]
    stream = RecordingStream()

    def decode(tensors, **kwargs):
        stream.log.append("decode" if stream.depth else "decode outside")
        if any(bytes(t.numpy()) == broken for t in tensors):
            raise RuntimeError("nvjpeg: bad Huffman table")
        return decode_jpeg(tensors, **kwargs)

    decoder = GpuJpegDecoder(
        torch.device("cpu"), 32, 64, lambda item: replace(item, error="x"), decode, stream
    )
    try:
        out = decoder.complete(items)
    finally:
        decoder.close()
    # the batch fails, then file by file: a host-side wait right before every call
    assert stream.log == ["consumer", *["sync", "decode"] * 4, "hand over to the encoder's stream"]
    assert [id(t) for t in stream.handed] == [id(out[0].pixels), id(out[2].pixels)]


def _item(folder: Path, file_id: int, data: bytes) -> Decoded:
    path = folder / f"{file_id}.jpg"
    path.write_bytes(data)
    job = plan_jpeg(data, LIMIT, str(path), file_stamp(path))
    assert job is not None and read_unchanged(job) == data
    return Decoded(file_id, facts={"content_hash": str(file_id), **job.facts}, jpeg=job)


def _decoder(fell_back: list[int], decode=decode_jpeg) -> GpuJpegDecoder:
    def fallback(item: Decoded) -> Decoded:
        fell_back.append(item.id)
        return Decoded(item.id, facts=item.facts, error="corrupt or truncated")

    return GpuJpegDecoder(torch.device("cpu"), 32, 64, fallback, decode=decode)


def test_decoder_falls_back_per_file_when_nvjpeg_fails(tmp_path: Path) -> None:
    good = jpeg_bytes(photo(64, 48, seed=10))
    broken = good[:200] + bytes(len(good) - 202) + b"\xff\xd9"  # a header, then no scan data
    items = [_item(tmp_path, 1, good), _item(tmp_path, 2, broken), _item(tmp_path, 3, good)]
    items.append(Decoded(4, error="x"))
    calls: list[int] = []

    def decode(tensors, **kwargs):
        calls.append(len(tensors))
        if any(bytes(t.numpy()) == broken for t in tensors):
            raise RuntimeError("nvjpeg: bad Huffman table")
        return decode_jpeg(tensors, **kwargs)

    fell_back: list[int] = []
    decoder = _decoder(fell_back, decode)
    try:
        out = decoder.complete(items)
    finally:
        decoder.close()
    assert calls == [3, 1, 1, 1]  # the batch, then file by file
    assert fell_back == [2] and decoder.decoded_on_device == 2
    assert [d.id for d in out] == [1, 2, 3, 4] and out[3] is items[3]
    for d in (out[0], out[2]):
        assert d.jpeg is None and d.error is None and d.pixels.shape == (3, 32, 32)
        assert d.thumb[8:12] == b"WEBP" and Image.open(io.BytesIO(d.thumb)).size == (64, 48)
    assert out[1].error == "corrupt or truncated"


def test_a_file_changed_since_the_worker_read_it_goes_to_the_cpu(tmp_path: Path) -> None:
    items = [_item(tmp_path, n, jpeg_bytes(photo(64, 48, seed=n))) for n in (1, 2, 3)]
    (tmp_path / "2.jpg").write_bytes(jpeg_bytes(photo(64, 48, seed=99)) + b"more")  # rewritten
    (tmp_path / "3.jpg").unlink()  # gone
    assert read_unchanged(items[1].jpeg) is None and read_unchanged(items[2].jpeg) is None
    fell_back: list[int] = []
    decoder = _decoder(fell_back)
    try:
        out = decoder.complete(items)
    finally:
        decoder.close()
    assert fell_back == [2, 3] and decoder.decoded_on_device == 1 and out[0].error is None
