"""How a process that answers queries runs them: one place for the CLI's search commands,
the UI and ``bench/search.py``'s default line, so the measured latency is the served one.

One text query is a chain of small steps (a batch-1 text tower, one index scan, a few SQL
rows), none of which gains from a second thread: the tower at batch 1 is bound by reading
its weights, the scan by memory, and with torch's and FAISS's OpenMP pools both at 2 threads
on 2 cores they spin against each other (query encoding measured ~10× slower). NumPy's
OpenBLAS is a third pool: the calibration's small products (a 4096×512 sample times the
query, 21 results times 64 null captions) took ~90 ms wall with its 2 threads on a busy
machine against 0.5 ms with one. So serving pins all three to one thread.

The encoder is not compiled by default: its text tower runs with pre-packed weights
(``encoders.packed``), within ~15% of a compiled one, while compiling costs tens of seconds
per process and query-length bucket, which a one-shot CLI query never earns back; a
long-running server may opt in with ``ServingConfig(compile=True)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import faiss
import torch
from threadpoolctl import threadpool_limits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingConfig:
    """Thread counts and encoder compilation of a query-serving process."""

    threads: int = 1  # torch intra-op, FAISS OpenMP and NumPy BLAS threads
    compile: bool = False  # Encoder(compile=True): faster queries after a one-off compile

    def describe(self) -> str:
        encoder = "compiled" if self.compile else "eager"
        threads = self.threads
        return f"threads {threads} (torch, FAISS, BLAS), encoder {encoder}"


DEFAULT_SERVING = ServingConfig()


def configure_serving(config: ServingConfig = DEFAULT_SERVING) -> ServingConfig:
    """Apply ``config``'s thread counts to this process (call once, before the first query)."""
    torch.set_num_threads(config.threads)
    faiss.omp_set_num_threads(config.threads)
    threadpool_limits(config.threads, user_api="blas")  # process-wide until changed again
    log.debug("serving: %s", config.describe())
    return config
