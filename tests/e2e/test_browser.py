"""The UI in a real browser: ``vitrieve ui`` over a small demo library, driven by headless Chromium.

Uses Debian's /usr/bin/chromium through Playwright (never a browser Playwright downloads).
With VITRIEVE_UPDATE_SCREENSHOT=1 it saves the search page as docs/screenshot.png.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
VITRIEVE = Path(sys.executable).with_name("vitrieve")

ALL_LOADED = """() => {
  const images = [...document.querySelectorAll("[data-testid='stImage'] img")];
  return images.length >= 4 && images.every(i => i.complete && i.naturalWidth > 0);
}"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make sysdeps)"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(process: subprocess.Popen, port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"vitrieve ui exited with {process.returncode}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("the UI did not come up")


@pytest.fixture
def ui_server(demo_library: Path, tmp_path: Path):
    """``vitrieve ui`` on a free port; yields its URL and stops it afterwards."""
    port = _free_port()
    log = (tmp_path / "ui.log").open("w")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [str(VITRIEVE), "ui", "--library", str(demo_library), "--port", str(port)]
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    try:
        _wait_healthy(process, port)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def _loaded_images(page) -> list[int]:
    """naturalWidth of every result thumbnail on the page (0 = failed to load)."""
    return page.eval_on_selector_all(
        "[data-testid='stImage'] img", "images => images.map(i => i.complete ? i.naturalWidth : 0)"
    )


def test_search_in_browser(ui_server: str, tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(ui_server, wait_until="networkidle")
            box = page.get_by_placeholder("a red circle")
            box.wait_for(timeout=60_000)
            box.fill("a red circle")
            box.press("Enter")
            page.locator("[data-testid='stImage'] img").first.wait_for(timeout=60_000)
            page.wait_for_function(ALL_LOADED, timeout=60_000)
            widths = _loaded_images(page)
            assert len(widths) >= 4 and all(w > 0 for w in widths), widths
            page.wait_for_timeout(500)
            page.screenshot(path=str(tmp_path / "search.png"), full_page=False)
            if os.environ.get("VITRIEVE_UPDATE_SCREENSHOT"):  # refresh the README's picture
                shutil.copy(tmp_path / "search.png", REPO / "docs" / "screenshot.png")

            main = page.get_by_test_id("stMain")
            main.get_by_role("button", name="Open", exact=True).first.click()
            dialog = page.get_by_role("dialog")
            dialog.wait_for(timeout=30_000)
            dialog.locator("[data-testid='stImage'] img").first.wait_for(timeout=30_000)
            large = dialog.locator("[data-testid='stImage'] img").first
            page.wait_for_function(
                "img => img.complete && img.naturalWidth > 0", arg=large.element_handle()
            )
            assert dialog.get_by_text("More like this").count() >= 1
            page.screenshot(path=str(tmp_path / "detail.png"))
            assert (tmp_path / "detail.png").stat().st_size > 10_000
        finally:
            browser.close()
