"""How a process that answers queries runs them: one place for the CLI's search commands,
the UI and ``bench/search.py``'s default line, so the measured latency is the served one.

One text query is a chain of small steps (a batch-1 text tower, one index scan, a few SQL
rows). With torch's and FAISS's OpenMP pools both at 2 threads on 2 cores they spin against
each other (query encoding measured ~10× slower). NumPy's OpenBLAS is a third pool: the
calibration's small products (a 4096×512 sample times the query, 21 results times 64 null
captions) took ~90 ms wall with its 2 threads on a busy machine against 0.5 ms with one.

Two threads with only one OpenMP pool active at a time (torch at 2 for the encoding, the
exact scan in 2 parts on plain threads, FAISS OpenMP and BLAS at 1) are an option
(``encode_threads``, ``scan_threads``), not the default: measured interleaved in
``bench/search.py --compare`` on the shared 2-core machine, they win while a core is free
(end to end 20.7 against 30.7 ms wall, load falling from 10 to 5) and lose badly once it
is not (288 and 621 against 45 and 42 ms wall in two runs at load 3–10: torch's second
OpenMP thread is descheduled, the first spins at the barrier, then spins on after the
encoding and takes the core from the scan); with ``OMP_WAIT_POLICY=PASSIVE`` set before
torch loads the collapse is gone but the gain is not steady (39.7 against 46.9 ms in one
run, 68.1 against 62.8 in another). The scan in 2 parts alone, against 1 part, wall:
24.9/30.7, 37.0/45.1, 49.2/42.2, 47.5/46.9, 66.5/62.8 ms: no collapse under load (it waits
on a future, it does not spin) and no CPU wasted (process CPU equal to one part's). So
serving pins all three OpenMP/BLAS pools to one thread and, where there are two cores,
scans in 2 parts: with the int8 scan on a quiet machine 18.7 against 20.9 ms end to end
(``bench/search.py --compare``, 2026-11-24).

The encoder is not compiled by default: its text tower runs with pre-packed weights
(``encoders.packed``), within ~15% of a compiled one, while compiling costs tens of seconds
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

from indexer.exact import set_scan_threads

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingConfig:
    """Thread counts and encoder compilation of a query-serving process.

    ``threads`` is FAISS's OpenMP and NumPy's BLAS; ``encode_threads`` (torch intra-op, query
    encoding) and ``scan_threads`` (the exact kind's scan in parts on plain threads,
    ``indexer.exact.set_scan_threads``) default to it. Only one OpenMP pool may run
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
