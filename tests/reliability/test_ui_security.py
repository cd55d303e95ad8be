"""UI security: nothing outside the library can be read or served, whatever id, row, symlink,
URL or request the UI is given; the server keeps XSRF on and listens on loopback by default.

Three levels: ``retrieval.library.Library`` (the one gate every file read goes through),
the Streamlit app under ``AppTest`` (pages fed tampered rows and URLs), and a running
``vitrieve ui`` server over HTTP (its static, media, component and upload endpoints).
"""

from __future__ import annotations

import shutil
import socket
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest
from uiserver import running_ui

from encoders.errors import VitrieveError
from retrieval.commands.ui import MAX_UPLOAD_MB, streamlit_command
from retrieval.library import Library

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "ui" / "app.py")
XSRF = "_streamlit_xsrf"  # Streamlit's XSRF cookie name (streamlit.web.server)
SECRET = "vitrieve-secret-marker-7f3a"  # the content of every file that must stay unreachable
BAD_IDS = [-1, 0, 2**31, 2**63, 2**80, -(2**70), "1; DROP TABLE files", "../../etc/passwd",
           "", " ", "1.5e3", "nan", float("inf"), float("nan"), None, b"1", [1],
           {"id": 1}]  # fmt: skip


# --- a private copy of the demo library that each test may tamper with ----------------------


@pytest.fixture
def library_copy(demo_library: Path, tmp_path: Path) -> Path:
    """A copy of the demo photos + library (its root rewritten), and a secret file beside it."""
    with Library.open(demo_library) as original:
        root, library_dir = original.root, original.path
    photos = tmp_path / "photos"
    shutil.copytree(root, photos, symlinks=True, ignore=shutil.ignore_patterns(".vitrieve"))
    target = photos / ".vitrieve"
    shutil.copytree(library_dir, target)
    manifest = (target / "library.json").read_text().replace(str(root), str(photos))
    (target / "library.json").write_text(manifest)
    (tmp_path / "secret.txt").write_text(SECRET)
    _secret_image(tmp_path / "secret.jpg")
    return target


def _secret_image(path: Path) -> None:
    """A valid JPEG outside the library: decodable, so only the path checks can refuse it."""
    Image.new("RGB", (64, 64), (1, 2, 3)).save(path, format="JPEG")


def _rows(library_dir: Path) -> list[tuple[int, str, str | None]]:
    with sqlite3.connect(library_dir / "library.db") as db:
        return db.execute(
            "SELECT id, path, thumb FROM files WHERE status = 'indexed' ORDER BY id"
        ).fetchall()


def _tamper(library_dir: Path, file_id: int, column: str, value: str) -> None:
    """Rewrite one row's path or thumbnail directly in library.db (as an attacker with the db)."""
    assert column in ("path", "thumb")
    with sqlite3.connect(library_dir / "library.db") as db:
        db.execute(f"UPDATE files SET {column} = ? WHERE id = ?", (value, file_id))


# --- library level ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_crafted_ids_are_refused_with_a_clear_error(library_copy: Path, bad) -> None:
    with Library.open(library_copy) as library:
        for access in (library.record, library.file_path, library.thumbnail_path):
            with pytest.raises(VitrieveError):
                access(bad)


def _unsafe_paths(tmp_path: Path, library_dir: Path) -> list[str]:
    photos = library_dir.parent
    depth = len(photos.parts) + 3
    return [
        "../secret.jpg",
        "../secret.txt",
        "album/../../secret.jpg",
        str(tmp_path / "secret.jpg"),  # absolute
        "/" + "/".join([".."] * depth) + str(tmp_path / "secret.jpg"),
        "//" + str(tmp_path / "secret.jpg").lstrip("/"),
        "./../secret.jpg",
        "..\\secret.jpg",  # a Windows separator: a plain (missing) file name on POSIX
        "~/secret.jpg",
        "missing.jpg",
        "",
        ".",
        "album",  # a directory, not a file
        "secret.jpg\x00.jpg",
    ]


