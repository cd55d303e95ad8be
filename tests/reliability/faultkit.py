"""Shared pieces of the fault tests: photo folders, the CLI as a subprocess, the checks.

The checks come in two strengths:

* ``check_crashed`` — what must hold at *any* instant, even right after a SIGKILL: the library
  opens, every FAISS vector has an indexed row, every indexed row has its vector in FAISS or
  staged (merged by the next run), labels survive;
* ``check_complete`` — what must hold after a run finished: every good file has exactly one
  row and one vector, bad files are recorded as failed, ids agree, nothing staged, labels
  survive (``assert_consistent`` of the indexer tests plus the photo folder's ground truth).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from library_factory import jpeg_bytes, photo
from test_pipeline import assert_consistent, library_state

from indexer.layout import vectors_path
from indexer.store.metadata import MetadataStore

KILLPOINT = Path(__file__).with_name("killpoint.py")
CLI = [sys.executable, "-c", "from retrieval.cli import main; main()"]
__all__ = ["assert_consistent", "library_state"]


def make_checkpoint(directory: Path) -> Path:
    """A tiny random-weight checkpoint (seconds): the tests check plumbing, not quality."""
    from encoders.model.clip import create_model
    from encoders.model.config import load_config
    from encoders.weights.checkpoint import save_checkpoint

    save_checkpoint(create_model(load_config("tiny")), directory)
    return directory


@dataclass
class Photos:
    """A generated photo folder: which files must end up indexed, which must fail."""

    root: Path
    good: set[str] = field(default_factory=set)
    bad: set[str] = field(default_factory=set)

    def add(self, count: int, start: int, bad_every: int = 0) -> None:
        """``count`` small photos (48–96 px, JPEG and PNG) numbered from ``start``; every
        ``bad_every``-th one a truncated JPEG instead."""
        self.root.mkdir(parents=True, exist_ok=True)
        for n in range(start, start + count):
            folder = self.root / f"album{n // 250:02d}"
            folder.mkdir(exist_ok=True)
            width, height = 48 + (n * 7) % 49, 48 + (n * 13) % 49
            if bad_every and n % bad_every == bad_every - 1:
                data = jpeg_bytes(photo(width, height, seed=n))
                (folder / f"broken{n:05d}.jpg").write_bytes(data[: len(data) // 3])
                self.bad.add(f"{folder.name}/broken{n:05d}.jpg")
                continue
            name = f"{folder.name}/p{n:05d}.{'jpg' if n % 3 else 'png'}"
            photo(width, height, seed=n).save(self.root / name)
            self.good.add(name)


def index_command(photos: Path, checkpoint: Path, *extra: str, point: str | None = None) -> list:
    """``vitrieve index`` as a subprocess command (through ``killpoint.py`` when ``point``)."""
    args = ["index", str(photos), "--model", str(checkpoint), "--json", *extra]
    if point is None:
        return [*CLI, *args]
    return [sys.executable, str(KILLPOINT), point, "--", *args]


def start(command: list, env: dict | None = None) -> subprocess.Popen:
    """A subprocess in its own session, so that ``reap`` can end its decoder workers too.

    Its output goes to files, not pipes: orphaned workers of a killed run would hold a pipe
    open."""
    import tempfile

    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115 (reap closes)
    process = subprocess.Popen(
        command, stdout=out, stderr=err, start_new_session=True, env={**os.environ, **(env or {})}
    )
    process.outputs = (out, err)  # type: ignore[attr-defined]
    return process


def reap(process: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    """Wait for ``process``; then SIGKILL what is left of its session (orphaned workers)."""
    try:
        process.wait(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    texts = []
    for handle in process.outputs:  # type: ignore[attr-defined]
        handle.seek(0)
        texts.append(handle.read().decode(errors="replace"))
        handle.close()
    return process.returncode, texts[0], texts[1]


def embedded_count(library: Path) -> int:
    """Committed embeddings rows (0 before the schema exists)."""
    db = library / "library.db"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=10) as connection:
            return connection.execute("SELECT count(*) FROM embeddings").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def kill_when(process: subprocess.Popen, library: Path, embedded: int, limit: float = 300) -> bool:
    """SIGKILL ``process`` (from outside) once ``embedded`` rows are committed; False when it
    ended by itself first."""
    deadline = time.monotonic() + limit
    while embedded_count(library) < embedded:
        if process.poll() is not None:
            return False
        assert time.monotonic() < deadline, "indexing made no progress"
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    return True


def staged_ids(library: Path) -> set[int]:
    out: set[int] = set()
    for chunk in (library / "staging").rglob("*.npz"):
        try:
            with np.load(chunk) as data:
                out.update(data["ids"].tolist())
        except (OSError, ValueError, KeyError):  # a torn chunk: its rows were never committed
            continue
    return out


def label_snapshot(library: Path) -> dict[tuple[str, int], list]:
    """Every label row, keyed by (label set, file id)."""
    store = MetadataStore.for_library(library)
    try:
        return {
            (name, file_id): labels
            for name in store.label_sets()
            for file_id, labels in store.read_labels(name).items()
        }
    finally:
        store.close()


def check_crashed(library: Path, labels: dict | None = None) -> None:
    """What holds right after a kill: openable, no orphaned vector, nothing lost, labels."""
    from retrieval.library.handle import Library

    with Library.open(library) as opened:  # what a reader sees: must open
        assert opened.count() == len(opened.index.ids())
    rows, vectors = library_state(library) if vectors_path(library).exists() else ({}, {})
    if not rows:
        store = MetadataStore.for_library(library)
        rows = {r.path: r for r in store.all_files()}
        store.close()
    indexed = {r.id for r in rows.values() if r.status == "indexed"}
    orphans = set(vectors) - indexed
    assert not orphans, f"{len(orphans)} vectors without an indexed row"
    lost = indexed - set(vectors) - staged_ids(library)
    assert not lost, f"{len(lost)} indexed rows with no vector, in FAISS or staged"
    if labels:
        assert label_snapshot(library) == labels, "labels changed"


def temporaries(library: Path) -> list[str]:
    """Temporary files of interrupted atomic writes (``.NAME.XXXXXXXX[.tmp]``) in the library
    folder and its staging folders."""
    folders = [library, *(library / "staging").glob("g*")]
    pattern = re.compile(r"^\..+\.[A-Za-z0-9_]{8}(\.tmp)?$")
    return [p.name for f in folders if f.is_dir() for p in f.iterdir() if pattern.match(p.name)]


def check_complete(library: Path, photos: Photos, labels: dict | None = None) -> None:
    """What holds after a finished run: one row and one vector per good file, ids agree,
    no temporary file of a killed run left behind."""
    assert_consistent(library)  # vectors == indexed rows, nothing staged
    assert not temporaries(library), f"left behind: {temporaries(library)}"
    rows, vectors = library_state(library)
    indexed = {p for p, r in rows.items() if r.status == "indexed"}
    assert indexed == photos.good, (
        f"missing {sorted(photos.good - indexed)[:5]}, extra {sorted(indexed - photos.good)[:5]}"
    )
    assert {p for p, r in rows.items() if r.status == "failed"} == photos.bad
    assert len(vectors) == len(photos.good)
    store = MetadataStore.for_library(library)
    try:
        embedded = store.embedded_ids(1)
    finally:
        store.close()
    assert len(embedded) == len(set(embedded.tolist())) == len(vectors)
    assert set(embedded.tolist()) == set(vectors)
    if labels:
        assert label_snapshot(library) == labels, "labels changed"


def walkill_env(build: Path) -> dict | None:
    """Environment preloading the ``walkill.c`` shim (built here), None without a C compiler."""
    import shutil

    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    build.mkdir(parents=True, exist_ok=True)
    shim = build / "walkill.so"
    source = Path(__file__).with_name("walkill.c")
    result = subprocess.run(
        [compiler, "-shared", "-fPIC", "-O1", "-o", str(shim), str(source), "-ldl"],
        capture_output=True, text=True,
    )  # fmt: skip
    return {"LD_PRELOAD": str(shim)} if result.returncode == 0 else None
