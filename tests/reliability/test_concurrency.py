"""Searches while `vitrieve index` runs on the same library: zero failed searches.

Readers never take the writer lock: SQLite in WAL mode lets them read while the indexer
commits, and the FAISS file is replaced atomically, so a reader opening the library at any
instant gets the old or the new index, whole. Three kinds of reader run throughout two
indexing runs (the first adds photos, the second changes and deletes some, so vectors are
also removed; the reduced form does both in one run): a long-lived ``Library`` whose
``Searcher`` is shared by two threads (as the UI holds one), a fresh ``Library.open`` per
search, and the `vitrieve search` CLI.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from faultkit import CLI, Photos, check_complete, index_command, make_checkpoint, reap, start

from encoders.runtime.encoder import Encoder
from indexer.pipeline.local import IndexOptions, index_library
from retrieval.library.handle import Library

QUERIES = ["a photo", "a red gradient", "something blue", "noise -green"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("concurrency") / "tiny")


class Readers:
    """Search threads that count what they did and keep every failure's reason."""

    def __init__(self, library: Path, encoder: Encoder) -> None:
        self.library, self.encoder = library, encoder
        self.shared = Library.open(library, encoder=encoder)
        self.done: Counter = Counter()
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._loop, args=(kind,), daemon=True)
            for kind in ("shared", "shared", "fresh", "cli")
        ]

    def _search_once(self, kind: str, n: int) -> None:
        query = QUERIES[n % len(QUERIES)]
        if kind == "cli":
            command = [*CLI, "search", query, "--library", str(self.library), "-k", "5", "--json"]
            code, out, err = reap(start(command), timeout=300)
            assert code == 0, err[-500:]
            assert json.loads(out)["query"] == query
            return
        if kind == "shared":
            response = self.shared.searcher.search(query, limit=10)
        else:
            with Library.open(self.library, encoder=self.encoder) as fresh:
                response = fresh.searcher.search(query, limit=10)
        assert response.results, "no results from a non-empty library"
        assert all(r.path for r in response.results)

    def _loop(self, kind: str) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                self._search_once(kind, n)
                self.done[kind] += 1
            except Exception as exc:  # every failure is a finding: keep its reason
                self.failures.append(f"{kind}: {exc!r}"[:500])
            time.sleep(0.02)  # readers leave the 2 cores to the indexer mostly

    def __enter__(self) -> Readers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=600)
        self.shared.close()


def test_searches_during_indexing(tmp_path: Path, checkpoint: Path, scale, figures) -> None:
    encoder = Encoder.load(checkpoint, precision="fp32")
    photos = Photos(tmp_path / "photos")
    first, more = int(scale.pick(30, 300)), int(scale.pick(100, 1200))
    photos.add(first, 0)
    index_library(photos.root, encoder, model_ref=str(checkpoint.resolve()),
                  options=IndexOptions(workers=0, batch_size=16))  # fmt: skip
    library = photos.root / ".vitrieve"
    photos.add(more, first, bad_every=41)
    runs = []
    with Readers(library, encoder) as readers:
        started = time.monotonic()
        # reduced: one run that adds, re-embeds and removes; full: adding, then the rest
        for step in ("add", "change") if scale.full else ("change",):
            if step == "change":
                _change_and_delete(photos, count=max(3, first // 10))
            workers = str(int(scale.pick(0, 1)))
            command = index_command(
                photos.root, checkpoint, "--workers", workers, "--batch-size", "8"
            )
            code, _out, err = reap(start(command))
            assert code == 0, err[-2000:]
            runs.append(round(time.monotonic() - started, 1))
        while readers.done["cli"] < 1 and not readers.failures:  # at least one CLI search
            time.sleep(0.1)
    assert not readers.failures, readers.failures[:5]
    assert readers.done["shared"] and readers.done["fresh"] and readers.done["cli"]
    check_complete(library, photos)
    figures({
        "images": len(photos.good) + len(photos.bad),
        "indexing_runs_seconds": runs,
        "searches_done": dict(readers.done),
        "searches_failed": len(readers.failures),
    })  # fmt: skip


def _change_and_delete(photos: Photos, count: int) -> None:
    """Rewrite ``count`` indexed photos with other pixels and delete ``count`` others."""
    from library_factory import photo

    names = sorted(photos.good)
    for n, name in enumerate(names[:count]):
        kind = "PNG" if name.endswith("png") else "JPEG"
        photo(60, 50, seed=10_000 + n).save(photos.root / name, format=kind)
    for name in names[count : 2 * count]:
        (photos.root / name).unlink()
        photos.good.discard(name)