def test_tampered_rows_never_leave_the_library(library_copy: Path, tmp_path: Path) -> None:
    (library_copy.parent / "album").mkdir(exist_ok=True)
    victim = _rows(library_copy)[0][0]
    for unsafe in _unsafe_paths(tmp_path, library_copy):
        _tamper(library_copy, victim, "path", unsafe)
        with Library.open(library_copy) as library, pytest.raises(VitrieveError):
            library.file_path(victim)
        _tamper(library_copy, victim, "thumb", unsafe)
        with Library.open(library_copy) as library:
            assert library.thumbnail_path(victim) is None, unsafe


def test_symlinks_out_of_the_library_are_refused(library_copy: Path, tmp_path: Path) -> None:
    photos = library_copy.parent
    (photos / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    (photos / "linked-dir").symlink_to(tmp_path, target_is_directory=True)
    (library_copy / "thumbs" / "link.webp").symlink_to(tmp_path / "secret.jpg")
    victim = _rows(library_copy)[0][0]
    for unsafe in ("link.jpg", "linked-dir/secret.jpg"):
        _tamper(library_copy, victim, "path", unsafe)
        with Library.open(library_copy) as library, pytest.raises(VitrieveError, match="out"):
            library.file_path(victim)
    _tamper(library_copy, victim, "thumb", "thumbs/link.webp")
    with Library.open(library_copy) as library:
        assert library.thumbnail_path(victim) is None


def test_symlink_inside_the_library_still_works(library_copy: Path) -> None:
    """The checks refuse what leaves the library, not symlinks as such."""
    victim, path, _ = _rows(library_copy)[0]
    photos = library_copy.parent
    (photos / "alias.jpg").symlink_to(photos / path)
    _tamper(library_copy, victim, "path", "alias.jpg")
    with Library.open(library_copy) as library:
        assert library.file_path(victim) == (photos / path).resolve()


def test_ui_readers_return_nothing_for_tampered_rows(library_copy: Path, tmp_path: Path) -> None:
    """ui.media (the only code that turns files into bytes for the browser) serves nothing."""
    from ui import media

    victim = _rows(library_copy)[0][0]
    _tamper(library_copy, victim, "path", str(tmp_path / "secret.jpg"))
    _tamper(library_copy, victim, "thumb", "../../secret.jpg")
    with Library.open(library_copy) as library:
        assert media.thumbnail_bytes(library, victim) is None
        assert media.large_bytes(library, victim) is None
        for bad in BAD_IDS:
            assert media.thumbnail_bytes(library, bad) is None, bad
            assert media.large_bytes(library, bad) is None, bad


# --- the app, under AppTest ------------------------------------------------------------------


def _app(library: Path | str | None, query_params: dict[str, str] | None = None) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=120)
    if library is not None:
        app.session_state["library_path"] = str(library)
    for key, value in (query_params or {}).items():
        app.query_params[key] = value
    return app


def _shown_text(app: AppTest) -> str:
    kinds = ("title", "markdown", "caption", "info", "warning", "error", "success", "code")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(app, kind))


def test_search_page_over_tampered_rows_shows_no_foreign_file(
    library_copy: Path, tmp_path: Path
) -> None:
    """Every indexed row points outside the library: the grid shows "missing", never the file."""
    for n, (file_id, _, _) in enumerate(_rows(library_copy)):
        _tamper(library_copy, file_id, "path", f"{'./' * n}../secret.jpg")  # paths are unique
        _tamper(library_copy, file_id, "thumb", str(tmp_path / "secret.jpg"))
    app = _app(library_copy).run()
    app.text_input(key="query").set_value("a red circle")
    app.button(key="run-search").click().run()
    assert not app.exception, app.exception
    assert not app.get("image"), "no picture of a file outside the library"
    assert app.warning and all("missing" in str(w.value) for w in app.warning)
    next(b for b in app.button if b.label == "Open").click().run()
    assert not app.exception, app.exception
    assert "cannot be shown" in _shown_text(app)
    assert not app.get("image")


