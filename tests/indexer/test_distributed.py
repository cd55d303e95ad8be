"""The Ray engine on a local Ray instance gives the local engine's vectors, rows and failures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from library_factory import jpeg_bytes, photo

from indexer.layout import vectors_path
from indexer.pipeline.local import IndexOptions, index_library
from indexer.store.metadata import MetadataStore
from indexer.vectors.index import VectorIndex


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_one_index_from_shards_trains_on_a_sample_and_keeps_the_newest_vector(tmp_path):
    from indexer.pipeline.shards import build_from_shards, read_shards, write_shard

    rng = np.random.default_rng(0)
    vectors = unit(rng.standard_normal((3000, 32)))
    ids = np.arange(3000, dtype=np.int64) + 1
    for part in np.array_split(np.arange(3000), 3):
        write_shard(tmp_path, ids[part], vectors[part], [f"p{i}.jpg" for i in ids[part]])
    newer = unit(rng.standard_normal((1, 32)))
    write_shard(tmp_path, ids[1999:2000], newer, ["p2000.jpg"])  # re-embedded later: it wins
    (tmp_path / "unfinished.npy").write_bytes(b"")  # no parquet: an incomplete shard
    assert len(read_shards(tmp_path)) == 4
    existing = VectorIndex.create(32)
    existing.add(ids[:10], vectors[:10])
    committed = ids[ids != 3000]  # the last file's rows were never committed
    index = build_from_shards(existing, tmp_path, committed, "auto", threshold=1000)
    assert index.kind == "ivfpq" and index.describe()["trained"]
    assert len(index) == 2999 and 3000 not in index.ids()
    np.testing.assert_allclose(index.reconstruct(ids[1999:2000]), newer)
    np.testing.assert_allclose(index.reconstruct(ids[:10]), vectors[:10])  # already indexed
    _, found = index.search(vectors[100:200], 1)
    assert (found[:, 0] == ids[100:200]).all()


def make_photos(root: Path) -> None:
    for n in range(10):
        folder = root / ("trip" if n % 2 else "home")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"img {n}.jpg").write_bytes(jpeg_bytes(photo(96 + 8 * n, 72, seed=n)))
    (root / "broken.jpg").write_bytes(jpeg_bytes(photo(seed=99))[:300])  # truncated
    (root / "notes.png").write_bytes(b"not an image at all")


def library_vectors(library: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """path → vector of the indexed files, path → reason of the failed ones."""
    store = MetadataStore.for_library(library)
    try:
        files = store.get_files(store.embedded_ids(1))
        failed = dict(store.failures())
    finally:
        store.close()
    index = VectorIndex.load(vectors_path(library))
    vectors = index.reconstruct(np.array([f.id for f in files]))
    return {f.path: v for f, v in zip(files, vectors, strict=True)}, failed


@pytest.mark.timeout(300)  # Ray starts in ~10-30 s; the indexing itself takes seconds
def test_ray_engine_gives_the_local_engines_vectors(tmp_path, tiny_checkpoint, tiny_encoder):
    ray = pytest.importorskip("ray")
    from indexer.pipeline.ray_engine import index_with_ray, shard_dir

    photos = tmp_path / "photos"
    make_photos(photos)
    options = IndexOptions(workers=1, batch_size=4)
    local = index_library(
        photos,
        tiny_encoder,
        model_ref=str(tiny_checkpoint),
        library=tmp_path / "local",
        options=IndexOptions(workers=0),
    )
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=2**28)
    try:
        report = index_with_ray(
            photos,
            tiny_encoder,
            model_ref=str(tiny_checkpoint),
            library=tmp_path / "ray",
            options=options,
            concurrency=1,
        )
    finally:
        ray.shutdown()
    assert report.embedded == local.embedded == 10
    assert report.vectors == 10 and report.index_kind == "flat"
    assert sorted(p for p, _ in report.failures) == ["broken.jpg", "notes.png"]
    ours, our_failures = library_vectors(tmp_path / "ray")
    theirs, their_failures = library_vectors(tmp_path / "local")
    assert our_failures == their_failures
    assert sorted(ours) == sorted(theirs) and len(ours) == 10
    for path, vector in ours.items():
        assert float(vector @ theirs[path]) >= 0.999, path
    assert not shard_dir(tmp_path / "ray", 1).exists()  # merged into the index, then removed
    assert (tmp_path / "ray" / "thumbs").is_dir()
