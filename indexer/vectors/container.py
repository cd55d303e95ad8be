"""Input checks and the file format of the approximate kinds (vectors + FAISS in one file).

Layout: ``MAGIC``, header length (u64), JSON header, padding to 64 bytes, ids (int64 × n),
live flags (uint8 × n), padding, vectors (float32 × n × dim), then the FAISS index as FAISS
writes it. One file, so ``os.replace`` swaps everything at once; the vectors are read back as
a copy-on-write memory map, so opening a 2 GB index costs milliseconds.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, BinaryIO

import faiss
import numpy as np

MAGIC = b"VTRVANN1"
_ALIGN = 64  # bytes: the arrays start aligned, so the vectors can be memory-mapped
_LENGTH = struct.Struct("<Q")  # the JSON header's length in bytes
_WRITE_ROWS = 65_536  # vectors written per chunk: no second copy of a 2 GB array in RAM


def as_ids(ids: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))


def as_vectors(vectors: Any, dim: int, check_norm: bool = False) -> np.ndarray:
    """(n, dim) C-contiguous float32; a single vector becomes one row."""
    array = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != dim:
        raise ValueError(f"expected vectors of shape (n, {dim}), got {array.shape}")
    if check_norm and len(array):
        norms = np.linalg.norm(array, axis=1)
        if not np.all(np.abs(norms - 1.0) < 1e-2):
            raise ValueError("vectors must be finite and L2-normalised")
    return array


def split_range_result(lims: np.ndarray, scores: np.ndarray, ids: np.ndarray) -> list:
    """FAISS range-search arrays → per query ``(ids, scores)``, best first."""
    out = []
    for start, end in zip(lims[:-1], lims[1:], strict=True):
        order = np.argsort(-scores[start:end], kind="stable")
        out.append((ids[start:end][order].astype(np.int64), scores[start:end][order]))
    return out


def gpu_available() -> bool:
    """True when faiss-gpu is installed and sees a GPU (never raises on CPU-only builds)."""
    try:
        return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    except Exception:  # a broken CUDA runtime must not break CPU search
        return False


def _aligned(offset: int) -> int:
    return -(-offset // _ALIGN) * _ALIGN


def write_container(
    path: Path,
    header: dict[str, Any],
    ids: np.ndarray,
    live: np.ndarray,
    vectors: np.ndarray,
    index: Any,
) -> None:
    """Write the container (no fsync: the caller's atomic save does that)."""
    n = len(ids)
    blob = json.dumps({**header, "trained": index is not None}).encode()
    with path.open("wb") as handle:
        handle.write(MAGIC + _LENGTH.pack(len(blob)) + blob)
        handle.write(b"\0" * (_aligned(handle.tell()) - handle.tell()))
        handle.write(np.ascontiguousarray(ids, dtype=np.int64).tobytes())
        handle.write(np.asarray(live, dtype=np.uint8).tobytes())
        handle.write(b"\0" * (_aligned(handle.tell()) - handle.tell()))
        for chunk in range(0, n, _WRITE_ROWS):
            rows = vectors[chunk : chunk + _WRITE_ROWS]
            handle.write(np.ascontiguousarray(rows, dtype=np.float32))
        if index is not None:
            faiss.write_index(index, faiss.PyCallbackIOWriter(handle.write))
        handle.flush()


def read_header(handle: BinaryIO) -> dict[str, Any]:
    """The JSON header of an open container; leaves the handle just after it."""
    handle.seek(len(MAGIC))
    (length,) = _LENGTH.unpack(handle.read(_LENGTH.size))
    return json.loads(handle.read(length))


def read_container(path: Path) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray, Any]:
    """``(header, ids, live, vectors, faiss index or None)``; vectors memory-mapped."""
    with path.open("rb") as handle:
        header = read_header(handle)
        n, dim = header["n"], header["dim"]
        handle.seek(_aligned(handle.tell()))
        ids = np.fromfile(handle, np.int64, n)
        live = np.fromfile(handle, np.uint8, n).astype(bool)
        offset = _aligned(handle.tell())
        vectors = (
            np.memmap(path, np.float32, "c", offset, (n, dim))
            if n
            else np.empty((0, dim), np.float32)
        )
        index = None
        if header["trained"]:
            handle.seek(offset + vectors.nbytes)
            index = faiss.read_index(faiss.PyCallbackIOReader(handle.read))
    return header, ids, live, vectors, index
