"""The browser side of bench/load.py: N headless Chromium sessions searching through the UI.

Debian's /usr/bin/chromium through Playwright (never a browser Playwright downloads); one
browser, one context (so one Streamlit session) per client. A search is timed from pressing
Enter until the script run it started has finished and every thumbnail on the page loaded.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from loadkit import LoadReport, queries, summarise

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update"]  # fmt: skip
# A MutationObserver notes when the script run this search started has
# finished, then every thumbnail on the page must have loaded.
WATCH_RUN = """() => {
  const app = document.querySelector("[data-testid='stApp']");
  window.__vtSeen = false; window.__vtDone = false;
  const watcher = new MutationObserver(() => {
    const state = app.getAttribute("data-test-script-state");
    if (state === "running") window.__vtSeen = true;
    else if (window.__vtSeen && state === "notRunning") {
      window.__vtDone = true; watcher.disconnect();
    }
  });
  watcher.observe(app, {attributes: true, attributeFilter: ["data-test-script-state"]});
}"""
RUN_DONE = "() => window.__vtDone"
IMAGES_LOADED = """() => {
  const main = document.querySelector("[data-testid='stMain']");
  const images = [...main.querySelectorAll("[data-testid='stImage'] img")];
  return images.length > 0 && images.every(i => i.complete && i.naturalWidth > 0);
}"""


async def _open_page(context, url: str):
    """A fresh session on the search page, ready to type into (not timed)."""
    page = await context.new_page()
    await page.goto(url, wait_until="domcontentloaded", timeout=120_000)
    box = page.get_by_placeholder("a red circle")
    await box.wait_for(timeout=120_000)
    return page, box


async def _search_once(page, box, text: str) -> None:
    """Type a query, submit, wait for that script run to end and its thumbnails to load."""
    await page.evaluate(WATCH_RUN)
    await box.fill(text)
    await box.press("Enter")
    await page.wait_for_function(RUN_DONE, timeout=60_000, polling=20)
    await page.wait_for_function(IMAGES_LOADED, timeout=60_000, polling=20)


async def _browser_client(browser, url: str, number: int, shared: dict) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = box = None
    try:
        try:
            page, box = await _open_page(context, url)
        except Exception as exc:
            shared["errors"].append(f"page did not open: {type(exc).__name__}: {exc}"[:200])
        await shared["ready"].wait()  # every session open: the timed part starts together
        texts = queries(100 + number)
        while page is not None and time.monotonic() < shared["stop_at"]:
            began = time.perf_counter()
            try:
                await _search_once(page, box, next(texts))
                shared["latencies"].append(time.perf_counter() - began)
            except Exception as exc:
                shared["errors"].append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}"[:200])
    finally:
        await context.close()


async def _browsers(url: str, clients: int, seconds: float, shared: dict) -> float:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            shared["ready"] = asyncio.Barrier(clients + 1)
            shared["stop_at"] = float("inf")
            tasks = [asyncio.create_task(_browser_client(browser, url, n, shared))
                     for n in range(clients)]  # fmt: skip
            await shared["ready"].wait()
            began = time.monotonic()
            shared["stop_at"] = began + seconds
            await asyncio.gather(*tasks)
            return time.monotonic() - began
        finally:
            await browser.close()


def browser_load(url: str, clients: int, seconds: float) -> LoadReport:
    """``clients`` Chromium pages (separate sessions) searching through the real UI."""
    shared: dict = {"latencies": [], "errors": []}
    elapsed = asyncio.run(_browsers(url, clients, seconds, shared))
    return summarise("ui-browser", clients, elapsed, shared["latencies"], shared["errors"])
