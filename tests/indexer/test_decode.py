"""The decode pool: results for every file, a hung decoder times out, a crashing one is named."""

from __future__ import annotations

import time
from pathlib import Path

from hostile import CRASH_WIDTH, HANG_WIDTH, HostileTransform
from library_factory import photo

from indexer.decode.workers import DecodePool, DecodeSettings


def test_hung_and_crashing_files_do_not_stop_the_run(tmp_path: Path) -> None:
    widths = [20, HANG_WIDTH, 21, CRASH_WIDTH, 22, 23, 24, 25]
    items = []
    for n, width in enumerate(widths):
        path = tmp_path / f"{n}.png"
        photo(width, 16, seed=n).save(path)
        items.append((n, path))
    settings = DecodeSettings(HostileTransform(), target_size=16)  # no reduction
    started = time.monotonic()
    with DecodePool(settings, workers=2, timeout=3.0, window=4) as pool:
        results = {d.id: d for d in pool.imap_unordered(items)}
    assert sorted(results) == list(range(len(widths)))  # exactly one result per file
    assert "longer than 3 s" in results[1].error
    assert results[3].error == "the decoder crashed on this file"
    for n in (0, 2, 4, 5, 6, 7):
        assert results[n].error is None and results[n].pixels.shape == (3, 8, 8)
        assert results[n].facts["content_hash"] and results[n].thumb
    assert time.monotonic() - started < 120
