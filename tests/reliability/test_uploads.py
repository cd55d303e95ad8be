"""Uploads are checked on the server: size, content type by content, bombs, empty files.

Streamlit's ``type=`` filter and its upload-size check in the browser are hints a crafted
request skips; ``AppTest``'s uploader skips them too, so these tests feed hostile files straight
to the pages' handlers, and to ``retrieval.service.uploads.decode_upload`` under them.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from encoders.errors import VitrieveError
from retrieval.commands.ui import MAX_UPLOAD_MB, streamlit_command
from retrieval.service.uploads import MAX_UPLOAD_BYTES, MAX_UPLOAD_PIXELS, decode_upload

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")


def _png(width: int = 48, height: int = 48, colour=(200, 20, 20)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def _jpeg(width: int = 48, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (20, 20, 200)).save(out, format="JPEG")
    return out.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny valid PNG whose header claims ``width × height`` (a decompression bomb's header):
    a decoder that trusted it would allocate width × height × 3 bytes."""
    data = bytearray(_png(1, 1))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])  # size + depth, colour, ...
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def _zlib_bomb() -> bytes:
    """A real bomb: ~60 kB of PNG that inflates to 64 MP (over the upload pixel limit)."""
    side = 8192
    out = io.BytesIO()
    Image.new("1", (side, side), 0).save(out, format="PNG", optimize=True)
    return out.getvalue()


HOSTILE = {
    "empty.jpg": b"",
    "page.jpg": b"<!doctype html><html><script>alert(document.cookie)</script></html>",
    "drawing.jpg": b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>',
    "script.jpg": b"#!/bin/sh\nrm -rf ~\n",
    "payload.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,  # a PNG signature and garbage
    "truncated.jpg": _jpeg(256, 256)[:300],
    "pickle.jpg": b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94.",
    "archive.jpg": b"PK\x03\x04" + b"\x00" * 100,
    "header-bomb.png": _png_claiming(50_000, 50_000),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_upload_is_refused_with_its_name(name: str) -> None:
    with pytest.raises(VitrieveError, match=name.replace(".", r"\.")):
        decode_upload(HOSTILE[name], target_size=32, name=name)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = _zlib_bomb()
    assert len(bomb) < 200_000 and MAX_UPLOAD_PIXELS < 8192**2
    with pytest.raises(VitrieveError, match="bomb|pixels|large"):
        decode_upload(bomb, target_size=32, name="bomb.png")


def test_upload_over_the_limit_is_refused_without_decoding() -> None:
    too_big = _png() + b"\x00" * (MAX_UPLOAD_BYTES + 1)  # a valid image with trailing bytes
    with pytest.raises(VitrieveError, match="upload limit"):
        decode_upload(too_big, target_size=32, name="big.png")
    just_under = _png() + b"\x00" * (MAX_UPLOAD_BYTES - len(_png()) - 1)
    assert decode_upload(just_under, target_size=32).size == (48, 48)


def test_streamlit_upload_cap_matches_ours() -> None:
    assert MAX_UPLOAD_MB * 2**20 == MAX_UPLOAD_BYTES
    command = streamlit_command(None, "127.0.0.1", 8501)
    assert command[command.index("--server.maxUploadSize") + 1] == str(MAX_UPLOAD_MB)


def test_real_images_of_every_upload_type_still_work() -> None:
    for fmt in ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"):
        out = io.BytesIO()
        Image.new("RGB", (40, 30), (10, 200, 10)).save(out, format=fmt)
        assert decode_upload(out.getvalue(), target_size=32, name=f"x.{fmt}").size == (40, 30)


# --- through the pages, under AppTest ---------------------------------------------------------


def _errors(app: AppTest) -> str:
    return "\n".join(str(e.value) for e in app.error)


def _app(library: Path) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=120)
    app.session_state["library_path"] = str(library)
    return app


@pytest.mark.parametrize("name", ["page.jpg", "drawing.jpg", "empty.jpg", "header-bomb.png"])
def test_search_page_refuses_hostile_example_image(demo_library: Path, name: str) -> None:
    app = _app(demo_library).run()
    app.file_uploader[0].set_value((name, HOSTILE[name], "image/jpeg"))
    app.button(key="run-search").click().run()
    assert not app.exception, app.exception
    assert name in _errors(app), _errors(app)
    assert "search" not in app.session_state, "no search started with a refused image"
    assert not app.get("image")


def test_search_page_refuses_oversized_upload(demo_library: Path) -> None:
    app = _app(demo_library).run()
    app.file_uploader[0].set_value(("big.png", _png() + b"\x00" * MAX_UPLOAD_BYTES, "image/png"))
    app.button(key="run-search").click().run()
    assert not app.exception, app.exception
    assert "upload limit" in _errors(app)
    assert "search" not in app.session_state


def test_search_page_accepts_a_real_image(demo_library: Path) -> None:
    app = _app(demo_library).run()
    app.file_uploader[0].set_value(("red.png", _png(), "image/png"))
    app.button(key="run-search").click().run()
    assert not app.exception, app.exception
    assert not app.error, _errors(app)
    assert app.session_state["search"]["image"] is not None
    assert len(app.get("image")) >= 4


def test_classify_page_keeps_good_uploads_and_names_the_bad(demo_library: Path) -> None:
    app = _app(demo_library).run()
    app.switch_page("views/classify.py").run()
    files = [("good.png", _png(), "image/png")]
    files += [(n, HOSTILE[n], "image/jpeg") for n in ("script.jpg", "truncated.jpg", "empty.jpg")]
    app.file_uploader[0].set_value(files)
    app.button(key="classify").click().run()
    assert not app.exception, app.exception
    for name in ("script.jpg", "truncated.jpg", "empty.jpg"):
        assert name in _errors(app), _errors(app)
    names, _pictures, verdicts = app.session_state["classified"]
    assert names == ["good.png"] and len(verdicts) == 1


def test_classify_page_caps_the_number_of_uploads(demo_library: Path) -> None:
    from ui.media import MAX_UPLOADS

    app = _app(demo_library).run()
    app.switch_page("views/classify.py").run()
    many = [(f"p{i}.png", _png(8, 8, (i, 0, 0)), "image/png") for i in range(MAX_UPLOADS + 5)]
    app.file_uploader[0].set_value(many)
    app.button(key="classify").click().run()
    assert not app.exception, app.exception
    assert len(app.session_state["classified"][0]) == MAX_UPLOADS
    assert any(str(MAX_UPLOADS) in str(w.value) for w in app.warning)
