"""The overlapped commit of the GPU path (``indexer.pipeline.stages.Committer``), exercised on
the CPU: batches committed in order, one at a time, by one writer thread; progress from the
caller's thread; an error in the writer thread raised by ``index_library`` with the batches
before it kept."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest
from library_factory import photo
from test_pipeline import OPTIONS, assert_consistent, library_state

import indexer.pipeline.local as pipeline
from indexer.generations import GenerationIndex
from indexer.layout import read_manifest
from indexer.pipeline.local import IndexProgress, index_library
from indexer.store.metadata import MetadataStore

N_PHOTOS = 10  # batches of 4: 4, 4, 2


class WriterFailed(RuntimeError):
    pass


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for n in range(N_PHOTOS):
        photo(48, 40, seed=n).save(folder / f"{n:02d}.jpg")
    return folder


@pytest.fixture()
def gpu_path(monkeypatch) -> None:
    """Route runs through the GPU path on the CPU (torchvision's CPU JPEG decoder)."""
    monkeypatch.setattr(pipeline, "decodes_jpeg_on", lambda device, per_batch: True)


@pytest.fixture()
def commits(monkeypatch) -> list[tuple[str, list[int], int]]:
    """(thread name, ids, failed count) of every record_batch call; raises if two overlap."""
    calls: list[tuple[str, list[int], int]] = []
    busy = threading.Lock()
    real = MetadataStore.record_batch

    def spy(self, generation, model_id, indexed, failed, active=True):
        assert busy.acquire(blocking=False), "two batches committed at once"
        try:
            calls.append((threading.current_thread().name, [r["id"] for r in indexed], len(failed)))
            return real(self, generation, model_id, indexed, failed, active)
        finally:
            busy.release()

    monkeypatch.setattr(MetadataStore, "record_batch", spy)
    return calls


def test_the_gpu_path_commits_in_one_writer_thread(photos: Path, tiny_encoder, gpu_path, commits):
    seen: list[tuple[str, IndexProgress]] = []

    def progress(p: IndexProgress) -> None:
        seen.append((threading.current_thread().name, replace(p)))

    report = index_library(photos, tiny_encoder, model_ref="t", options=OPTIONS, progress=progress)
    assert report.embedded == N_PHOTOS == report.gpu_decoded
    assert {name for name, _, _ in commits} == {"index-writer_0"}
    assert [len(ids) for _, ids, _ in commits] == [4, 4, 2]  # in order
    assert len({i for _, ids, _ in commits for i in ids}) == N_PHOTOS
    embed = [p.done for name, p in seen if p.phase == "embed" and name == "MainThread"]
    assert embed == [0, 4, 8, 10]  # the callback runs in the caller's thread, in order
    assert all(name == "MainThread" for name, _ in seen)
    assert {"main encode", "main database", "main gpu decode"} <= set(report.cpu)
    assert_consistent(photos / ".vitrieve")


def test_the_cpu_path_commits_in_the_callers_thread(photos: Path, tiny_encoder, commits):
    report = index_library(photos, tiny_encoder, model_ref="t", options=OPTIONS)
    assert report.embedded == N_PHOTOS and report.gpu_decoded == 0
    assert {name for name, _, _ in commits} == {"MainThread"}


def test_overlap_without_nvjpeg_on_the_cpu(photos: Path, tiny_encoder, commits, monkeypatch):
    """``overlaps`` alone switches the writer thread on (a CUDA encoder without nvJPEG)."""
    monkeypatch.setattr(pipeline, "overlaps", lambda device, gpu: True)
    report = index_library(photos, tiny_encoder, model_ref="t", options=OPTIONS)
    assert report.embedded == N_PHOTOS and report.gpu_decoded == 0
    assert {name for name, _, _ in commits} == {"index-writer_0"}
    assert_consistent(photos / ".vitrieve")


def test_overlaps_only_on_cuda_or_with_nvjpeg() -> None:
    import torch

    assert pipeline.overlaps(torch.device("cuda", 0), None)
    assert not pipeline.overlaps(torch.device("cpu"), None)


@pytest.mark.parametrize("workers", [0, 1])
@pytest.mark.parametrize("failing", [2, 3])  # a batch handed over before the last; the last
def test_an_error_in_the_writer_thread_reaches_the_caller(
    photos: Path, tiny_encoder, gpu_path, commits, monkeypatch, workers: int, failing: int
) -> None:
    spy = MetadataStore.record_batch

    def fails(self, *args, **kwargs):
        if len(commits) == failing - 1:  # its vectors are staged, its rows never come
            commits.append(("failed", [], 0))
            raise WriterFailed("disk on fire")
        return spy(self, *args, **kwargs)

    monkeypatch.setattr(MetadataStore, "record_batch", fails)
    options = replace(OPTIONS, workers=workers)
    with pytest.raises(WriterFailed, match="disk on fire"):
        index_library(photos, tiny_encoder, model_ref="t", options=options)
    assert len(commits) == failing
    assert {name for name, _, _ in commits[:-1]} == {"index-writer_0"}
    first = sorted(i for _, ids, _ in commits[:-1] for i in ids)
    assert len(first) == 4 * (failing - 1)
    assert not [t for t in threading.enumerate() if t.name.startswith("index-writer")]

    library = photos / ".vitrieve"
    store = MetadataStore.for_library(library)
    try:
        manifest = read_manifest(library)
        assert manifest is not None and manifest.active is not None
        index = GenerationIndex(library, store, manifest.active, building=False)
        repair = index.open()  # what the next run does first: merge the staged, reconcile
        assert (repair.dropped_vectors, repair.reembed) == (0, 0)
        assert sorted(store.embedded_ids(manifest.active.generation)) == first
    finally:
        store.close()
    rows, vectors = library_state(library)
    assert sorted(r.id for r in rows.values() if r.status == "indexed") == first == sorted(vectors)
    assert_consistent(library)

    monkeypatch.setattr(MetadataStore, "record_batch", spy)
    again = index_library(photos, tiny_encoder, model_ref="t", options=options)
    assert again.embedded == N_PHOTOS - len(first)  # nothing lost, nothing embedded twice
    rows, vectors = library_state(library)
    assert {r.status for r in rows.values()} == {"indexed"} and len(vectors) == N_PHOTOS
    assert_consistent(library)
