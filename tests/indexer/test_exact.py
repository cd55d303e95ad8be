"""The exact kind's int8 scan + float32 re-scoring: equal to IndexFlatIP, persistent, and
compatible with libraries saved with the earlier fp16 scan or as a plain
IndexIDMap2(IndexFlatIP) file."""

from __future__ import annotations

import threading

import faiss
import numpy as np
import pytest

from encoders.errors import VitrieveError
from indexer.vectors.ann import EXACT_LIMIT
from indexer.vectors.container import read_container, write_container
from indexer.vectors.exact import ExactBackend, set_scan_threads
from indexer.vectors.index import VectorIndex

DIM = 64
N = 20_000  # well past EXACT_LIMIT: the int8 scan answers, not the small-filter brute force


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense clusters (many near-ties) plus 300 exact copies of one vector; ids ≠ positions."""
    rng = np.random.default_rng(7)
    centres = unit(rng.standard_normal((30, DIM)))
    vectors = unit(centres[rng.integers(0, 30, N)] + 0.15 * rng.standard_normal((N, DIM)))
    vectors[-300:] = vectors[0]
    ids = np.arange(N, dtype=np.int64) * 3 + 11
    queries = unit(centres[rng.integers(0, 30, 150)] + 0.2 * rng.standard_normal((150, DIM)))
    return ids, vectors, np.concatenate([queries, vectors[:3]])


def truth(ids, vectors, queries, k, allowed=None):
    """IndexFlatIP's top k + 1 (the extra column shows ties at the cut)."""
    k += 1
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    flat.add_with_ids(vectors, ids)
    params = None if allowed is None else faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
    return flat.search(queries, k, params=params)


def assert_same_top_k(got, expected):
    """``expected`` is the truth for one more than k, to see ties at the cut."""
    (scores, found), (true_scores, true_ids) = got, expected
    k = scores.shape[1]
    assert np.allclose(scores, true_scores[:, :k], atol=1e-6)  # the same top k, up to ties
    gaps = np.abs(np.diff(true_scores, axis=1)) > 1e-6  # (nq, k): rank i vs rank i + 1
    untied = gaps & np.concatenate([np.ones((len(gaps), 1), bool), gaps[:, :-1]], axis=1)
    assert (found[untied] == true_ids[:, :k][untied]).all()


def exact_index(ids, vectors) -> VectorIndex:
    index = VectorIndex.create(DIM, "flat")
    index.add(ids, vectors)
    assert isinstance(index._backend, ExactBackend) and len(index) > EXACT_LIMIT
    return index


@pytest.mark.parametrize("k", [1, 10, 100])
def test_top_k_equals_index_flat_ip(data, k):
    ids, vectors, queries = data
    index = exact_index(ids, vectors)
    assert 0 < index.describe()["error_bound"] < 0.05  # int8: far coarser than the gaps
    assert_same_top_k(index.search(queries, k), truth(ids, vectors, queries, k))


def test_exact_copies_tie_and_are_all_found(data):
    ids, vectors, _ = data
    index = exact_index(ids, vectors)
    scores, found = index.search(vectors[:1], 400)  # 301 copies: past the first candidates
    assert np.allclose(scores[0, :301], 1.0, atol=1e-5)
    assert set(found[0, :301].tolist()) == {int(ids[0]), *ids[-300:].tolist()}


def test_filtered_search_equals_index_flat_ip(data):
    ids, vectors, queries = data
    index = exact_index(ids, vectors)
    allowed = ids[::2]  # 10k: larger than EXACT_LIMIT, so the scan runs with a selector
    got = index.search(queries, 20, allowed)
    assert_same_top_k(got, truth(ids, vectors, queries, 20, allowed))
    assert np.isin(got[1], allowed).all()


def test_remove_readd_save_load_round_trip(data, tmp_path):
    ids, vectors, queries = data
    index = exact_index(ids, vectors)
    assert index.remove(ids[:2000]) == 2000  # below the compaction fraction: dead positions
    rng = np.random.default_rng(1)
    moved = unit(vectors[5000:5100] + 0.3 * rng.standard_normal((100, DIM)))
    index.add(ids[5000:5100], moved)  # re-added ids get their new vectors
    live_vectors = vectors.copy()
    live_vectors[5000:5100] = moved
    keep = np.arange(2000, N)
    expected = truth(ids[keep], live_vectors[keep], queries, 10)
    assert_same_top_k(index.search(queries, 10), expected)
    path = tmp_path / "vectors.faiss"
    index.save(path)
    loaded = VectorIndex.load(path)
    assert isinstance(loaded._backend, ExactBackend) and loaded.kind == "flat"
    assert len(loaded) == N - 2000 and set(loaded.ids().tolist()) == set(ids[keep].tolist())
    assert_same_top_k(loaded.search(queries, 10), expected)
    assert np.allclose(loaded.reconstruct(ids[5000:5003]), moved[:3])
    loaded.remove(ids[2000:9000])  # past the compaction fraction: rebuilt without the dead
    assert loaded.describe()["positions"] == len(loaded) == N - 9000
    assert_same_top_k(
        loaded.search(queries, 10), truth(ids[9000:], live_vectors[9000:], queries, 10)
    )


