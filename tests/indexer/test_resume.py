"""Kill -9 mid-run, twice, then run again: the library ends complete, consistent, no duplicates."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from library_factory import photo
from test_pipeline import OPTIONS, assert_consistent, library_state

from indexer.decode.images import decode_image
from indexer.pipeline.local import index_library

N_PHOTOS = 160


def _embedded(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as connection:
            return connection.execute("SELECT count(*) FROM embeddings").fetchone()[0]
    except sqlite3.OperationalError:  # the schema is not created yet
        return 0


def _index_and_kill(photos: Path, checkpoint: Path, at_least: int) -> int:
    """Start `vitrieve index` in a subprocess; SIGKILL it once ``at_least`` rows are committed."""
    command = [sys.executable, "-c", "from retrieval.cli import main; main()", "index",
               str(photos), "--model", str(checkpoint), "--workers", "1", "--batch-size", "2",
               "--json"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = photos / ".vitrieve" / "library.db"
    deadline = time.monotonic() + 240
    try:
        while _embedded(db) < at_least:
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "indexing made no progress"
            time.sleep(0.02)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    return _embedded(db)


def test_kill_and_resume(tmp_path: Path, tiny_checkpoint: Path, tiny_encoder) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for n in range(N_PHOTOS):
        photo(48, 40, seed=n).save(photos / f"{n:03d}.{'jpg' if n % 2 else 'png'}")
    first = _index_and_kill(photos, tiny_checkpoint, at_least=6)
    second = _index_and_kill(photos, tiny_checkpoint, at_least=first + 10)
    assert first < second < N_PHOTOS, "the runs must be killed mid-way"
    report = index_library(photos, tiny_encoder, model_ref=str(tiny_checkpoint), options=OPTIONS)
    assert report.embedded <= N_PHOTOS - second + report.repaired["reembedded"]
    library = photos / ".vitrieve"
    rows, vectors = library_state(library)
    assert len(rows) == N_PHOTOS and {r.status for r in rows.values()} == {"indexed"}
    assert len(vectors) == N_PHOTOS  # one vector per file: nothing lost, nothing doubled
    assert_consistent(library)
    for name in ("000.png", "077.jpg", f"{N_PHOTOS - 1:03d}.jpg"):
        image = decode_image(photos / name, target_size=tiny_encoder.image_size).image
        expected = tiny_encoder.encode_images([image])[0]
        # the CLI may have encoded in bf16 (precision auto), this test in fp32
        assert float(vectors[rows[name].id] @ expected) > 0.995
