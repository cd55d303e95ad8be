"""Library layout: what a killed run's atomic writes leave behind is swept, and only that."""

from __future__ import annotations

from pathlib import Path

from indexer.layout import (
    MANIFEST_FILE,
    THUMB_SCRATCH,
    VECTORS_FILE,
    remove_temporaries,
    thumb_relpath,
    write_thumbnail,
)


def test_thumbnails_go_through_the_scratch_folder(tmp_path: Path) -> None:
    write_thumbnail(tmp_path, 1234, b"RIFF....WEBP")
    assert (tmp_path / thumb_relpath(1234)).read_bytes() == b"RIFF....WEBP"
    assert list((tmp_path / THUMB_SCRATCH).iterdir()) == []  # renamed away, nothing left


def test_a_killed_runs_temporaries_are_swept_and_nothing_else(tmp_path: Path) -> None:
    scratch = tmp_path / THUMB_SCRATCH
    scratch.mkdir(parents=True)
    leftovers = [
        scratch / ".1234.webp.k2j4_x9a",  # a thumbnail write killed before its rename
        tmp_path / f".{VECTORS_FILE}.abcd1234.tmp",  # a FAISS save killed mid-write
        tmp_path / f".{MANIFEST_FILE}.zz99yy88",
    ]
    kept = [
        tmp_path / VECTORS_FILE,
        tmp_path / MANIFEST_FILE,
        tmp_path / ".calibration.npz.abcd1234",  # a reader's, not the writer's
        scratch / "notes.txt",
    ]
    write_thumbnail(tmp_path, 7, b"thumb")
    kept.append(tmp_path / thumb_relpath(7))
    for path in leftovers + kept[:-1]:
        path.write_bytes(b"x")
    removed = remove_temporaries(tmp_path)
    assert sorted(removed) == sorted(p.name for p in leftovers)
    assert not any(p.exists() for p in leftovers) and all(p.exists() for p in kept)
