"""Run the vitrieve CLI with a SIGKILL planted at one point of an indexing run (tests only).

    python killpoint.py POINT -- index PHOTOS --model CKPT ...

POINT is ``name:n`` — die at the n-th occurrence of ``name``:

* ``commit-before:n``  the n-th batch's rows are written, the COMMIT not yet issued;
* ``commit-during:n``  inside the n-th batch's COMMIT, half-way through a write to the SQLite
  WAL (the ``walkill`` shim, preloaded by the test, counts the writes; needs LD_PRELOAD);
* ``commit-after:n``   the n-th batch is committed, nothing after it ran;
* ``stage:n``          half-way through writing the n-th batch's staged vectors;
* ``save-partial:n``   half-way through writing the n-th FAISS save's temporary file (only
  saves of a non-empty index count);
* ``save-written:n``   the n-th FAISS save's temporary file is complete, not yet renamed;
* ``save-renamed:n``   the n-th FAISS save is renamed into place, the folder not yet synced.

The library code knows nothing of this: the hooks are patched in here, around its functions.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import tempfile
from pathlib import Path


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class Counter:
    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def due(self) -> bool:
        self.calls += 1
        return self.calls == self.n


def _half_write(path: Path) -> None:
    """Cut a just-written file in half, as a kill half-way through writing it would leave it."""
    size = path.stat().st_size
    os.truncate(path, size // 2)


def plant_commit(how: str, counter: Counter) -> None:
    from sqlalchemy import event

    from indexer.store.metadata import MetadataStore

    real = MetadataStore.record_batch

    def record_batch(self, *args, **kwargs):
        if not counter.due():
            return real(self, *args, **kwargs)
        if how == "after":
            real(self, *args, **kwargs)
            die()

        def on_commit(_connection) -> None:  # just before the DBAPI COMMIT
            if how == "before":
                die()
            shim = ctypes.CDLL(os.environ["LD_PRELOAD"])
            shim.walkill_arm(int(os.environ.get("WALKILL_WRITE", "1")))

        event.listen(self.engine, "commit", on_commit)
        return real(self, *args, **kwargs)

    MetadataStore.record_batch = record_batch


def plant_stage(counter: Counter) -> None:
    from indexer import generations

    real = generations.atomic_write_bytes

    def atomic_write_bytes(target: Path, data: bytes, fsync: bool = True) -> None:
        if target.suffix == ".npz" and counter.due():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, _tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            os.write(fd, data[: len(data) // 2])  # what atomic_write_bytes had written so far
            die()
        real(target, data, fsync)

    generations.atomic_write_bytes = atomic_write_bytes


def plant_save(how: str, counter: Counter) -> None:
    from encoders import atomic
    from indexer.vectors import index as vectors

    real_save = vectors.VectorIndex.save
    real_fsync_dir = atomic.fsync_dir
    armed = {"renamed": False}

    def save(self, path) -> None:
        if len(self) == 0 or not counter.due():  # count the saves that hold vectors
            return real_save(self, path)
        if how == "renamed":
            armed["renamed"] = True
            return real_save(self, path)
        backend = self._backend
        real_write = backend.write

        def write(tmp: Path) -> None:
            real_write(tmp)
            if how == "partial":
                _half_write(Path(tmp))
            die()

        backend.write = write
        return real_save(self, path)

    def fsync_dir(folder: Path) -> None:
        if armed["renamed"]:
            die()
        real_fsync_dir(folder)

    vectors.VectorIndex.save = save
    atomic.fsync_dir = fsync_dir


def plant(point: str) -> None:
    name, _, n = point.partition(":")
    counter = Counter(int(n or 1))
    kind, _, how = name.partition("-")
    if kind == "commit":
        plant_commit(how, counter)
    elif kind == "stage":
        plant_stage(counter)
    elif kind == "save":
        plant_save(how, counter)
    elif kind != "none":
        raise SystemExit(f"unknown kill point {point!r}")


def main() -> None:
    point, separator, *args = sys.argv[1:]
    assert separator == "--", __doc__
    plant(point)
    sys.argv = ["vitrieve", *args]
    from retrieval.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
