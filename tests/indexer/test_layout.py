"""Library layout: what a killed run's atomic writes leave behind is swept, and only that;
which folder a path given by a user means (``locate_library``, the one place that decides)."""

from __future__ import annotations

from pathlib import Path

import pytest

from encoders.errors import VitrieveError
from indexer.layout import (
    DEFAULT_LIBRARY_DIR,
    MANIFEST_FILE,
    THUMB_SCRATCH,
    VECTORS_FILE,
    locate_library,
    remove_temporaries,
    thumb_relpath,
    write_thumbnail,
)
from indexer.pipeline.run import resolve_paths


def test_thumbnails_go_through_the_scratch_folder(tmp_path: Path) -> None:
    write_thumbnail(tmp_path, 1234, b"RIFF....WEBP")
    assert (tmp_path / thumb_relpath(1234)).read_bytes() == b"RIFF....WEBP"
    assert list((tmp_path / THUMB_SCRATCH).iterdir()) == []  # renamed away, nothing left


def test_a_killed_runs_temporaries_are_swept_and_nothing_else(tmp_path: Path) -> None:
    scratch = tmp_path / THUMB_SCRATCH
    scratch.mkdir(parents=True)
    leftovers = [
        scratch / ".1234.webp.k2j4_x9a.tmp",  # a thumbnail write killed before its rename
        tmp_path / f".{VECTORS_FILE}.abcd1234.tmp",  # a FAISS save killed mid-write
        tmp_path / f".{MANIFEST_FILE}.zz99yy88.tmp",
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


def _library(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST_FILE).write_text("{}")
    return folder


def test_locate_library_reads_a_library_or_a_photo_folder(tmp_path: Path, monkeypatch) -> None:
    photos = tmp_path / "photos"
    nested = _library(photos / DEFAULT_LIBRARY_DIR)
    plain = _library(tmp_path / "plain")
    assert locate_library(plain) == plain.resolve()  # a library folder itself
    assert locate_library(photos) == nested.resolve()  # a photo folder: its .vitrieve
    assert locate_library(nested) == nested.resolve()
    monkeypatch.chdir(photos)
    assert locate_library() == nested.resolve()  # none given: the current folder's
    monkeypatch.chdir(plain)
    assert locate_library(None) == plain.resolve()
    with pytest.raises(VitrieveError, match="no library at"):
        locate_library(tmp_path / "nowhere")


def test_locate_library_for_a_library_about_to_be_made(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    assert (
        locate_library(fresh / DEFAULT_LIBRARY_DIR, new=True)
        == (fresh / DEFAULT_LIBRARY_DIR).resolve()
    )
    assert locate_library(tmp_path / "lib", new=True) == (tmp_path / "lib").resolve()
    started = tmp_path / "started"  # a first indexing job has made its folder, no manifest yet
    (started / DEFAULT_LIBRARY_DIR).mkdir(parents=True)
    assert locate_library(started, new=True) == (started / DEFAULT_LIBRARY_DIR).resolve()
    with pytest.raises(VitrieveError):
        locate_library(started)  # nothing to open there yet


def test_indexing_and_its_job_agree_on_the_library(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    assert resolve_paths(photos, None)[1] == (photos / DEFAULT_LIBRARY_DIR).resolve()
    existing = _library(photos / DEFAULT_LIBRARY_DIR)
    assert resolve_paths(photos, photos)[1] == existing.resolve()  # --library PHOTOS
    assert resolve_paths(photos, tmp_path / "elsewhere")[1] == (tmp_path / "elsewhere").resolve()
