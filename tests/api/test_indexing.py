"""Searches over HTTP while `vitrieve index` grows the served library: zero failures, and the
server answers from the new index once the run ends (it reopens the library, no restart)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from apiserver import VITRIEVE

QUERIES = ("a red circle", "a blue square -green", "a photo", "something yellow")
NEW_PHOTOS = 24


def test_searches_during_an_indexing_run(open_server: str, api_libraries, trained_tiny: Path):
    from retrieval.service.demo import write_demo_photos

    base = f"{open_server}/v1/libraries/alt"
    before = httpx.get(f"{base}/status").json()["images"]
    write_demo_photos(api_libraries.alt_photos / "more", NEW_PHOTOS, size_px=96, seed=7)
    done, failures, stop = Counter(), [], threading.Event()

    def client(number: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as session:
            n = number
            while not stop.is_set():
                n += 1
                try:
                    response = session.get("/search", params={"q": QUERIES[n % 4], "k": 8})
                    assert response.status_code == 200, response.text[:200]
                    hits = response.json()["results"]
                    assert hits, "no results from a non-empty library"
                    thumb = session.get(hits[0]["thumbnail_url"].removeprefix("/v1/libraries/alt"))
                    assert thumb.status_code == 200, thumb.text[:200]
                    done[number] += 1
                except Exception as exc:  # every failure is a finding: keep its reason
                    failures.append(f"{type(exc).__name__}: {exc}"[:300])
                time.sleep(0.01)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(3)]
    for thread in threads:
        thread.start()
    try:
        run = subprocess.run(
            [str(VITRIEVE), "index", str(api_libraries.alt_photos), "--model", str(trained_tiny),
             "--workers", "0", "--batch-size", "4"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        time.sleep(0.5)  # a few searches on the new index too
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert not failures, failures[:5]
    assert sum(done.values()) >= 3 and all(done[n] for n in range(3)), done
    deadline = time.monotonic() + 30
    while (after := httpx.get(f"{base}/status").json()["images"]) == before:
        assert time.monotonic() < deadline, "the server still answers from the old index"
        time.sleep(0.2)
    assert after >= before + NEW_PHOTOS
    found = httpx.get(f"{base}/search", params={"q": "a photo", "k": 200}).json()["results"]
    assert any(hit["path"].startswith("more/") for hit in found)
