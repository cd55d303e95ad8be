"""VectorIndex: exact and approximate kinds, filters, persistence, near-duplicates."""

from __future__ import annotations

import numpy as np
import pytest

from encoders.errors import VitrieveError
from indexer.vectors.index import VectorIndex, VectorSearch, ann

DIM = 64
SMALL = ann.ApproxParams("ivfpq", train_min=500)  # trained even on a few thousand vectors


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, dim: int, seed: int = 0, clusters: int = 40) -> np.ndarray:
    """Embedding-like data: cluster centres plus a low-dimensional spread plus a little noise."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((clusters, dim)))
    labels = rng.integers(0, clusters, n)
    bases = rng.standard_normal((clusters, 12, dim)) / np.sqrt(dim)
    spread = np.einsum("nk,nkd->nd", rng.standard_normal((n, 12)), bases[labels])
    return unit(centres[labels] + 0.5 * spread + 0.2 * rng.standard_normal((n, dim)) / np.sqrt(dim))


def make(kind: str, ids: np.ndarray, vectors: np.ndarray) -> VectorIndex:
    params = ann.ApproxParams(kind, train_min=500) if kind != "flat" else None
    index = VectorIndex.create(vectors.shape[1], kind, approx=params)
    index.add(ids, vectors)
    return index


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    vectors = clustered(3000, DIM)
    ids = np.arange(3000, dtype=np.int64) * 7 + 3  # ids are row keys, not positions
    return ids, vectors


@pytest.fixture(scope="module")
def built(data, tmp_path_factory):
    """Each kind over ``data``, trained once; a test gets its own copy (saved, then loaded)."""
    folder = tmp_path_factory.mktemp("built")
    paths = {}

    def get(kind: str) -> VectorIndex:
        if kind not in paths:
            paths[kind] = folder / f"{kind}.faiss"
            make(kind, *data).save(paths[kind])
        return VectorIndex.load(paths[kind])

    return get


KINDS = ["flat", "ivfpq", "hnsw"]


@pytest.mark.parametrize("kind", KINDS)
def test_each_vector_is_its_own_nearest_neighbour(kind, data):
    ids, vectors = data
    index = make(kind, ids, vectors)  # built here, not loaded: the in-memory path
    assert index.kind == kind and len(index) == len(ids)
    scores, found = index.search(vectors, 5)
    assert (found[:, 0] == ids).mean() >= 0.999  # exact re-ranking: the vector itself wins
    assert np.allclose(scores[:, 0], 1.0, atol=1e-4)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    assert isinstance(index, VectorSearch)


@pytest.mark.parametrize("kind", KINDS)
def test_add_remove_reconstruct(kind, data, built):
    ids, vectors = data
    index = built(kind)
    assert np.allclose(index.reconstruct(ids[[5, 17, 2999]]), vectors[[5, 17, 2999]])
    assert index.remove(np.concatenate([ids[:100], [10**12]])) == 100  # unknown id ignored
    assert len(index) == 2900 and set(index.ids().tolist()) == set(ids[100:].tolist())
    _, found = index.search(vectors[:100], 10)
    assert not np.isin(found, ids[:100]).any()
    with pytest.raises(KeyError):
        index.reconstruct(ids[:1])
    replacement = vectors[:1]
    index.add(ids[200:201], replacement)  # re-adding an id replaces its vector
    assert len(index) == 2900
    assert np.allclose(index.reconstruct(ids[200:201]), replacement)
    _, found = index.search(replacement, 1)
    assert found[0, 0] == ids[200]


@pytest.mark.parametrize("kind", KINDS)
def test_filtered_search_returns_only_allowed_ids_and_fills_k(kind, data, built):
    ids, vectors = data
    index = built(kind)
    rng = np.random.default_rng(1)
    queries = vectors[rng.choice(len(ids), 20, replace=False)]
    # 30 random ids: an unfiltered top-10 would hold almost none of them; a third of all ids
    for allowed in (ids[rng.choice(len(ids), 30, replace=False)], ids[::3]):
        scores, found = index.search(queries, 10, allowed_ids=allowed)
        assert np.isin(found, allowed).all(), "only allowed ids, and k of them"
        exact = np.sort(queries @ index.reconstruct(allowed).T, axis=1)[:, ::-1][:, :10]
        assert np.allclose(scores, exact, atol=1e-4)
    scores, found = index.search(queries, 10, allowed_ids=ids[:3])
    assert np.isin(found[:, :3], ids[:3]).all() and (found[:, 3:] == -1).all()
    assert np.isneginf(scores[:, 3:]).all()
    _, found = index.search(queries, 10, allowed_ids=np.array([], np.int64))
    assert (found == -1).all()


def test_filtered_approximate_search_fills_k_when_the_filter_is_far_from_the_query(data, built):
    ids, vectors = data
    index = built("ivfpq")
    query = vectors[:1]
    far = ids[np.argsort(vectors @ query[0])[: ann.EXACT_LIMIT // 4]]  # the least similar
    big = np.concatenate([far, ids[np.argsort(vectors @ query[0])[: ann.EXACT_LIMIT]]])
    for allowed in (far, big):
        _, found = index.search(query, 10, allowed_ids=allowed)
        assert (found >= 0).all() and np.isin(found, allowed).all()


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(kind, data, built, tmp_path):
    ids, vectors = data
    index = built(kind)
    index.remove(ids[:10])
    path = tmp_path / "vectors.faiss"
    index.save(path)
    loaded = VectorIndex.load(path)
    assert loaded.kind == kind and len(loaded) == len(index)
    assert loaded.describe() == index.describe()
    np.testing.assert_array_equal(np.sort(loaded.ids()), np.sort(index.ids()))
    queries = vectors[50:70]
    for a, b in zip(index.search(queries, 10), loaded.search(queries, 10), strict=True):
        np.testing.assert_array_equal(a, b)
    loaded.add(ids[:10], vectors[:10])  # a loaded (memory-mapped) index stays writable
    assert len(loaded) == len(ids)
    assert [p.name for p in tmp_path.iterdir()] == ["vectors.faiss"]  # no temporary left


@pytest.mark.parametrize("kind", ["flat", "ivfpq"])
def test_a_failed_save_leaves_the_old_file_intact(kind, data, built, tmp_path, monkeypatch):
    ids, vectors = data
    path = tmp_path / "vectors.faiss"
    old = make(kind, ids[:1000], vectors[:1000])
    old.save(path)
    before = path.read_bytes()
    new = built(kind)
    backend_type = type(new._backend)
    real_write = backend_type.write

    def write_then_fail(self, target):
        real_write(self, target)  # the temporary file is complete ...
        with target.open("r+b") as handle:
            handle.truncate(100)  # ... then the disk fills up
        raise OSError("no space left on device")

    monkeypatch.setattr(backend_type, "write", write_then_fail)
    with pytest.raises(OSError):
        new.save(path)
    assert path.read_bytes() == before
    assert len(VectorIndex.load(path)) == 1000
    assert [p.name for p in tmp_path.iterdir()] == ["vectors.faiss"]


def test_approximate_recall_at_10_against_exact():
    n, dim = 20_000, 128
    vectors = clustered(n + 200, dim, seed=2, clusters=100)
    base, queries = vectors[:n], vectors[n:]
    ids = np.arange(n, dtype=np.int64)
    exact = VectorIndex.create(dim, "flat")
    exact.add(ids, base)
    approx = exact.rebuild("auto", threshold=10_000)  # a low threshold: 20k is "large"
    assert approx.kind == "ivfpq" and approx.describe()["trained"]
    _, truth = exact.search(queries, 10)
    _, found = approx.search(queries, 10)
    recall = np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(found, truth, strict=True)])
    assert recall >= 0.98


def test_auto_kind_and_upgrade(data, built):
    ids, vectors = data
    assert VectorIndex.create(DIM).kind == "flat"
    assert VectorIndex.create(DIM, expected_size=10**6).kind == "ivfpq"
    index = built("flat")
    assert not index.upgrade_if_needed(threshold=len(ids))
    assert index.upgrade_if_needed(threshold=1000)
    assert index.kind == "ivfpq" and len(index) == len(ids)
    _, found = index.search(vectors[:50], 1)
    assert (found[:, 0] == ids[:50]).all()


@pytest.mark.parametrize("kind", KINDS)
def test_range_search_finds_near_duplicates(kind, data):
    ids, vectors = data
    rng = np.random.default_rng(3)
    dupes = unit(vectors[:20] + 0.01 * rng.standard_normal((20, DIM)))  # near-copies
    all_ids = np.concatenate([ids, 10**9 + np.arange(20)])
    all_vectors = np.concatenate([vectors, dupes])
    index = make(kind, all_ids, all_vectors)
    threshold = 0.97
    results = index.range_search(vectors[:20], threshold)
    for row, (found, scores) in enumerate(results):
        expected = all_ids[all_vectors @ vectors[row] >= threshold]
        assert set(found.tolist()) == set(expected.tolist())
        assert {ids[row], 10**9 + row} <= set(found.tolist())
        assert np.all(scores >= threshold) and np.all(np.diff(scores) <= 1e-6)


def test_compaction_after_many_removals(data, built):
    ids, vectors = data
    index = built("hnsw")
    index.remove(ids[:2000])  # past the compaction fraction: rebuilt without the dead
    assert len(index) == 1000 and index.describe()["positions"] == 1000
    _, found = index.search(vectors[2000:2100], 1)
    assert (found[:, 0] == ids[2000:2100]).all()


def test_bad_input_is_refused(data, tmp_path):
    ids, vectors = data
    index = VectorIndex.create(DIM)
    with pytest.raises(ValueError, match="shape"):
        index.add(ids[:2], vectors[:2, :10])
    with pytest.raises(ValueError, match="normalised"):
        index.add(ids[:2], vectors[:2] * 3)
    with pytest.raises(ValueError, match="duplicate"):
        index.add(ids[[0, 0]], vectors[:2])
    with pytest.raises(VitrieveError, match="unknown index kind"):
        VectorIndex.create(DIM, "annoy")
    garbage = tmp_path / "vectors.faiss"
    garbage.write_bytes(b"not an index at all")
    with pytest.raises(VitrieveError):
        VectorIndex.load(garbage)
    empty = VectorIndex.create(DIM)
    scores, found = empty.search(vectors[:2], 3)
    assert found.shape == (2, 3) and (found == -1).all()
