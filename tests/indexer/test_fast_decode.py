"""The fast decode path loses nothing: one DCT-scaled decode serves the model and the thumbnail,
uint8 transport gives the encoder's own embeddings, and SHA-256 rows recognise moves and
touches (BLAKE2b rows, never released, are no longer read)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from library_factory import photo
from PIL import Image

from indexer.decode.images import decode_image
from indexer.decode.pixels import UInt8Pixels, split_transform
from indexer.decode.workers import DecodeSettings, decode_file
from indexer.pipeline.scan import content_hash, hash_bytes, scan


def Row(*values: object) -> SimpleNamespace:  # noqa: N802 - what the scanner reads of a row
    names = ("id", "path", "size", "mtime_ns", "content_hash", "status")
    return SimpleNamespace(**dict(zip(names, values, strict=True)))


def _rotated_jpeg(path: Path, width: int, height: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, displayed portrait
    photo(width, height, seed=3).save(path, quality=90, exif=exif)


def test_draft_decode_covers_model_and_thumbnail_and_applies_orientation(tmp_path: Path) -> None:
    _rotated_jpeg(tmp_path / "big.jpg", 2400, 1800)
    decoded = decode_image(tmp_path / "big.jpg", target_size=224, thumb_size=256)
    assert (decoded.width, decoded.height) == (1800, 2400)  # displayed size
    assert decoded.image.size == (225, 300)  # 1/8 DCT scale, portrait: smallest that covers 224
    # a square photo: 1/8 would give 225 px, too small for the 256 px thumbnail, so 1/4
    photo(1800, 1800, seed=4).save(tmp_path / "square.jpg", quality=90)
    square = decode_image(tmp_path / "square.jpg", target_size=224, thumb_size=256)
    assert square.image.size == (450, 450)
    assert decode_image(tmp_path / "square.jpg", target_size=224).image.size == (225, 225)
    # non-JPEG: an integer reduction with the same bounds
    photo(1800, 1800, seed=4).save(tmp_path / "square.png")
    png = decode_image(tmp_path / "square.png", target_size=224, thumb_size=256)
    assert min(png.image.size) >= 256 and png.image.size[0] < 512


def test_thumbnail_made_from_the_reduced_image(tmp_path: Path, tiny_encoder) -> None:
    _rotated_jpeg(tmp_path / "big.jpg", 2400, 1800)
    settings = DecodeSettings(tiny_encoder.transform, target_size=224, thumb_size=256)
    decoded = decode_file(7, tmp_path / "big.jpg", settings)
    assert decoded.error is None
    thumb = Image.open(io.BytesIO(decoded.thumb))
    assert thumb.format == "WEBP" and thumb.size == (192, 256)  # portrait, long side 256
    data = (tmp_path / "big.jpg").read_bytes()
    assert decoded.facts["content_hash"] == hashlib.sha256(data).hexdigest()
    assert {"read", "hash", "decode", "pixels", "thumbnail"} <= set(decoded.cpu)


def test_uint8_transport_gives_the_encoders_embeddings(tiny_encoder) -> None:
    images = [photo(300 + 17 * n, 200 + 29 * n, seed=n) for n in range(4)]
    per_image, per_batch = split_transform(tiny_encoder.transform)
    assert isinstance(per_image, UInt8Pixels)
    pixels = [per_image(image) for image in images]
    size = tiny_encoder.image_size
    assert all(p.dtype == np.uint8 and p.shape == (3, size, size) for p in pixels)
    batch = per_batch(torch.from_numpy(np.stack(pixels)))
    reference = torch.stack([tiny_encoder.preprocess(image) for image in images])
    torch.testing.assert_close(batch, reference, atol=1e-5, rtol=0)
    np.testing.assert_allclose(
        tiny_encoder.encode_image_tensors(batch),
        tiny_encoder.encode_image_tensors(reference),
        atol=1e-5,
    )


def test_a_transform_that_cannot_be_split_runs_whole() -> None:
    def custom(image: Image.Image) -> np.ndarray:
        return np.zeros((3, 4, 4), np.float32)

    per_image, per_batch = split_transform(custom)
    assert per_image is custom and per_batch(torch.ones(2)).sum() == 2


def test_sha256_rows_recognise_moves_and_touches(tmp_path: Path) -> None:
    for name, seed in (("moved.jpg", 1), ("touched.jpg", 2)):
        photo(seed=seed).save(tmp_path / name, quality=90)
    digest = {
        name: hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
        for name in ("moved.jpg", "touched.jpg")
    }
    size = {name: (tmp_path / name).stat().st_size for name in digest}
    rows = [
        Row(1, "old/place.jpg", size["moved.jpg"], 1, digest["moved.jpg"], "indexed"),
        Row(2, "touched.jpg", size["touched.jpg"], 1, digest["touched.jpg"], "indexed"),
    ]
    result = scan(tmp_path, rows)
    assert [(i, f.path) for i, f in result.moved] == [(1, "moved.jpg")]
    assert [i for i, _ in result.touched] == [2] and not result.new and not result.changed
    data = (tmp_path / "moved.jpg").read_bytes()
    assert content_hash(tmp_path / "moved.jpg") == hash_bytes(data)
    assert hash_bytes(data) == hashlib.sha256(data).hexdigest()


def test_run_reports_cpu_by_stage_and_restores_torch_threads(tmp_path: Path, tiny_encoder) -> None:
    from indexer.pipeline.local import IndexOptions, index_library

    for n in range(3):
        photo(640, 480, seed=n).save(tmp_path / f"{n}.jpg", quality=90)
    threads = torch.get_num_threads()
    options = IndexOptions(workers=0, batch_size=2, encoder_threads=1, device="cpu")  # CPU stages
    report = index_library(tmp_path, tiny_encoder, model_ref="tiny", options=options)
    assert report.embedded == 3 and torch.get_num_threads() == threads
    expected = {"read", "hash", "decode", "pixels", "thumbnail", "main encode", "main database"}
    assert expected <= set(report.cpu) and all(v >= 0 for v in report.cpu.values())
