"""Decoding: every awkward encoding becomes a correct RGB image, every broken file a reason."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from library_factory import BOMB_LIMIT, jpeg_bytes, photo
from PIL import Image

from indexer.decode.images import ImageError, decode_image, looks_like_image, make_thumbnail


def test_bad_library_decodes_good_and_reports_bad(bad_library) -> None:
    for relative in bad_library.good:
        decoded = decode_image(bad_library.root / relative, target_size=32, max_pixels=BOMB_LIMIT)
        assert decoded.image.mode == "RGB", relative
        assert min(decoded.image.size) >= min(16, min(decoded.width, decoded.height))
    for relative, reason in bad_library.bad.items():
        with pytest.raises(ImageError) as info:
            decode_image(bad_library.root / relative, target_size=32, max_pixels=BOMB_LIMIT)
        assert reason in info.value.reason and info.value.reason, relative


def test_exif_orientation_and_date(bad_library) -> None:
    decoded = decode_image(bad_library.root / "rotated.jpg", target_size=32)
    assert (decoded.width, decoded.height) == (40, 80)  # stored 80 × 40, displayed rotated
    assert decoded.image.size == (40, 80)
    assert decoded.taken_at is not None and decoded.taken_at.isoformat() == "2021-07-14T09:30:00"


def test_alpha_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255  # red, fully transparent except the first row
    rgba[0, :, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    pixels = np.asarray(decode_image(tmp_path / "a.png", target_size=8).image)
    assert tuple(pixels[0, 0]) == (255, 0, 0)
    assert tuple(pixels[4, 4]) == (255, 255, 255)


def test_sixteen_bit_greyscale_keeps_its_range(bad_library) -> None:
    pixels = np.asarray(decode_image(bad_library.root / "gray16.png", target_size=48).image)
    assert pixels.min() == 0 and pixels.max() == 255
    assert 100 < pixels.mean() < 155  # a ramp: not clipped to white, not crushed to black


def test_cmyk_colours_survive(tmp_path: Path) -> None:
    Image.new("RGB", (32, 32), (200, 30, 30)).convert("CMYK").save(tmp_path / "c.jpg")
    r, g, b = np.asarray(decode_image(tmp_path / "c.jpg", target_size=8).image).mean((0, 1))
    assert r > 150 and g < 80 and b < 80


def test_animated_gif_gives_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (16, 16), c).convert("P") for c in ("blue", "yellow")]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    r, g, b = np.asarray(decode_image(tmp_path / "a.gif", target_size=8).image).mean((0, 1))
    assert b > 200 and r < 50


def test_large_jpeg_is_reduced_but_not_below_target(tmp_path: Path) -> None:
    (tmp_path / "big.jpg").write_bytes(jpeg_bytes(photo(3000, 2000)))
    decoded = decode_image(tmp_path / "big.jpg", target_size=224)
    assert (decoded.width, decoded.height) == (3000, 2000)
    assert 224 <= min(decoded.image.size) < 448
    png = tmp_path / "big.png"
    photo(1000, 900).save(png)
    assert 224 <= min(decode_image(png, target_size=224).image.size) < 448


def test_bomb_is_rejected_before_decoding(bad_library) -> None:
    with pytest.raises(ImageError, match="decompression bomb"):
        decode_image(bad_library.root / "bomb.png", target_size=32, max_pixels=1_000_000)
    assert decode_image(bad_library.root / "bomb.png", target_size=32).width == 2500


def test_content_not_extension_decides(bad_library) -> None:
    assert decode_image(bad_library.root / "png_named.jpg", target_size=8).format == "PNG"
    assert looks_like_image(bad_library.root / "jpeg_without_suffix.dat")
    assert not looks_like_image(bad_library.root / "notes.txt")


def test_heic_through_pillow_heif(tmp_path: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    try:
        pillow_heif.from_pillow(photo(64, 48)).save(tmp_path / "p.heic", quality=80)
    except Exception as exc:  # wheels without an HEVC encoder
        pytest.skip(f"pillow-heif cannot encode HEIC here: {exc}")
    decoded = decode_image(tmp_path / "p.heic", target_size=16)
    assert decoded.format == "HEIF" and (decoded.width, decoded.height) == (64, 48)
    assert min(decoded.image.size) >= 16


def test_heic_without_pillow_heif_says_what_to_install(tmp_path: Path, monkeypatch) -> None:
    import sys

    import indexer.decode.images as images

    fake = tmp_path / "x.heic"
    fake.write_bytes(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64)
    monkeypatch.setattr(images, "_heif_registered", False)
    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    with pytest.raises(ImageError, match=r"install vitrieve\[heic\]"):
        decode_image(fake, target_size=8)


def test_thumbnail_is_webp(bad_library) -> None:
    decoded = decode_image(bad_library.root / "plain.jpg", target_size=32)
    thumb = Image.open(io.BytesIO(make_thumbnail(decoded.image, size=20)))
    assert thumb.format == "WEBP" and max(thumb.size) == 20
