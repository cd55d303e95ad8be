"""One handle on a library for long-running processes (API server, UI): reopened when indexing
rewrote the library, with the model kept while it is the same and the replaced library closed;
and the label counts a page shows, counted in SQL."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from indexer.layout import MANIFEST_FILE, VECTORS_FILE
from retrieval.library.handle import Library
from retrieval.library.reopen import LibraryHandle, LibraryUnavailable
from retrieval.search.query import Query


@pytest.fixture
def library_copy(synth_library, tmp_path: Path) -> Path:
    copy = tmp_path / "library"
    shutil.copytree(synth_library.path, copy)
    return copy


def _touch(path: Path, later_by: float = 5.0) -> None:
    """What a re-index does to the library's files, as far as a reader can tell."""
    moment = path.stat().st_mtime + later_by
    os.utime(path, (moment, moment))


def test_the_handle_reopens_a_changed_library_and_closes_the_old_one(
    library_copy: Path, monkeypatch
) -> None:
    closed: list[Library] = []
    close = Library.close

    def recording_close(self: Library) -> None:
        closed.append(self)
        close(self)

    monkeypatch.setattr(Library, "close", recording_close)
    handle = LibraryHandle(library_copy, device="cpu", name="photos")
    first = handle.current()
    assert handle.current() is first and first.loaded_encoder is not None  # warm: model loaded
    assert closed == []

    _touch(library_copy / MANIFEST_FILE)
    second = handle.current()
    assert second is not first and closed == [first]
    assert second.loaded_encoder is first.loaded_encoder  # the same model is not loaded again
    assert second.searcher.search(Query.parse("a red star"), limit=2).results
    assert handle.current() is second and closed == [first]

    handle.close()
    assert closed == [first, second]


def test_an_unwarmed_handle_loads_no_model_until_asked(library_copy: Path) -> None:
    handle = LibraryHandle(library_copy, device="cpu", warm=False)
    try:
        assert handle.current().loaded_encoder is None
        assert handle.current().encoder.model_id == handle.current().manifest.active.model_id
    finally:
        handle.close()


def test_a_library_broken_on_disk_is_unavailable_by_name(library_copy: Path) -> None:
    handle = LibraryHandle(library_copy, device="cpu", name="photos", warm=False)
    try:
        (library_copy / VECTORS_FILE).write_bytes(b"not an index")
        with pytest.raises(LibraryUnavailable, match="photos"):
            handle.current()
    finally:
        handle.close()


def test_label_counts_are_counted_in_sql_as_a_page_counts_them(library_copy: Path) -> None:
    with Library.open(library_copy) as library:
        a, b, c = (int(i) for i in library.ids()[:3])
        pets = [(a, "cat", 0.9), (a, "dog", 0.1), (b, "dog", 0.8), (b, "cat", 0.2),
                (c, "cat", 0.4), (c, "bird", 0.6)]  # fmt: skip
        library.store.write_labels("pets", pets)
        library.store.write_labels("other", [(a, "dog", 0.99)])
        library.store.write_labels("ties", [(a, "wasp", 0.5), (a, "bee", 0.5)])
        assert library.label_counts("pets") == {"cat": 1, "dog": 1, "bird": 1}
        assert library.label_counts("pets", best_only=False) == {"cat": 3, "dog": 2, "bird": 1}
        assert library.label_counts("ties") == {"bee": 1}  # a tie: the first label by name
        assert library.label_counts("nothing here") == {}
        best: dict[str, int] = {}  # what the UI counted in Python on every render
        for labels in library.labels(label_set="pets").values():
            best[labels[0].label] = best.get(labels[0].label, 0) + 1
        assert library.label_counts("pets") == best
