"""How a process that answers queries runs them: one place for the CLI's search commands,
the UI and ``bench/search.py``'s default line, so the measured latency is the served one.

One text query is a chain of small steps (a batch-1 text tower, one index scan, a few SQL
rows). Torch's and FAISS's OpenMP pools and NumPy's BLAS pool each spin up their own threads;
two multi-threaded pools on two cores spin against each other and a query gets many times
slower, worst on a busy machine. So serving pins all three pools to one thread and, where
there are two cores, runs the exact scan in 2 parts on plain threads (which wait on a future
and never spin). Torch at 2 threads stays an option (``encode_threads``): it wins only while
a core is free. The measurements behind this are in docs/decisions.md (2026-11-23/24,
"Serving threads").

The encoder is not compiled by default: its text tower runs with pre-packed weights
(``encoders.runtime.packed``), within ~15% of a compiled one, while compiling costs tens of seconds
per process and query-length bucket, which a one-shot CLI query never earns back; a
long-running server may opt in with ``ServingConfig(compile=True)``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import faiss
import torch
from threadpoolctl import threadpool_limits

from indexer.vectors.exact import set_scan_threads

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingConfig:
    """Thread counts and encoder compilation of a query-serving process.

    ``threads`` is FAISS's OpenMP and NumPy's BLAS; ``encode_threads`` (torch intra-op, query
    encoding) and ``scan_threads`` (the exact kind's scan in parts on plain threads,
    ``indexer.vectors.exact.set_scan_threads``) default to it. Only one OpenMP pool may run
    multi-threaded at a time: two on two cores spin against each other."""

    threads: int = 1  # FAISS OpenMP and NumPy BLAS threads
    compile: bool = False  # Encoder(compile=True): faster queries after a one-off compile
    encode_threads: int | None = None  # torch intra-op threads; None: ``threads``
    scan_threads: int | None = None  # exact-scan parts searched at once; None: ``threads``

    @property
    def torch_threads(self) -> int:
        return self.threads if self.encode_threads is None else self.encode_threads

    @property
    def scan_parts(self) -> int:
        return self.threads if self.scan_threads is None else self.scan_threads

    def describe(self) -> str:
        encoder = "compiled" if self.compile else "eager"
        return (
            f"threads: torch {self.torch_threads}, exact scan {self.scan_parts}, "
            f"FAISS OpenMP and BLAS {self.threads}; encoder {encoder}"
        )


DEFAULT_SERVING = ServingConfig(scan_threads=min(2, os.cpu_count() or 1))


def configure_serving(config: ServingConfig = DEFAULT_SERVING) -> ServingConfig:
    """Apply ``config``'s thread counts to this process (call once, before the first query)."""
    # FAISS first: depending on import order, FAISS and torch can bind the same libgomp, whose
    # thread count is per calling thread, so the last call wins; torch's count must win.
    faiss.omp_set_num_threads(config.threads)
    torch.set_num_threads(config.torch_threads)
    set_scan_threads(config.scan_parts)
    threadpool_limits(config.threads, user_api="blas")  # process-wide until changed again
    log.debug("serving: %s", config.describe())
    return config
