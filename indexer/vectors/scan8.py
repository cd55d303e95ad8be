"""The exact kind's first pass: one byte per dimension, scanned by FAISS's direct int8 kernel.

Stored vectors are scaled per dimension (``scales``), rounded to integers in −128..127 and kept
in an ``IndexScalarQuantizer`` of type ``QT_8bit_direct_signed`` — the fastest of FAISS's
scalar-quantizer kernels (docs/decisions.md). From 64 dimensions on, FAISS's SIMD kernel takes
the *query* as int8 too (it truncates and wraps a float query, as FAISS 1.15 does), so
``prepare`` hands it integers: the query divided by the scales, multiplied by a per-query
``factor`` that maps its largest component to 127, rounded. The kernel's integer inner products
are then exact, and ``score / factor`` is the scan score in the original units.

Two roundings separate that from the exact score ``q·x``, both bounded (Cauchy–Schwarz):
the vector's, ``‖q‖ · ‖x − codes/scales‖ ≤ ‖q‖ · error`` (``error``: the largest over every
vector added), and the query's, ``‖δ‖ · max‖codes‖`` with ``δ`` the query's own rounding in
code units. ``prepare`` returns their sum per query: what lets the exact kind certify its
re-scored top k. The scales come from the data (each dimension's largest magnitude, with
headroom); a vector beyond that range is clipped — still bounded, only looser — and
``needs_refit`` tells the owner when the bound has grown enough to re-fit the scales.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

log = logging.getLogger(__name__)

STORAGE = "SQ8direct"  # the header's name for this storage
HEADROOM = 1.25  # scales leave this much room above the largest magnitude seen when fitted
REFIT_GROWTH = 2.0  # re-fit once the error bound is this many times the one at fitting
_CHUNK = 65_536  # vectors coded at once (bounds temporary memory)
QUERY_PEAK = 127.0  # a prepared query's largest magnitude (int8, symmetric)
HUGE_PAGE = 1 << 21
MADV_HUGEPAGE, MADV_COLLAPSE = 14, 25  # Linux madvise(2) advice values


@dataclass(frozen=True)
class Prepared:
    """Queries as the kernel takes them, and how to read its scores."""

    ints: np.ndarray  # (nq, dim) float32 holding integers in −127..127
    factor: np.ndarray  # (nq, 1): kernel score / factor = scan score in original units
    bound: np.ndarray  # (nq,): |scan score − exact score| ≤ bound for every stored vector

    def scores(self, raw: np.ndarray, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        return (raw / self.factor[rows]).astype(np.float32)


class Int8Scan:
    """int8 codes of vectors at positions 0..n-1, and their certified error bound."""

    def __init__(self, dim: int, scales: np.ndarray | None = None, error: float = 0.0) -> None:
        self.dim = dim
        self.scales = None if scales is None else _checked_scales(scales, dim)
        self.error = error  # max ‖x − decode(x)‖ over every coded vector
        self.fitted_error = error  # the same bound over the vectors the scales were fitted on
        self.code_norm = 0.0  # max ‖codes‖ over every coded vector
        self._advised: tuple[int, int] | None = None  # (address, size) given huge-page advice
        self.index: Any = faiss.IndexScalarQuantizer(
            dim, faiss.ScalarQuantizer.QT_8bit_direct_signed, faiss.METRIC_INNER_PRODUCT
        )

    @classmethod
    def fitted(cls, vectors: np.ndarray) -> Int8Scan:
        """A scan whose scales suit ``vectors`` (which it then holds)."""
        if not len(vectors):
            return cls(vectors.shape[1])
        peak = np.zeros(vectors.shape[1], np.float32)
        for start in range(0, len(vectors), _CHUNK):
            chunk = np.abs(np.asarray(vectors[start : start + _CHUNK], dtype=np.float32))
            peak = np.maximum(peak, chunk.max(axis=0))
        scales = np.where(peak > 0, 127.0 / (HEADROOM * np.maximum(peak, 1e-30)), 1.0)
        scan = cls(vectors.shape[1], scales.astype(np.float32))
        scan.add(vectors)
        scan.fitted_error = scan.error
        return scan

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def prefer_huge_pages(self) -> None:
        """Ask Linux to back the codes with 2 MB pages (once per buffer; advice only).

        A scan reads every page of the codes; with 4 KB pages its page walks miss whenever
        other work ran in between — as query encoding always does (docs/decisions.md)."""
        codes = getattr(self.index, "codes", None)
        if sys.platform != "linux" or codes is None or not codes.size():
            return
        try:
            where = (int(codes.data()), int(codes.size()))
            if where == self._advised:
                return
            self._advised = where
            start = -(-where[0] // HUGE_PAGE) * HUGE_PAGE
            length = (where[0] + where[1]) // HUGE_PAGE * HUGE_PAGE - start
            if length > 0:
                libc = ctypes.CDLL(None, use_errno=True)
                for advice in (MADV_HUGEPAGE, MADV_COLLAPSE):  # COLLAPSE: Linux ≥ 6.1
                    libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(length), advice)
        except (OSError, AttributeError, TypeError, ValueError) as exc:
            log.debug("no huge-page advice for the int8 scan: %s", exc)

    def add(self, vectors: np.ndarray) -> None:
        """Code and append ``vectors`` (fitting the scales on them if there are none yet)."""
        if not len(vectors):
            return
        if self.scales is None:
            fitted = Int8Scan.fitted(vectors)
            self.scales, self.index = fitted.scales, fitted.index
            self.error = self.fitted_error = fitted.error
            self.code_norm = fitted.code_norm
            return
        for start in range(0, len(vectors), _CHUNK):
            chunk = np.ascontiguousarray(vectors[start : start + _CHUNK], dtype=np.float32)
            codes = np.clip(np.rint(chunk * self.scales), -128, 127).astype(np.float32)
            self.index.add(codes)  # integers: the kernel stores them exactly
            worst = np.linalg.norm(chunk - codes / self.scales, axis=1).max(initial=0.0)
            self.error = max(self.error, float(worst))
            self.code_norm = max(self.code_norm, float(np.linalg.norm(codes, axis=1).max()))

    def needs_refit(self) -> bool:
        """True when clipping has loosened the bound well past the fitted one."""
        return self.error > REFIT_GROWTH * max(self.fitted_error, 1e-6)

    def prepare(self, queries: np.ndarray) -> Prepared:
        """Integer queries for the kernel, their factors and their error bounds."""
        queries = np.asarray(queries, dtype=np.float64)
        scaled = queries if self.scales is None else queries / self.scales
        peak = np.abs(scaled).max(axis=1, keepdims=True, initial=0.0)
        factor = QUERY_PEAK / np.where(peak > 0, peak, QUERY_PEAK)  # 1 for an all-zero query
        ints = np.rint(scaled * factor)
        rounding = np.linalg.norm(scaled - ints / factor, axis=1) * self.code_norm
        bound = self.error * np.linalg.norm(queries, axis=1) + rounding
        return Prepared(np.ascontiguousarray(ints, dtype=np.float32), factor, bound)

    def search(self, queries: np.ndarray, k: int, params: Any = None) -> tuple[Any, Any, Any]:
        """Scan scores (original units), positions and the per-query bounds of the top k."""
        prepared = self.prepare(queries)
        raw, positions = self.index.search(prepared.ints, k, params=params)
        return prepared.scores(raw), positions, prepared.bound

    def range_search(self, query: np.ndarray, threshold: float, params: Any = None) -> Any:
        """Positions whose scan score is at least ``threshold`` minus the query's bound
        (a superset of those whose exact score is): FAISS's ``(lims, scores, positions)``."""
        prepared = self.prepare(query[None])
        lowered = (threshold - float(prepared.bound[0])) * float(prepared.factor[0, 0])
        return self.index.range_search(prepared.ints, lowered, params=params)

    def header(self) -> dict[str, Any]:
        scales = [] if self.scales is None else [float(s) for s in self.scales]
        return {"storage": STORAGE, "scales": scales, "error": self.error,
                "fitted_error": self.fitted_error, "code_norm": self.code_norm}  # fmt: skip

    @classmethod
    def from_header(cls, header: dict[str, Any], index: Any, dim: int) -> Int8Scan:
        """The scan saved with ``header()``; raises ValueError when it does not fit."""
        scales = np.asarray(header.get("scales") or [], dtype=np.float32)
        scan = cls(dim, scales if len(scales) else None, float(header.get("error", "nan")))
        scan.fitted_error = float(header.get("fitted_error", scan.error))
        scan.code_norm = float(header.get("code_norm", "nan"))
        if not all(np.isfinite(v) and v >= 0 for v in (scan.error, scan.code_norm)):
            raise ValueError("the scan's error bounds are not non-negative numbers")
        if index is not None:
            if index.d != dim or not _is_direct_int8(index):
                raise ValueError("the stored scan is not an int8 scan of this dimension")
            scan.index = index
        return scan


def _is_direct_int8(index: Any) -> bool:
    quantizer = getattr(index, "sq", None)
    return quantizer is not None and quantizer.qtype == faiss.ScalarQuantizer.QT_8bit_direct_signed


def _checked_scales(scales: np.ndarray, dim: int) -> np.ndarray:
    scales = np.asarray(scales, dtype=np.float32).reshape(-1)
    if len(scales) != dim or not np.all(np.isfinite(scales)) or not np.all(scales > 0):
        raise ValueError(f"scan scales must be {dim} finite positive numbers")
    return scales
