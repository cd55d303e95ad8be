"""Cosine products of many stored vectors on a device, a chunk of rows at a time.

Batch work over a whole library (labelling every image, finding every near-duplicate pair) is
a matrix product of the stored vectors with a few label vectors or with themselves. On a CUDA
device that product is a fraction of a second for a million vectors, so both run here: the
keys are copied to the device once, the queries a chunk at a time sized so one chunk's result
fits ``chunk_bytes``. The same code runs on CPU tensors (and is tested there). Products are
float32 throughout, so scores agree with FAISS's flat inner product to float rounding.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

CHUNK_BYTES = 512 << 20  # one chunk's (rows × keys) float32 result on the device


def chunk_rows(keys: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Query rows per chunk so that a (rows, keys) float32 result fits ``chunk_bytes``."""
    return max(chunk_bytes // (4 * max(keys, 1)), 1)


def on_device(vectors: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """(N, D) vectors as a contiguous float32 tensor on ``device``."""
    tensor = torch.as_tensor(np.ascontiguousarray(vectors, dtype=np.float32))
    return tensor.to(device)


def product_chunks(
    queries: np.ndarray,
    keys: torch.Tensor,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[tuple[int, torch.Tensor]]:
    """``(start, queries[start:start + r] @ keys.T)`` chunk by chunk, on ``keys``' device."""
    rows = chunk_rows(keys.shape[0], chunk_bytes)
    for start in range(0, len(queries), rows):
        chunk = on_device(queries[start : start + rows], keys.device)
        yield start, chunk @ keys.T


def similarity_matrix(
    queries: np.ndarray, keys: torch.Tensor, chunk_bytes: int = CHUNK_BYTES
) -> np.ndarray:
    """The whole (N, K) float32 product, on the host (for a small number of keys)."""
    if len(queries) == 0:
        return np.zeros((0, keys.shape[0]), np.float32)
    chunks = [scores.cpu() for _, scores in product_chunks(queries, keys, chunk_bytes)]
    return torch.cat(chunks).numpy()


def pairs_above(
    vectors: np.ndarray, threshold: float, device: torch.device, chunk_bytes: int = CHUNK_BYTES
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every row pair ``(i, j, similarity)`` with i < j and similarity ≥ ``threshold``."""
    keys = on_device(vectors, device)
    firsts, seconds, sims = [], [], []
    for start, scores in product_chunks(vectors, keys, chunk_bytes):
        rows, cols = torch.nonzero(scores >= threshold, as_tuple=True)
        rows_global = rows + start
        keep = cols > rows_global  # each pair once, and not a vector with itself
        firsts.append(rows_global[keep].cpu())
        seconds.append(cols[keep].cpu())
        sims.append(scores[rows[keep], cols[keep]].cpu())
    if not firsts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return (
        torch.cat(firsts).numpy().astype(np.int64),
        torch.cat(seconds).numpy().astype(np.int64),
        torch.cat(sims).numpy().astype(np.float32),
    )