def test_range_search_is_exact(data):
    ids, vectors, queries = data
    index = exact_index(ids, vectors)
    index.remove(ids[-10:])  # removed copies must not come back
    results = index.range_search(queries[-3:], 0.9)
    for query, (found, scores) in zip(queries[-3:], results, strict=True):
        live = slice(0, N - 10)
        expected = ids[live][vectors[live] @ query >= 0.9]
        assert set(found.tolist()) == set(expected.tolist())
        assert np.all(scores >= 0.9) and np.all(np.diff(scores) <= 1e-6)


def test_an_index_in_an_unreleased_format_is_refused_with_re_index_it(data, tmp_path):
    """A plain FAISS ``IndexIDMap2(IndexFlatIP)`` file and a container whose scan storage is
    not int8 (both written only by versions before the first release) are not opened."""
    ids, vectors, _ = data
    plain = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    plain.add_with_ids(vectors[:100], ids[:100])
    path = tmp_path / "vectors.faiss"
    faiss.write_index(plain, str(path))
    with pytest.raises(VitrieveError, match="re-index it"):
        VectorIndex.load(path)
    small = VectorIndex.create(DIM, "flat")
    small.add(ids[:100], vectors[:100])
    small.save(path)
    header, ext, live, stored, index = read_container(path)  # vectors memory-mapped: a copy
    fp16 = tmp_path / "fp16.faiss"
    write_container(fp16, {**header, "storage": "SQfp16"}, ext, live, stored, index)
    with pytest.raises(VitrieveError, match="re-index it"):
        VectorIndex.load(fp16)


def test_the_certificate_widens_too_few_candidates(data, monkeypatch):
    ids, vectors, queries = data
    index = exact_index(ids, vectors)
    monkeypatch.setattr("indexer.vectors.exact.MIN_CANDIDATES", 1)  # 4·k candidates: often too few
    for k in (1, 5):
        assert_same_top_k(index.search(queries, k), truth(ids, vectors, queries, k))


def test_near_ties_below_scan_precision_are_ranked_exactly():
    rng = np.random.default_rng(3)
    centre = unit(rng.standard_normal((1, DIM)))
    vectors = unit(centre + 2e-3 * rng.standard_normal((12_000, DIM)))  # gaps ≪ int8 error
    ids = np.arange(12_000, dtype=np.int64)
    index = VectorIndex.create(DIM, "flat")
    index.add(ids, vectors)
    queries = unit(centre + 1e-3 * rng.standard_normal((20, DIM)))
    for k in (1, 10):
        assert_same_top_k(index.search(queries, k), truth(ids, vectors, queries, k))


def test_batched_range_search_equals_brute_force(data):
    ids, vectors, _ = data
    index = exact_index(ids, vectors)
    index.remove(ids[-5:])
    queries = vectors[::500]  # 40 queries: the batched (matrix product) path
    live = slice(0, N - 5)
    for query, (found, scores) in zip(queries, index.range_search(queries, 0.9), strict=True):
        exact = vectors[live] @ query
        assert set(found.tolist()) == set(ids[live][exact >= 0.9].tolist())
        assert np.all(scores >= 0.9) and np.all(np.diff(scores) <= 1e-6)


@pytest.fixture
def scan_in_parts(monkeypatch):
    """The scan split across scan threads (3 parts: uneven bounds), restored afterwards."""
    monkeypatch.setattr("indexer.vectors.exact.PARALLEL_MIN", 1000)  # N is below the default
    set_scan_threads(3)
    yield
    set_scan_threads(1)


def test_scan_threads_give_the_one_thread_results(data, scan_in_parts, monkeypatch):
    ids, vectors, queries = data
    index = exact_index(ids, vectors)
    index.remove(ids[100:400])  # dead positions: the live selector combines with each part
    calls = []
    search = faiss.IndexScalarQuantizer.search
    monkeypatch.setattr(
        faiss.IndexScalarQuantizer, "search",
        lambda self, *a, **kw: calls.append(threading.get_ident()) or search(self, *a, **kw),
    )  # fmt: skip
    keep = np.setdiff1d(np.arange(N), np.arange(100, 400))
    allowed = ids[keep][::2]
    for k, filtered in ((1, None), (10, None), (100, None), (20, allowed)):
        set_scan_threads(3)
        parallel = index.search(queries, k, filtered)
        set_scan_threads(1)
        single = index.search(queries, k, filtered)
        base = keep if filtered is None else np.flatnonzero(np.isin(ids, filtered))
        true_scores, true_ids = truth(ids[base], vectors[base], queries, k)
        assert_same_top_k(parallel, (true_scores, true_ids))
        assert np.array_equal(parallel[0], single[0])  # the same exact scores
        one_thread = np.concatenate([single[1], true_ids[:, k:]], axis=1)
        assert_same_top_k(parallel, (true_scores, one_thread))  # same ids but among exact ties
        if filtered is not None:
            assert np.isin(parallel[1], filtered).all()
    assert len(set(calls)) == 3  # the parts ran on the caller and two pool threads


def test_scan_threads_find_all_tied_copies(data, scan_in_parts):
    ids, vectors, _ = data
    index = exact_index(ids, vectors)  # the 300 copies sit in the last part, vectors[0] first
    scores, found = index.search(vectors[:1], 400)
    assert np.allclose(scores[0, :301], 1.0, atol=1e-5)
    assert set(found[0, :301].tolist()) == {int(ids[0]), *ids[-300:].tolist()}


def test_scan_threads_must_be_positive():
    with pytest.raises(ValueError):
        set_scan_threads(0)