@pytest.mark.parametrize("selected", [-1, 2**63, "../../etc/passwd"])
def test_crafted_selection_in_session_is_a_message(library_copy: Path, selected) -> None:
    """A forged "open this photo" id (session state is the only channel) ends in a message."""
    app = _app(library_copy).run()
    app.text_input(key="query").set_value("a red circle")
    app.button(key="run-search").click().run()
    app.session_state["selected_id"] = selected
    app.run()
    assert not app.exception, app.exception


@pytest.mark.parametrize(
    "value",
    [
        "/etc",
        "/",
        "../../..",
        "~root",
        "~no-such-user/x",
        "/nonexistent\x00/x",
        "x" * 5000,
        "/".join(["y" * 300] * 3),
        "/proc/self",
    ],
)
def test_library_query_param_cannot_break_or_expose(value: str) -> None:
    """The only query parameter the UI reads (``?library=``) opens only real libraries."""
    app = _app(None, {"library": value}).run()
    assert not app.exception, app.exception
    assert not app.get("image")
    assert "root:x:0" not in _shown_text(app) and SECRET not in _shown_text(app)


AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "s" * 32,
    "client_id": "vitrieve",
    "client_secret": "x",
    "server_metadata_url": "https://id.example.org/.well-known/openid-configuration",
}


def test_without_auth_settings_the_app_needs_no_login(library_copy: Path) -> None:
    app = _app(library_copy)
    app.user["is_logged_in"] = False
    app.run()
    assert not app.exception, app.exception
    assert "Search" in [str(t.value) for t in app.title]


def test_with_auth_settings_nothing_shows_before_login(library_copy: Path) -> None:
    app = _app(library_copy)
    app.secrets["auth"] = AUTH
    app.user["is_logged_in"] = False
    app.run()
    assert not app.exception, app.exception
    assert [b.label for b in app.button] == ["Log in"]
    assert not app.text_input and not app.get("image") and "Search" not in _shown_text(app)


def test_with_auth_settings_only_allowed_accounts_get_in(library_copy: Path) -> None:
    for email, allowed in (("eve@example.com", False), ("Me@Example.org", True)):
        app = _app(library_copy)
        app.secrets["auth"] = AUTH
        app.secrets["vitrieve"] = {"allowed_emails": ["me@example.org"]}
        app.user.update({"is_logged_in": True, "email": email})
        app.run()
        assert not app.exception, app.exception
        titles = [str(t.value) for t in app.title]
        assert ("Search" in titles) == allowed, (email, titles, _shown_text(app))
        assert any(b.label == "Log out" for b in app.button)


# --- a running server, over HTTP -------------------------------------------------------------


@pytest.fixture(scope="module")
def ui_server(demo_library: Path, tmp_path_factory: pytest.TempPathFactory):
    """``vitrieve ui`` on a free loopback port (module-scoped: started once)."""
    with running_ui(demo_library, tmp_path_factory.mktemp("ui")) as url:
        yield url


def _fetch(url: str, method: str = "GET", data: bytes | None = None, headers=None):
    """(status, body) of one request; never raises for an HTTP error status."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _raw_get(port: int, target: str) -> tuple[int, bytes]:
    """A GET with the target sent byte for byte (urllib would normalise ``..`` away)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                     .encode())  # fmt: skip
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    status = int(reply.split(b" ", 2)[1])
    return status, reply.partition(b"\r\n\r\n")[2]


TRAVERSALS = [
    "/media/../../../../../../etc/passwd",
    "/media/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/media/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/app/static/../../../../../../etc/passwd",
    "/app/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/static/../../../../../../etc/passwd",
    "/static/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/component/../../../../../../etc/passwd",
    "/component/x/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/../../../../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/etc/passwd",
    "/ui/app.py",
    "/app.py",
    "/views/search.py",
    "/app/static/app.py",
    "/media/secret.jpg",
    "/_stcore/../etc/passwd",
    "/vectors.faiss",
    "/library.db",
]


def test_http_endpoints_serve_no_file_outside_the_app(ui_server: str) -> None:
    port = int(ui_server.rsplit(":", 1)[1])
    for target in TRAVERSALS:
        status, body = _raw_get(port, target)
        assert b"root:" not in body, target
        assert b"import streamlit" not in body, target  # no source of ui/ either
        assert b"SQLite format" not in body, target
        assert status in (200, 301, 302, 400, 403, 404), (target, status)


