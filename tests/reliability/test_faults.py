"""Disk and permission faults during `vitrieve index`: a library that turns read-only mid-run,
a disk that fills up, photos deleted or replaced while they are being indexed.

Each fault must end the run with one clear line and exit code 1 (or be recorded against the
one file it hit); the library must then open with nothing orphaned or lost, and a run after
the fault is gone must complete it.

The tests run as root, which chmod does not stop: the read-only library is made immutable
(``chattr -R +i``, which binds root too), the small disk is a tmpfs mount. Both need root
(CAP_SYS_ADMIN / CAP_LINUX_IMMUTABLE and a filesystem with the attribute); the tests skip
where these are unavailable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from faultkit import (
    Photos,
    check_complete,
    check_crashed,
    embedded_count,
    index_command,
    library_state,
    make_checkpoint,
    reap,
    start,
)
from library_factory import photo

from encoders.runtime.encoder import Encoder
from indexer.decode.images import decode_image
from indexer.pipeline.local import IndexOptions, index_library

OPTIONS = IndexOptions(workers=0, batch_size=4)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("faults") / "tiny")


@pytest.fixture(scope="module")
def encoder(checkpoint: Path) -> Encoder:
    return Encoder.load(checkpoint, precision="fp32")


def _complete_run(photos: Photos, encoder: Encoder, checkpoint: Path, library: Path) -> None:
    index_library(photos.root, encoder, model_ref=str(checkpoint.resolve()), library=library,
                  options=OPTIONS)  # fmt: skip
    check_complete(library, photos)


def _one_line_error(code: int, err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1, f"exit {code}: {err[-2000:]}"
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert "Traceback" not in err
    return lines[0]


IMMUTABLE_ERRORS = ("Operation not permitted", "disk I/O error")


def _chattr(flag: str, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["chattr", "-R", flag, str(path)], capture_output=True, text=True)


def test_library_turns_read_only_mid_run(tmp_path: Path, checkpoint, encoder, scale, figures):
    if shutil.which("chattr") is None:
        pytest.skip("chattr not installed")
    probe = tmp_path / "probe"
    probe.mkdir()
    if _chattr("+i", probe).returncode != 0:
        pytest.skip("this filesystem has no immutable attribute (or we may not set it)")
    _chattr("-i", probe)
    photos = Photos(tmp_path / "photos")
    photos.add(int(scale.pick(120, 400)), 0)
    library = photos.root / ".vitrieve"
    command = index_command(photos.root, checkpoint, "--workers", "0", "--batch-size", "2")
    process = start(command)
    try:
        while (at_fault := embedded_count(library)) < 6:  # mid-run: some batches committed
            assert process.poll() is None, "the run ended before the fault"
            time.sleep(0.01)
        # root-proof read-only. No reading from here on while immutable: SQLite cannot grow
        # the immutable -shm file it maps, and touching that mapping is a SIGBUS (seen once)
        assert _chattr("+i", library).returncode == 0
        code, _out, err = reap(process)
    finally:
        _chattr("-i", library)
    line = _one_line_error(code, err)
    # the OS's refusal, or SQLite's when the flag lands during a commit (a race: both are seen)
    assert any(cause in line for cause in IMMUTABLE_ERRORS) and str(library) in line
    check_crashed(library)
    _complete_run(photos, encoder, checkpoint, library)
    figures({"images": len(photos.good), "embedded_before_fault": at_fault, "error": line})


ROOM = 1 << 20  # what the small disk holds beyond the library's copy of its model


def model_bytes(checkpoint: Path) -> int:
    """The checkpoint's size: a library keeps a copy of its model (a hard link only where the
    checkpoint is on the same file system, which a tmpfs of its own never is)."""
    return sum(f.stat().st_size for f in checkpoint.iterdir() if f.is_file()) + (64 << 10)


@pytest.fixture
def small_disk(tmp_path: Path, checkpoint: Path):
    """A tmpfs with the model's copy and 1 MiB of room (unmounted afterwards), or skip when
    mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    size = f"size={model_bytes(checkpoint) + ROOM}"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", size, "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_disk_fills_up(tmp_path: Path, small_disk: Path, checkpoint, encoder, scale, figures):
    photos = Photos(tmp_path / "photos")
    photos.add(int(scale.pick(200, 600)), 0)
    library = small_disk / "library"
    command = index_command(photos.root, checkpoint, "--library", str(library),
                            "--workers", "0", "--batch-size", "8")  # fmt: skip
    code, _out, err = reap(start(command))
    line = _one_line_error(code, err)
    assert "No space left on device" in line or "disk is full" in line, line
    at_fault = embedded_count(library)
    check_crashed(library)
    bigger = f"remount,size={model_bytes(checkpoint) + (64 << 20)}"
    remount = ["mount", "-o", bigger, str(small_disk)]
    assert subprocess.run(remount, capture_output=True).returncode == 0
    _complete_run(photos, encoder, checkpoint, library)
    figures({"images": len(photos.good), "disk_bytes": ROOM,
             "embedded_before_full": at_fault, "error": line})  # fmt: skip


def test_photos_deleted_or_replaced_while_indexed(tmp_path: Path, checkpoint, encoder, figures):
    photos = Photos(tmp_path / "photos")
    photos.add(40, 0)
    names = sorted(photos.good)
    deleted, replaced, broken = names[-1], names[-2], names[-3]  # embedded last (id order)
    library = photos.root / ".vitrieve"

    def fault(state) -> None:
        if state.phase == "embed" and state.done and (photos.root / deleted).exists():
            (photos.root / deleted).unlink()
            fresh = photos.root / f"{replaced}.new"
            photo(90, 60, seed=999).save(fresh, format="PNG")
            os.replace(fresh, photos.root / replaced)
            (photos.root / broken).write_bytes(b"not an image any more")

    report = index_library(photos.root, encoder, model_ref=str(checkpoint.resolve()),
                           options=OPTIONS, progress=fault)  # fmt: skip
    failed = dict(report.failures)
    assert set(failed) == {deleted, broken}, failed
    assert "No such file" in failed[deleted]
    check_crashed(library)
    photos.good -= {deleted, broken}
    photos.bad.add(broken)
    second = index_library(photos.root, encoder, model_ref=str(checkpoint.resolve()),
                           options=OPTIONS)  # fmt: skip
    assert second.deleted == 1 and second.changed >= 2  # the replaced photo is embedded again
    check_complete(library, photos)
    rows, vectors = library_state(library)
    image = decode_image(photos.root / replaced, target_size=encoder.image_size).image
    expected = encoder.encode_images([image])[0]
    assert rows[deleted].status == "deleted"
    assert float(vectors[rows[replaced].id] @ expected) > 0.99  # the new content's vector
    figures({"deleted": 1, "replaced": 1, "replaced_by_non_image": 1,
             "first_run_failures": len(failed), "second_run_changed": second.changed})  # fmt: skip
