"""The one atomic write: readers see the old file or the new one, and nothing else is left."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from encoders import atomic
from encoders.atomic import TEMP_PATTERN, atomic_write, atomic_write_bytes, atomic_write_text
from indexer.layout import MANIFEST_FILE, remove_temporaries


def test_writes_the_content_and_leaves_only_the_target(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "config.json"  # missing folders are made
    atomic_write_text(target, "first ✓")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["config.json"]


def test_the_target_is_replaced_not_rewritten_in_place(tmp_path: Path) -> None:
    target = tmp_path / "vectors.faiss"
    target.write_bytes(b"old")
    seen: list[Path] = []

    def write(tmp: Path) -> None:
        seen.append(tmp)
        tmp.write_bytes(b"new")
        assert target.read_bytes() == b"old"  # a reader meanwhile still sees the old file

    with target.open("rb") as reader:  # opened before: keeps the old file, never half of one
        atomic_write(target, write)
        assert reader.read() == b"old"
    assert target.read_bytes() == b"new"
    (tmp,) = seen
    assert tmp.parent == tmp_path and tmp != target  # same folder: the rename is atomic
    assert re.fullmatch(rf"\.vectors\.faiss{TEMP_PATTERN}", tmp.name)
    assert not tmp.exists()


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old")

    def write(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, write)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_a_failing_rename_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "job.json"
    target.write_bytes(b"old")

    def refuse(src: object, dst: object) -> None:
        raise OSError("read-only file system")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(OSError, match="read-only"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["job.json"]


def test_durable_writes_sync_the_file_before_the_rename_and_the_folder_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    target = tmp_path / "library.json"

    def fsync(fd: int) -> None:
        events.append("fsync-folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    atomic_write_bytes(target, b"{}")
    assert events == ["fsync-file", "replace", "fsync-folder"]
    events.clear()
    atomic_write_bytes(target, b"{}", fsync=False)  # a file that can be remade: no disk flush
    assert events == ["replace"]


def test_scratch_folder_holds_the_temporary(tmp_path: Path) -> None:
    scratch, target = tmp_path / "scratch", tmp_path / "thumbs" / "1.webp"
    seen: list[Path] = []
    atomic_write(target, lambda tmp: seen.append(tmp) or tmp.write_bytes(b"t"), scratch=scratch)
    assert seen[0].parent == scratch and target.read_bytes() == b"t"
    assert list(scratch.iterdir()) == []


def test_a_killed_writes_temporary_is_recognised_by_the_library_sweep(tmp_path: Path) -> None:
    left: list[Path] = []

    def killed(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        os.link(tmp, tmp_path / "kept")  # what a SIGKILL would leave: the file itself
        left.append(tmp)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / MANIFEST_FILE, killed)
    (tmp_path / "kept").rename(left[0])
    assert remove_temporaries(tmp_path) == [left[0].name]
    assert list(tmp_path.iterdir()) == []
