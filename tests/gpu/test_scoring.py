"""Chunked device products for batch work: equal to FAISS's flat inner product, on the CPU
here and (`gpu`-marked) on CUDA."""

from __future__ import annotations

import copy

import faiss
import numpy as np
import pytest
import torch

from indexer.vectors.index import VectorIndex
from retrieval.search.duplicates import duplicate_pairs
from retrieval.search.scoring import chunk_rows, on_device, pairs_above, similarity_matrix

THRESHOLD = 0.9


def _vectors(n: int = 300, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Random unit vectors with planted near-copies (pairs and a chain of three)."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    for source, twin in [(0, 7), (3, 150), (150, 299), (42, 43)] if n >= 300 else []:
        vectors[twin] = vectors[source] + rng.normal(0, 0.05, dim)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _faiss_pairs(vectors: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    limits, _, labels = index.range_search(vectors, threshold)
    return {
        (i, int(j)) for i in range(len(vectors)) for j in labels[limits[i] : limits[i + 1]] if j > i
    }


def _pairs(first: np.ndarray, second: np.ndarray) -> set[tuple[int, int]]:
    return set(zip(first.tolist(), second.tolist(), strict=True))


def test_chunk_rows_fit_the_budget() -> None:
    assert chunk_rows(1000, 4000 * 10) == 10
    assert chunk_rows(10**9, 1024) == 1  # never zero rows


@pytest.mark.parametrize("chunk_bytes", [4 * 300 * 7, 1 << 30])  # 7 rows a chunk; one chunk
def test_pairs_above_equal_faiss_range_search(chunk_bytes: int) -> None:
    vectors = _vectors()
    first, second, sims = pairs_above(vectors, THRESHOLD, torch.device("cpu"), chunk_bytes)
    assert _pairs(first, second) == _faiss_pairs(vectors, THRESHOLD)
    assert {(0, 7), (3, 150), (150, 299), (42, 43)} <= _pairs(first, second)
    np.testing.assert_allclose(sims, (vectors[first] * vectors[second]).sum(1), atol=1e-5)
    assert first.dtype == second.dtype == np.int64 and sims.dtype == np.float32


def test_similarity_matrix_is_the_product_in_chunks() -> None:
    queries, keys = _vectors(50, seed=1), _vectors(9, seed=2)
    got = similarity_matrix(queries, on_device(keys, torch.device("cpu")), chunk_bytes=4 * 9 * 4)
    np.testing.assert_allclose(got, queries @ keys.T, atol=1e-6)
    empty = similarity_matrix(queries[:0], on_device(keys, torch.device("cpu")))
    assert empty.shape == (0, 9)


def test_duplicate_pairs_by_device_products_equal_the_faiss_ones() -> None:
    vectors = _vectors()
    index = VectorIndex.create(vectors.shape[1], "flat")
    ids = np.arange(1000, 1000 + len(vectors), dtype=np.int64)[::-1].copy()  # unsorted ids
    index.add(ids, vectors)
    by_faiss = duplicate_pairs(index, THRESHOLD)
    by_device = duplicate_pairs(index, THRESHOLD, device=torch.device("cpu"))
    assert _pairs(*by_device[:2]) == _pairs(*by_faiss[:2]) and len(by_faiss[0]) >= 4
    assert (by_device[0] < by_device[1]).all()


@pytest.mark.gpu
def test_pairs_above_on_cuda_equal_the_cpu() -> None:
    vectors = _vectors(3000, 64)
    cpu = pairs_above(vectors, THRESHOLD, torch.device("cpu"))
    cuda = pairs_above(vectors, THRESHOLD, torch.device("cuda"), chunk_bytes=4 * 3000 * 100)
    assert _pairs(*cuda[:2]) == _pairs(*cpu[:2]) == _faiss_pairs(vectors, THRESHOLD)


@pytest.mark.gpu
def test_zero_shot_on_a_cuda_encoder_matches_the_cpu() -> None:
    from encoders.model.clip import create_model
    from encoders.model.config import load_config
    from encoders.runtime.encoder import Encoder
    from retrieval.labels.zeroshot import ZeroShotClassifier

    torch.manual_seed(0)
    model = create_model(load_config("tiny"))
    labels = ["cat", "dog", "invoice"]
    cpu_model = copy.deepcopy(model)  # an Encoder moves its model to its device
    on_cpu = ZeroShotClassifier(Encoder(cpu_model, precision="fp32", device="cpu"), labels)
    on_cuda = ZeroShotClassifier(Encoder(model, precision="fp32", device="cuda"), labels)
    assert on_cuda._targets.device.type == "cuda"
    vectors = _vectors(50, on_cpu.label_vectors.shape[1], seed=3)
    np.testing.assert_allclose(
        on_cuda.probabilities(vectors), on_cpu.probabilities(vectors), atol=1e-4
    )
    cpu, cuda = on_cpu.classify_vectors(vectors), on_cuda.classify_vectors(vectors)
    assert [v.label for v in cuda] == [v.label for v in cpu]
