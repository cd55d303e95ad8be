"""index_library end to end (in-process decoding for speed): the bad library, incremental
runs, model changes, crash repair."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from library_factory import BOMB_LIMIT, photo

from encoders.errors import VitrieveError
from indexer.layout import vectors_path
from indexer.pipeline.local import IndexOptions, index_library
from indexer.store.metadata import MetadataStore
from indexer.vectors.index import VectorIndex

# The CPU decoder: test_vectors_match_direct_encoding compares with the Pillow path at 1e-5
# (tests/indexer/test_gpu_path.py runs the same round trips on the nvJPEG path).
OPTIONS = IndexOptions(workers=0, batch_size=4, max_pixels=BOMB_LIMIT, device="cpu")


def run(photos: Path, encoder, ref: str = "tiny", **kwargs):
    return index_library(photos, encoder, model_ref=ref, options=OPTIONS, **kwargs)


def library_state(library: Path) -> tuple[dict[str, object], dict[int, np.ndarray]]:
    """Rows by path and vectors by id, read back from disk."""
    store = MetadataStore.for_library(library)
    rows = {r.path: r for r in store.all_files()}
    store.close()
    index = VectorIndex.load(vectors_path(library))
    ids = index.ids()
    return rows, dict(zip(ids.tolist(), index.reconstruct(ids), strict=True))


def assert_consistent(library: Path) -> None:
    rows, vectors = library_state(library)
    indexed = sorted(r.id for r in rows.values() if r.status == "indexed")
    assert sorted(vectors) == indexed  # every vector has an indexed row and vice versa
    assert not list((library / "staging").rglob("*.npz"))


def test_bad_library(bad_library, tiny_encoder) -> None:
    report = run(bad_library.root, tiny_encoder)
    library = bad_library.root / ".vitrieve"
    rows, vectors = library_state(library)
    indexed = {p for p, r in rows.items() if r.status == "indexed"}
    assert indexed == bad_library.good
    failed = {p: r.error for p, r in rows.items() if r.status == "failed"}
    assert set(failed) == set(bad_library.bad)
    for path, reason in bad_library.bad.items():
        assert reason in failed[path] and failed[path]
    assert {p for p, _ in report.failures} == set(bad_library.bad)
    assert sorted(report.skipped_links) == ["link_to_plain.jpg", "sub dir/loop"]
    assert not any(p.startswith(".") or "/." in p for p in rows)  # hidden files skipped
    assert report.embedded == len(bad_library.good) == len(vectors)
    assert_consistent(library)
    rotated = rows["rotated.jpg"]
    assert (rotated.width, rotated.height, rotated.format) == (40, 80, "JPEG")
    assert rotated.taken_at is not None and rotated.taken_at.year == 2021
    assert (library / rotated.thumb).read_bytes()[8:12] == b"WEBP"
    manifest = json.loads((library / "library.json").read_text())
    assert manifest["active"]["model_id"] == tiny_encoder.model_id
    assert manifest["active"]["index_kind"] == "auto" and report.index_kind == "flat"
    assert manifest["active"]["built_kind"] == "flat"
    again = run(bad_library.root, tiny_encoder)  # nothing changed: nothing to do
    assert again.embedded == 0 and again.failures == [] and again.unchanged == report.found
    retry = index_library(bad_library.root, tiny_encoder, model_ref="tiny",
                          options=replace(OPTIONS, retry_failed=True))  # fmt: skip
    assert retry.embedded == 0 and {p for p, _ in retry.failures} == set(bad_library.bad)


def test_vectors_match_direct_encoding(bad_library, tiny_encoder) -> None:
    from indexer.decode.images import decode_image

    run(bad_library.root, tiny_encoder)
    rows, vectors = library_state(bad_library.root / ".vitrieve")
    decoded = decode_image(bad_library.root / "plain.jpg", target_size=tiny_encoder.image_size)
    expected = tiny_encoder.encode_images([decoded.image])[0]
    np.testing.assert_allclose(vectors[rows["plain.jpg"].id], expected, atol=1e-5)


def test_incremental_add_modify_delete_move_touch(tmp_path: Path, tiny_encoder) -> None:
    photos = tmp_path / "photos"
    (photos / "a").mkdir(parents=True)
    for n in range(6):
        photo(seed=n).save(photos / "a" / f"{n}.jpg")
    run(photos, tiny_encoder)
    library = photos / ".vitrieve"
    before, vectors_before = library_state(library)
    store = MetadataStore.for_library(library)
    store.write_labels("set", [(before["a/0.jpg"].id, "cat", 0.9)])
    store.close()
    photo(seed=100).save(photos / "new.jpg")  # add
    photo(seed=101).save(photos / "a" / "1.jpg")  # modify
    os.utime(photos / "a" / "1.jpg", ns=(1, 1))
    (photos / "a" / "2.jpg").unlink()  # delete
    (photos / "b").mkdir()
    shutil.move(photos / "a" / "0.jpg", photos / "b" / "renamed.jpg")  # move
    os.utime(photos / "a" / "3.jpg")  # touch: same bytes, new mtime
    report = run(photos, tiny_encoder)
    assert (report.new, report.changed, report.deleted, report.moved) == (1, 1, 1, 1)
    assert report.embedded == 2 and report.unchanged == 3
    after, vectors_after = library_state(library)
    moved = after["b/renamed.jpg"]
    assert "a/0.jpg" not in after and moved.id == before["a/0.jpg"].id
    np.testing.assert_array_equal(vectors_after[moved.id], vectors_before[moved.id])
    store = MetadataStore.for_library(library)
    assert store.read_labels("set") == {moved.id: [("set", "cat", 0.9)]}  # Label triples
    store.close()
    modified = after["a/1.jpg"]
    assert modified.id == before["a/1.jpg"].id
    assert not np.allclose(vectors_after[modified.id], vectors_before[modified.id])
    assert after["a/2.jpg"].status == "deleted" and after["a/2.jpg"].id not in vectors_after
    assert after["new.jpg"].status == "indexed"
    assert_consistent(library)
    photo(seed=2).save(photos / "a" / "2.jpg")  # a deleted path comes back
    run(photos, tiny_encoder)
    assert library_state(library)[0]["a/2.jpg"].status == "indexed"
    assert_consistent(library)


def test_new_model_builds_beside_and_switches(tmp_path: Path, tiny_encoder) -> None:
    from encoders.model.clip import create_model
    from encoders.model.config import load_config
    from encoders.runtime.encoder import Encoder
    from encoders.weights.checkpoint import save_checkpoint

    photos = tmp_path / "photos"
    photos.mkdir()
    for n in range(10):
        photo(seed=n).save(photos / f"{n}.png")
    run(photos, tiny_encoder)
    library = photos / ".vitrieve"
    _, old_vectors = library_state(library)
    save_checkpoint(create_model(load_config("tiny")), tmp_path / "other")
    other = Encoder.load(tmp_path / "other", precision="fp32")
    assert other.model_id != tiny_encoder.model_id

    def interrupt(state) -> None:
        if state.phase == "embed" and state.done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(photos, other, "other", progress=interrupt)
    manifest = json.loads((library / "library.json").read_text())
    assert manifest["active"]["model_id"] == tiny_encoder.model_id  # still searching the old
    assert manifest["building"]["model_id"] == other.model_id
    _, still = library_state(library)
    assert sorted(still) == sorted(old_vectors)
    report = run(photos, other, "other")
    assert report.switched and report.embedded == 6  # the first 4 were kept from before
    manifest = json.loads((library / "library.json").read_text())
    assert manifest["active"]["model_id"] == other.model_id and manifest["building"] is None
    rows, new_vectors = library_state(library)
    assert sorted(new_vectors) == sorted(old_vectors)
    some = next(iter(new_vectors))
    assert not np.allclose(new_vectors[some], old_vectors[some])
    assert not vectors_path(library, building=True).exists()
    assert_consistent(library)


def test_repair_on_open(tmp_path: Path, tiny_encoder) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for n in range(5):
        photo(seed=n).save(photos / f"{n}.jpg")
    run(photos, tiny_encoder)
    library = photos / ".vitrieve"
    rows, vectors = library_state(library)
    index = VectorIndex.load(vectors_path(library))
    lost = rows["0.jpg"].id
    index.remove(np.array([lost]))
    stray = np.random.default_rng(0).normal(size=(1, tiny_encoder.embed_dim)).astype(np.float32)
    index.add(np.array([9999]), stray / np.linalg.norm(stray))
    index.save(vectors_path(library))
    report = run(photos, tiny_encoder)
    assert report.repaired == {"dropped_vectors": 1, "reembedded": 1}
    assert report.embedded == 1
    _, repaired = library_state(library)
    np.testing.assert_allclose(repaired[lost], vectors[lost], atol=1e-6)
    assert_consistent(library)


def test_unreadable_file_is_recorded(tmp_path: Path, tiny_encoder, monkeypatch) -> None:
    """Tests run as root, who reads any file: simulate EACCES where the indexer reads."""
    photos = tmp_path / "photos"
    photos.mkdir()
    photo(seed=1).save(photos / "ok.jpg")
    photo(seed=2).save(photos / "locked.jpg")
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == "locked.jpg":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    report = run(photos, tiny_encoder)
    assert report.failures == [("locked.jpg", "cannot read: Permission denied")]
    assert report.embedded == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads chmod-000 files; see the test above")
def test_chmod_000_file_is_recorded(tmp_path: Path, tiny_encoder) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    photo(seed=1).save(photos / "locked.jpg")
    (photos / "locked.jpg").chmod(0)
    report = run(photos, tiny_encoder)
    assert [p for p, _ in report.failures] == ["locked.jpg"]


def test_library_belongs_to_one_folder(tmp_path: Path, tiny_encoder) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    run(tmp_path / "a", tiny_encoder, library=tmp_path / "lib")
    with pytest.raises(VitrieveError, match="indexes"):
        run(tmp_path / "b", tiny_encoder, library=tmp_path / "lib")


def test_batch_size_defaults_by_device() -> None:
    """No --batch-size: the device's own (a GPU needs hundreds per call); given: as given."""
    from indexer.pipeline.reports import DEFAULT_INDEX_BATCH

    assert IndexOptions(device="cpu").batch() == DEFAULT_INDEX_BATCH["cpu"]
    assert IndexOptions(device="cpu", batch_size=7).batch() == 7


def test_decoders_and_encoder_threads_follow_the_cores(monkeypatch) -> None:
    """Left at their defaults, a decoder per core and every core for the encoder (the decoders
    run niced below it); what is set stays as set; the cores are the ones this process may use."""
    assert IndexOptions().schedule(cores=16) == (16, 16)
    assert IndexOptions(device="cuda").schedule(cores=64) == (64, 64)  # feeding a GPU
    assert IndexOptions(workers=0).schedule(cores=4) == (0, 4)  # in-process decoding
    assert IndexOptions(workers=3, encoder_threads=1).schedule(cores=8) == (3, 1)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert IndexOptions().schedule() == (3, 3)  # taskset -c 0-2


def test_the_run_uses_the_scheduled_threads_and_restores_them(tmp_path: Path, tiny_encoder) -> None:
    import torch

    from indexer.pipeline.stages import Stages

    for n in range(3):
        photo(48, 40, seed=n).save(tmp_path / f"{n}.jpg")
    seen: list[int] = []
    real = Stages.encode

    def spy(self, batch) -> None:
        seen.append(torch.get_num_threads())
        real(self, batch)

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Stages, "encode", spy)
            patch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
            run(tmp_path, tiny_encoder)
        assert seen and set(seen) == {2} and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
