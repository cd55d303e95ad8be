"""Write the corpus of known-bad image files in tests/data/bad/ (run once; the files are committed).

Each file is crafted to break one guard of the decoding path: empty and truncated files,
decompression bombs (real data and header-only), absurd dimensions in every format's header,
wrong extensions, polyglots, corrupt EXIF, looping and deeply nested TIFF IFDs, formats that
must never be opened (EPS/PostScript, SVG). ``EXPECTED`` says what decoding each one must give:
``"error"`` (an ``ImageError``), ``"ok"`` (an RGB image) or ``"either"`` (one of the two).

    .venv/bin/python tests/data/make_bad_corpus.py
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image

BAD_DIR = Path(__file__).parent / "bad"


def _small(fmt: str, **kwargs) -> bytes:
    """A valid 32×24 picture in ``fmt`` (gradient, so every codec has real data)."""
    image = Image.linear_gradient("L").resize((32, 24)).convert("RGB")
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, idat: bytes, depth: int = 8, colour: int = 0) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _bomb_png() -> bytes:
    """A complete, valid 16384 × 16384 1-bit PNG (268 MP) in ~30 kB: a real decompression bomb."""
    side = 16384
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + side // 8)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return _png(side, side, idat, depth=1)


def _jpeg_with_size(width: int, height: int) -> bytes:
    """A valid small JPEG whose SOF0 header claims another size."""
    data = bytearray(_small("JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _jpeg_with_app1(payload: bytes) -> bytes:
    data = _small("JPEG")
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return data[:2] + segment + data[2:]


def _bmp(width: int, height: int, bpp: int = 24) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bpp, 0, 0, 2835, 2835, 0, 0)
    body = b"\x80" * 64
    header = b"BM" + struct.pack("<IHHI", 14 + len(info) + len(body), 0, 0, 14 + len(info))
    return header + info + body


def _tiff(entries: list[tuple[int, int, int, int]], next_ifd: int = 0, tail: bytes = b"") -> bytes:
    """A little-endian TIFF with one IFD at offset 8: ``(tag, type, count, value)`` entries."""
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in sorted(entries):
        ifd += struct.pack("<HHII", tag, kind, count, value)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", next_ifd) + tail


SHORT, LONG = 3, 4


def _tiff_1px(extra: list[tuple[int, int, int, int]] = (), next_ifd: int = 0, **kw) -> bytes:
    """A 1×1 8-bit greyscale TIFF; its pixel byte sits right after the IFD."""
    entries = [(256, LONG, 1, kw.get("width", 1)), (257, LONG, 1, kw.get("height", 1)),
               (258, SHORT, 1, 8), (259, SHORT, 1, 1), (262, SHORT, 1, 1),
               (278, LONG, 1, 1), (279, LONG, 1, kw.get("strip_bytes", 1)), *extra]  # fmt: skip
    pixel_at = 8 + 2 + 12 * (len(entries) + 1) + 4
    entries.append((273, LONG, 1, kw.get("strip_at", pixel_at)))
    return _tiff(entries, next_ifd, tail=b"\x7f")


def _tiff_nested_exif(depth: int) -> bytes:
    """A 1×1 TIFF whose EXIF IFD holds an EXIF IFD pointer ... ``depth`` levels deep, the
    last one pointing back at the first (a cycle)."""
    base = _tiff_1px(extra=[(34665, LONG, 1, 0)])
    first = len(base)
    ifds = b""
    for level in range(depth):
        target = first + 18 * (level + 1) if level + 1 < depth else first
        ifds += struct.pack("<H", 1) + struct.pack("<HHII", 34665, LONG, 1, target)
        ifds += struct.pack("<I", 0)
    return base.replace(struct.pack("<HHII", 34665, LONG, 1, 0),
                        struct.pack("<HHII", 34665, LONG, 1, first)) + ifds  # fmt: skip


def _gif_screen(width: int, height: int) -> bytes:
    frame = bytearray(_small("GIF"))
    frame[6:10] = struct.pack("<HH", width, height)
    descriptor = frame.index(b"\x2c")  # the first image descriptor
    frame[descriptor + 5 : descriptor + 9] = struct.pack("<HH", width, height)
    return bytes(frame)


def _webp_with_size(width: int, height: int) -> bytes:
    data = bytearray(_small("WEBP", lossless=True))
    # VP8L: signature 0x2f at 20, then 14-bit width-1 and height-1 packed little-endian
    bits = (width - 1) | ((height - 1) << 14)
    data[21:25] = struct.pack("<I", bits | (int.from_bytes(data[21:25], "little") & ~0xFFFFFFF))
    return bytes(data)


def _exif_bytes(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _exif_raw(tag: int, kind: int, count: int, value: bytes) -> bytes:
    """An EXIF block with one hand-written entry (any type, even a wrong one)."""
    entry = struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")[:4]
    return b"Exif\x00\x00II*\x00" + struct.pack("<IH", 8, 1) + entry + struct.pack("<I", 0)


def _zip_tail() -> bytes:
    out = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("payload.sh", "#!/bin/sh\necho owned\n")
    return out.getvalue()


# name → (how to make it, expected outcome of decode_image)
CORPUS: dict[str, tuple[Callable[[], bytes], str]] = {
    "zero_byte.jpg": (lambda: b"", "error"),
    "one_byte.png": (lambda: b"\x89", "error"),
    "truncated_half.jpg": (lambda: _small("JPEG")[: len(_small("JPEG")) // 2], "error"),
    "truncated_header.png": (lambda: _small("PNG")[:30], "error"),
    "truncated.webp": (lambda: _small("WEBP")[:40], "error"),
    "truncated.gif": (lambda: _small("GIF")[:20], "error"),
    "truncated.tif": (lambda: _small("TIFF")[:60], "error"),
    "bomb_16k_1bit.png": (_bomb_png, "error"),
    "bomb_header_only.png": (lambda: _png(100_000, 100_000, zlib.compress(b"\0" * 64)), "error"),
    "huge_dims_max.png": (lambda: _png(0x7FFFFFFF, 0x7FFFFFFF, b""), "error"),
    "zero_width.png": (lambda: _png(0, 16, zlib.compress(b"\0" * 16)), "error"),
    "huge_dims.jpg": (lambda: _jpeg_with_size(65500, 65500), "error"),
    "huge_dims.gif": (lambda: _gif_screen(65535, 65535), "error"),
    "huge_dims.bmp": (lambda: _bmp(1_000_000, 1_000_000), "error"),
    "negative_huge_height.bmp": (lambda: _bmp(64, -2_000_000_000), "error"),
    "huge_dims.webp": (lambda: _webp_with_size(16384, 16384), "either"),
    "huge_dims.tif": (lambda: _tiff_1px(width=0x7FFFFFFF, height=0x7FFFFFFF), "error"),
    "tiff_strip_out_of_file.tif": (lambda: _tiff_1px(strip_at=0xFFFFFF00), "error"),
    "tiff_strip_huge_count.tif": (lambda: _tiff_1px(strip_bytes=0xFFFFFFFF), "either"),
    "tiff_ifd_loop.tif": (lambda: _tiff_1px(next_ifd=8), "either"),
    "tiff_ifd_past_end.tif": (lambda: _tiff([], 0) + b"", "error"),
    "tiff_nested_exif_cycle.tif": (lambda: _tiff_nested_exif(200), "either"),
    "tiff_first_ifd_loop.tif": (
        lambda: b"II*\x00\x08\x00\x00\x00" + b"\x00\x00\x08\x00\x00\x00",
        "error",
    ),  # fmt: skip
    "exif_orientation_9.jpg": (lambda: _small("JPEG", exif=_exif_bytes(9)), "ok"),
    "exif_orientation_text.jpg": (
        lambda: _small("JPEG", exif=_exif_raw(0x0112, 2, 4, b"six")),
        "ok",
    ),
    "exif_orientation_huge.jpg": (lambda: _small("JPEG", exif=_exif_bytes(65535)), "ok"),
    "exif_ifd_past_end.jpg": (
        lambda: _jpeg_with_app1(b"Exif\x00\x00II*\x00" + struct.pack("<I", 0xFFFFFF00)),
        "ok",
    ),
    "exif_garbage.jpg": (lambda: _jpeg_with_app1(b"Exif\x00\x00" + bytes(range(256)) * 4), "ok"),
    "png_named.jpg": (lambda: _small("PNG"), "ok"),
    "jpeg_named.png": (lambda: _small("JPEG"), "ok"),
    "text_named.png": (lambda: b"shopping list: eggs, milk\n" * 20, "error"),
    "svg_named.png": (
        lambda: b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        "error",
    ),
    "postscript_named.jpg": (
        lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n(x) print\n",
        "error",
    ),
    "html_named.gif": (lambda: b"<!doctype html><img src=x onerror=alert(1)>", "error"),
    "polyglot_jpeg_zip.jpg": (lambda: _small("JPEG") + _zip_tail(), "ok"),
    "polyglot_png_html.png": (lambda: _small("PNG") + b"<html><script>alert(1)</script>", "ok"),
    "polyglot_gif_js.gif": (lambda: b"GIF89a/*\x00\x00\x00\x00*/=1;alert(1);", "error"),
    "fake_heic.heic": (
        lambda: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\0" * 64,
        "error",
    ),  # fmt: skip
    "fake_avif.avif": (lambda: b"\x00\x00\x00\x1cftypavif" + bytes(range(256)), "error"),
    "bmp_bad_bpp.bmp": (lambda: _bmp(8, 8, bpp=7), "error"),
}


def write_corpus(directory: Path = BAD_DIR) -> list[Path]:
    """(Re)write every corpus file; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, (make, _expected) in CORPUS.items():
        path = directory / name
        path.write_bytes(make())
        paths.append(path)
    return paths


def expected(name: str) -> str:
    return CORPUS[name][1]


if __name__ == "__main__":
    for written in write_corpus():
        print(f"{written.stat().st_size:>8}  {written.name}")
