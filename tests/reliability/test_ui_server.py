"""UI security over HTTP: a running ``vitrieve ui`` serves no file outside the app through its
static, media and component endpoints, refuses uploads without the XSRF token, and listens on
loopback; the launcher keeps those protections on (see test_ui_security.py for the library and
AppTest levels, docs/security.md for the threat model)."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from retrieval.commands.ui import MAX_UPLOAD_MB, streamlit_command

XSRF = "_streamlit_xsrf"  # Streamlit's XSRF cookie name (streamlit.web.server)


# --- a running server, over HTTP -------------------------------------------------------------


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


# --- a real browser session's upload endpoint -------------------------------------------------


def _png_bytes(padding: int = 0) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 20, 20)).save(out, format="PNG")
    return out.getvalue() + b"\x00" * padding


def test_server_refuses_oversized_upload_to_a_real_session(ui_server: str) -> None:
    """The browser checks the size before uploading; the server must too. A real session's
    upload URL and XSRF token, taken from a browser upload, then a body over the limit: 413.
    An HTML file under a .jpg name is accepted by Streamlit (its type list is a browser hint):
    that is why decode_upload checks the content (test_uploads.py)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from load_browser import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(ui_server, wait_until="domcontentloaded")
            page.get_by_placeholder("a red circle").wait_for(timeout=120_000)
            page.get_by_text("Search with an image").click()
            with page.expect_request(lambda r: "upload_file" in r.url, timeout=60_000) as sent:
                page.locator("input[type=file]").first.set_input_files(
                    files=[{"name": "red.png", "mimeType": "image/png", "buffer": _png_bytes()}]
                )
            base = sent.value.url.rsplit("/", 1)[0]  # .../_stcore/upload_file/<session>
            token = next(c["value"] for c in page.context.cookies() if c["name"] == XSRF)

            def put(name: str, data: bytes, headers: dict) -> int:
                form = {"file": {"name": name, "mimeType": "image/jpeg", "buffer": data}}
                return page.request.put(f"{base}/{name}", multipart=form, headers=headers).status

            too_big = _png_bytes(MAX_UPLOAD_MB * 2**20)
            assert put("big.png", too_big, {"X-Xsrftoken": token}) == 413
            assert put("small.png", _png_bytes(), {}) == 403  # the real session, no token
            page_html = b"<html><script>alert(1)</script></html>"
            assert put("page.jpg", page_html, {"X-Xsrftoken": token}) == 204
        finally:
            browser.close()


REFUSAL = "refusing to listen on 0.0.0.0 (not loopback)"  # the API's words (serve.py)


def _cli(*args: str):
    from typer.testing import CliRunner

    from retrieval.cli import app

    return CliRunner().invoke(app, list(args))


@pytest.fixture
def launcher(monkeypatch: pytest.MonkeyPatch) -> list:
    """``retrieval.commands.ui`` with no Streamlit started: the calls to start it, recorded."""
    from retrieval.commands import ui

    started: list = []
    monkeypatch.setattr(ui, "start_ui", lambda *args: started.append(args) or _Exited())
    monkeypatch.setattr(ui, "wait_until_ready", lambda *args: None)
    monkeypatch.setattr(ui, "stop_group", lambda process: None)
    monkeypatch.setattr(ui, "login_configured", lambda: False)
    return started


def test_exposing_the_ui_without_a_login_is_refused(launcher: list) -> None:
    """``--host 0.0.0.0`` without an ``[auth]`` section: refused as the API refuses without a
    key (the same words), nothing started; loopback starts."""
    from retrieval.commands.serve import network_refusal

    done = _cli("ui", "--host", "0.0.0.0", "--port", "8765")
    assert done.exit_code == 1 and REFUSAL in done.stderr, done.output
    assert "--no-auth-on-network" in done.stderr and "[auth]" in done.stderr
    assert "Traceback" not in done.output and launcher == []
    assert REFUSAL in str(network_refusal("0.0.0.0", "no API key is configured", "."))
    for host in ("::", "192.168.1.20", ""):
        assert _cli("ui", "--host", host, "--port", "8765").exit_code == 1, host
    assert launcher == []
    assert _cli("ui", "--host", "127.0.0.1", "--port", "8765").exit_code == 0
    assert len(launcher) == 1


def test_exposing_the_ui_needs_an_explicit_flag_and_warns(launcher: list) -> None:
    """``--no-auth-on-network`` starts it, with a warning on stderr pointing to security.md;
    loopback never warns."""
    done = _cli("ui", "--host", "0.0.0.0", "--port", "8765", "--no-auth-on-network")
    assert done.exit_code == 0, done.output
    assert done.stderr.count("warning: listening on 0.0.0.0") == 1
    assert "docs/security.md" in done.stderr
    assert launcher and launcher[0][1] == "0.0.0.0"
    quiet = _cli("ui", "--host", "127.0.0.1", "--port", "8765", "--no-auth-on-network")
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr


def test_exposing_the_ui_with_a_login_starts(launcher: list, monkeypatch) -> None:
    from retrieval.commands import ui

    monkeypatch.setattr(ui, "login_configured", lambda: True)
    done = _cli("ui", "--host", "0.0.0.0", "--port", "8765")
    assert done.exit_code == 0 and "warning" not in done.stderr, done.output
    assert len(launcher) == 1


LOGIN_CHECKS = """
from retrieval.commands.ui import login_configured
from ui.auth import auth_configured
print(login_configured(), auth_configured())
"""


@pytest.mark.parametrize(
    ("secrets", "expected"),
    [
        (None, "False False"),
        ("[vitrieve]\nallowed_emails = ['me@example.org']\n", "False False"),
        ("[auth]\nredirect_uri = 'http://localhost:8501/oauth2callback'\n"
         "cookie_secret = 'x'\n", "True True"),
        ("[auth\nbroken", "False"),
    ],
)  # fmt: skip
def test_launcher_and_app_agree_on_the_login(tmp_path: Path, secrets, expected) -> None:
    """The launcher's check reads the secrets the server will (this folder's and the user's
    ``.streamlit/secrets.toml``) and agrees with the app's ``ui/auth.py``."""
    import os
    import subprocess
    import sys

    home = tmp_path / "home"
    (home / ".streamlit").mkdir(parents=True)
    if secrets is not None:
        (tmp_path / ".streamlit").mkdir()
        (tmp_path / ".streamlit" / "secrets.toml").write_text(secrets)
    env = {**os.environ, "HOME": str(home)}
    done = subprocess.run([sys.executable, "-c", LOGIN_CHECKS], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    last = (done.stdout.strip().splitlines() or [""])[-1]
    assert last.startswith(expected), done.stdout + done.stderr


class _Exited:
    """A stand-in for the Streamlit child process that has already exited cleanly."""

    returncode = 0

    def wait(self, timeout: float | None = None) -> int:
        return 0