def _multipart(name: str = "x.jpg", content: bytes = b"xxxx") -> tuple[bytes, str]:
    boundary = "vitrieveboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{name}\"\r\nContent-Type: image/jpeg\r\n\r\n").encode()  # fmt: skip
    return body + content + f"\r\n--{boundary}--\r\n".encode(), boundary


def _xsrf_cookie(ui_server: str) -> str:
    """The XSRF cookie the server sets with the health check a page polls."""
    with urllib.request.urlopen(f"{ui_server}/_stcore/health", timeout=15) as response:
        cookies = response.headers.get_all("Set-Cookie") or []
    values = [c.split(";", 1)[0].split("=", 1)[1] for c in cookies if c.startswith(f"{XSRF}=")]
    assert values, f"no _xsrf cookie set: {cookies}"
    return values[0]


def test_upload_without_xsrf_token_is_refused(ui_server: str) -> None:
    """A cross-site request cannot upload or delete: without the token → 403; the same
    request with the page's token pair gets past XSRF (and fails on the fake session: 400)."""
    body, boundary = _multipart()
    form = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    url = f"{ui_server}/_stcore/upload_file/no-such-session/file-1"
    cookie = _xsrf_cookie(ui_server)
    forged = {**form, "Origin": "http://evil.example"}
    assert _fetch(url, "PUT", body, forged)[0] == 403
    assert _fetch(url, "PUT", body, {**forged, "Cookie": f"{XSRF}={cookie}"})[0] == 403
    assert _fetch(url, "PUT", body, {**forged, "X-Xsrftoken": cookie})[0] == 403
    assert _fetch(url, "DELETE", None, forged)[0] == 403
    assert _fetch(url, "POST", body, forged)[0] in (403, 405)
    wrong = cookie[:-4] + ("AAAA" if not cookie.endswith("AAAA") else "BBBB")
    assert _fetch(url, "PUT", body, {**form, "Cookie": f"{XSRF}={cookie}",
                                     "X-Xsrftoken": wrong})[0] == 403  # fmt: skip
    with_token = {**form, "Cookie": f"{XSRF}={cookie}", "X-Xsrftoken": cookie}
    assert _fetch(url, "PUT", body, with_token)[0] == 400  # past XSRF: unknown session


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port`` (from /proc/net/tcp{,6})."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.rpartition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_server_listens_on_loopback_only(ui_server: str) -> None:
    port = int(ui_server.rsplit(":", 1)[1])
    addresses = _listening_addresses(port)
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp on this system")
    assert addresses == {"0100007F"}, addresses  # 127.0.0.1, nothing else (no 0.0.0.0, no ::)


# --- the launcher ----------------------------------------------------------------------------


def test_launcher_keeps_protections_on(tmp_path: Path) -> None:
    command = streamlit_command(tmp_path, "127.0.0.1", 8765)
    options = dict(zip(command[5::2], command[6::2], strict=False))
    assert options["--server.address"] == "127.0.0.1"
    assert options["--server.enableXsrfProtection"] == "true"
    assert options["--server.enableCORS"] == "true"
    assert options["--server.enableStaticServing"] == "false"
    assert options["--server.maxUploadSize"] == str(MAX_UPLOAD_MB)
    joined = " ".join(command).lower()
    assert "xsrfprotection false" not in joined and "enablecors false" not in joined


def test_default_host_is_loopback_and_exposing_is_explicit() -> None:
    import inspect

    from retrieval.commands import demo, ui

    for command in (ui.ui, demo.demo):
        host = inspect.signature(command).parameters["host"].default
        assert getattr(host, "default", host) == "127.0.0.1"
    exposed = streamlit_command(None, "0.0.0.0", 8765)
    assert exposed[exposed.index("--server.address") + 1] == "0.0.0.0"
    assert exposed[exposed.index("--server.enableXsrfProtection") + 1] == "true"
