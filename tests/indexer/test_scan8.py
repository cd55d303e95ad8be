"""The int8 first pass of the exact kind: its error bound holds, it re-fits when data outgrow
its scales, older fp16 containers are re-coded, and tampered headers are refused."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

from indexer.vectors.container import read_container, write_container
from indexer.vectors.exact import ExactBackend
from indexer.vectors.scan8 import Int8Scan

DIM = 48


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def brute_top(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int):
    scores = queries @ vectors.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), ids[order]


def test_scan_scores_stay_within_the_error_bound():
    rng = np.random.default_rng(0)
    vectors = unit(rng.standard_normal((5000, DIM)))
    scan = Int8Scan.fitted(vectors)
    queries = rng.standard_normal((20, DIM)).astype(np.float32)  # not unit: the bound scales
    approx, positions, bound = scan.search(queries, 5000)
    exact = np.take_along_axis(queries @ vectors.T, positions, axis=1)
    norms = np.linalg.norm(queries, axis=1)
    assert 0 < scan.error < 0.05 and np.all(bound < 0.1 * norms)  # useful, not vacuous
    assert np.all(np.abs(approx - exact) <= bound[:, None] + 1e-5)
    assert np.abs(approx - exact).max() > 0  # it is a coarse scan, not the float32 vectors


def test_vectors_beyond_the_fitted_range_refit_and_stay_exact():
    rng = np.random.default_rng(1)
    small = unit(rng.standard_normal((3000, DIM)))  # spread over every dimension
    spiky = unit(np.eye(DIM, dtype=np.float32)[rng.integers(0, DIM, 3000)] + 0.05 * small)
    backend = ExactBackend.build(np.arange(3000), small)
    fitted = backend.error
    scales_before = backend._codes.scales.copy()
    backend.add(np.arange(3000, 6000), spiky)  # components near 1: clipped by the old scales
    assert not np.allclose(backend._codes.scales, scales_before)  # re-fitted
    assert backend.error < 2 * max(fitted, np.abs(spiky).max() / 127)
    vectors, ids = np.concatenate([small, spiky]), np.arange(6000)
    queries = unit(np.concatenate([small[:10], spiky[:10]]) + 0.1)
    scores, found = backend.search(queries, 10, None)
    true_scores, true_ids = brute_top(vectors, ids, queries, 10)
    assert np.allclose(scores, true_scores, atol=1e-5) and (found == true_ids).all()


def test_a_container_with_the_unreleased_fp16_scan_is_refused(tmp_path):
    rng = np.random.default_rng(2)
    vectors = unit(rng.standard_normal((4000, DIM)))
    ids = np.arange(4000, dtype=np.int64) * 2 + 1
    fp16 = faiss.IndexScalarQuantizer(
        DIM, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
    )
    fp16.add(vectors)
    path = tmp_path / "vectors.faiss"
    header = {"kind": "flat", "storage": "SQfp16", "dim": DIM, "n": 4000, "error": 3e-4}
    write_container(path, header, ids, np.ones(4000, bool), vectors, fp16)
    with pytest.raises(ValueError, match="re-index it"):
        ExactBackend.read(path)


def test_round_trip_keeps_scales_and_bound(tmp_path):
    rng = np.random.default_rng(3)
    backend = ExactBackend.build(np.arange(2000), unit(rng.standard_normal((2000, DIM))))
    path = tmp_path / "vectors.faiss"
    backend.write(path)
    loaded = ExactBackend.read(path)
    assert np.array_equal(loaded._codes.scales, backend._codes.scales)
    assert loaded.error == backend.error and loaded._codes.ntotal == 2000
    empty = tmp_path / "empty.faiss"
    ExactBackend.empty(DIM).write(empty)
    reopened = ExactBackend.read(empty)
    reopened.add(np.arange(5), unit(rng.standard_normal((5, DIM))))  # fits on first vectors
    assert len(reopened) == 5 and reopened.error > 0


@pytest.mark.parametrize(
    "change",
    [
        {"scales": [-1.0] * DIM},
        {"scales": [1.0] * (DIM - 1)},
        {"scales": ["nan"] * DIM},
        {"error": -1.0},
        {"error": None},
        {"storage": "PQ4"},
    ],
)
def test_a_tampered_header_is_refused(tmp_path, change):
    rng = np.random.default_rng(4)
    backend = ExactBackend.build(np.arange(500), unit(rng.standard_normal((500, DIM))))
    path = tmp_path / "vectors.faiss"
    backend.write(path)
    header, ids, live, mapped, index = read_container(path)
    vectors = np.array(mapped)  # a copy: the file is about to be rewritten under the map
    del mapped
    header.pop("trained")
    header.update(change)
    if change.get("error", 0) is None:
        header.pop("error")
    write_container(path, json.loads(json.dumps(header)), ids, live, vectors, index)
    with pytest.raises(ValueError):
        ExactBackend.read(path)
