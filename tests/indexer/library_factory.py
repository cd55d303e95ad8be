"""A generated photo folder with every kind of file a real library throws at the indexer."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

BOMB_LIMIT = 4_000_000  # tests index with max_pixels=BOMB_LIMIT; bomb.png is 2500 × 2500


@dataclass
class BadLibrary:
    root: Path
    good: set[str] = field(default_factory=set)  # relative paths that must be indexed
    bad: dict[str, str] = field(default_factory=dict)  # relative path → expected reason part
    ignored: set[str] = field(default_factory=set)  # present but never a candidate


def photo(width: int = 64, height: int = 48, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """A smooth random picture (gradients + noise), small enough to keep tests fast."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width, y / height, (x + y) / (width + height)], -1) * 200
    pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    return (
        Image.fromarray(pixels, "RGB").convert(mode)
        if mode != "RGB"
        else Image.fromarray(pixels, "RGB")
    )


def jpeg_bytes(image: Image.Image, **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", **kwargs)
    return out.getvalue()


def _good(lib: BadLibrary, relative: str, save) -> None:
    path = lib.root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    save(path)
    lib.good.add(relative)


def _bad(lib: BadLibrary, relative: str, data: bytes, reason: str) -> None:
    path = lib.root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    lib.bad[relative] = reason


def make_bad_library(root: Path) -> BadLibrary:
    """Good images in every awkward encoding, broken files of every kind, traps for the walk."""
    lib = BadLibrary(root)
    root.mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    exif.get_ifd(0x8769)[0x9003] = "2021:07:14 09:30:00"
    _good(lib, "plain.jpg", lambda p: photo(seed=1).save(p, quality=90))
    _good(lib, "rotated.jpg", lambda p: photo(80, 40, seed=2).save(p, exif=exif))
    _good(lib, "cmyk.jpg", lambda p: photo(seed=3, mode="CMYK").save(p, "JPEG"))
    _good(lib, "gray16.png", lambda p: _gray16(p))
    _good(lib, "alpha.png", lambda p: photo(seed=4, mode="RGBA").save(p))
    _good(lib, "la.png", lambda p: photo(seed=5, mode="LA").save(p))
    _good(lib, "palette.png", lambda p: photo(seed=6).convert("P").save(p))
    _good(lib, "animated.gif", lambda p: _animated_gif(p))
    _good(lib, "sub dir/ünïcødé name with spaces.webp", lambda p: photo(seed=7).save(p))
    _good(lib, "sub dir/deeper/tiny.bmp", lambda p: photo(16, 16, seed=8).save(p))
    _good(lib, "sub dir/scan.tiff", lambda p: photo(seed=9).save(p))
    _good(lib, "png_named.jpg", lambda p: photo(seed=10).save(p, format="PNG"))
    _good(lib, "jpeg_without_suffix.dat", lambda p: photo(seed=11).save(p, format="JPEG"))
    full = jpeg_bytes(photo(256, 192, seed=12))
    _bad(lib, "truncated.jpg", full[: len(full) // 2], "truncated")
    _bad(lib, "corrupt.jpg", full[:200] + os.urandom(3000), "")
    _bad(lib, "empty.jpg", b"", "empty file")
    _bad(lib, "notes.png", b"shopping list: eggs, milk\n" * 20, "not a supported image")
    _bad(lib, "bomb.png", _bomb_png(), "decompression bomb")
    (root / "notes.txt").write_text("not a photo")
    (root / "sidecar.xmp").write_text("<x:xmpmeta/>")
    lib.ignored |= {"notes.txt", "sidecar.xmp"}
    (root / ".hidden").mkdir()
    photo(seed=13).save(root / ".hidden" / "secret.jpg")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    os.symlink(root, root / "sub dir" / "loop")  # a folder symlink back to the root
    os.symlink(root / "plain.jpg", root / "link_to_plain.jpg")
    return lib


def _gray16(path: Path) -> None:
    ramp = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    Image.fromarray(ramp).save(path)  # mode I;16


def _animated_gif(path: Path) -> None:
    frames = [photo(seed=s).convert("P") for s in (20, 21, 22)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


def _bomb_png() -> bytes:
    out = io.BytesIO()
    Image.new("1", (2500, 2500)).save(out, format="PNG")  # 6.25 MP in a few hundred bytes
    return out.getvalue()
