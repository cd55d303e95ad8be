"""Only library files are served, whatever the id, URL or row says; uploads are capped (413)
and decoded safely; errors are JSON without tracebacks."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


@contextlib.contextmanager
def tampered(library: Path, file_id: int, path: str | None = None,
             thumb: str | None = None) -> Iterator[None]:  # fmt: skip
    """A row whose path or thumbnail says something else, restored afterwards."""
    database = sqlite3.connect(library / "library.db", timeout=30)
    before = database.execute("SELECT path, thumb FROM files WHERE id = ?", (file_id,)).fetchone()
    with database:
        database.execute("UPDATE files SET path = ?, thumb = ? WHERE id = ?",
                         (path or before[0], thumb or before[1], file_id))  # fmt: skip
    try:
        yield
    finally:
        with database:
            database.execute("UPDATE files SET path = ?, thumb = ? WHERE id = ?",
                             (*before, file_id))  # fmt: skip
        database.close()


def _an_id(client: httpx.Client) -> int:
    return client.get("/v1/search", params={"q": "a photo", "k": 1}).json()["results"][0]["id"]


@pytest.mark.parametrize(
    "path, thumb",
    [("../../../../etc/passwd", None), ("/etc/passwd", None), ("link-out.jpg", None),
     (None, "../library.db"), (None, "/etc/passwd"), (None, "thumbs/../library.db")],
)  # fmt: skip
def test_tampered_rows_serve_nothing(client: httpx.Client, api_libraries, path, thumb) -> None:
    from retrieval.library.handle import Library

    with Library.open(api_libraries.main) as library:
        root = library.root
    link = root / "link-out.jpg"
    if not link.is_symlink():
        link.symlink_to("/etc/passwd")
    file_id = _an_id(client)
    with tampered(api_libraries.main, file_id, path, thumb):
        route = "file" if path else "thumbnail"
        response = client.get(f"/v1/images/{file_id}/{route}")
        assert response.status_code == 404, response.text
        assert "root:" not in response.text and "passwd" not in response.text
        assert response.json()["error"]
    assert client.get(f"/v1/images/{file_id}/{route}").status_code == 200  # restored


@pytest.mark.parametrize("raw", [
    "/v1/images/..%2F..%2F..%2Fetc%2Fpasswd/file", "/v1/images/1/../../../../etc/passwd",
    "/v1/images/%2e%2e/file", "/v1/../../etc/passwd", "/v1/images/1%00/file",
    "/v1/images/99999999999999999999/file", "/v1/libraries/..%2F..%2Fetc/status",
])  # fmt: skip
def test_traversal_in_the_url_is_refused(open_server: str, raw: str) -> None:
    with httpx.Client() as session:
        request = session.build_request("GET", open_server)
        request.url = request.url.copy_with(raw_path=raw.encode())
        response = session.send(request)
    assert 400 <= response.status_code < 500, raw
    assert "root:" not in response.text and response.json()["error"]


def test_oversize_uploads_are_413(client: httpx.Client) -> None:
    big = b"\xff" * 1_500_000  # the test server's limit is 1 MB
    declared = client.post("/v1/search", files={"image": ("big.jpg", big)})
    assert declared.status_code == 413 and "limit" in declared.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap counts the stream
        for _ in range(30):
            yield b"x" * 100_000

    streamed = client.post("/v1/embed", content=chunks(),
                           headers={"content-type": "application/json"})  # fmt: skip
    assert streamed.status_code == 413
    one_file = client.post(
        "/v1/classify",
        data={"labels": "a,b"},
        files={"images": ("big.png", b"\x89PNG" + b"\0" * 990_000)},
    )
    assert one_file.status_code in (400, 413)  # under the cap: refused as not an image


def test_non_images_and_bombs_are_refused(client: httpx.Client) -> None:
    bad = Path(__file__).parents[1] / "data" / "bad"
    for name in ("polyglot_png_html.png", "bomb_16k_1bit.png", "svg_named.png", "one_byte.png"):
        data = (bad / name).read_bytes()
        response = client.post("/v1/search", files={"image": (name, data)})
        assert response.status_code in (200, 400), (name, response.text)
        if response.status_code == 400:
            assert response.json()["error"] and "Traceback" not in response.text
    text = client.post("/v1/search", files={"image": ("a.jpg", b"just text")})
    assert text.status_code == 400


def test_a_server_error_names_no_path(keyed_server) -> None:
    """A library broken under the running server (its vector file overwritten) gives a 503
    that names no path; once repaired, the server answers again."""
    headers = {"Authorization": f"Bearer {keyed_server.read_key}"}
    vectors = keyed_server.library / "vectors.faiss"
    saved = vectors.read_bytes()
    try:
        vectors.write_bytes(b"not a faiss index" * 100)
        broken = httpx.get(f"{keyed_server.url}/v1/status", headers=headers)
        assert broken.status_code == 503, broken.text
        assert broken.json()["error"] == "library 'keyed' is unavailable; see the server log"
    finally:
        vectors.write_bytes(saved)
    assert str(keyed_server.library) not in broken.text and "/" not in broken.text
    assert "faiss" not in broken.text.lower() and "Traceback" not in broken.text
    deadline = time.monotonic() + 30
    while httpx.get(f"{keyed_server.url}/v1/status", headers=headers).status_code != 200:
        assert time.monotonic() < deadline, "the server did not recover the repaired library"
        time.sleep(0.2)
