"""How a process that answers queries runs them: one place for the CLI's search commands,
the UI and ``bench/search.py``'s default line, so the measured latency is the served one.

One text query is a chain of small steps (a batch-1 text tower, one index scan, a few SQL
rows), none of which gains from a second thread: the tower at batch 1 is bound by reading
its weights, the scan by memory, and with torch's and FAISS's OpenMP pools both at 2 threads
on 2 cores they spin against each other (query encoding measured ~10× slower). So serving
pins both to one thread. The encoder is not compiled by default: compiling costs tens of
seconds per process (and per query-length bucket), which a one-shot CLI query never earns
back; a long-running server may opt in with ``ServingConfig(compile=True)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import faiss
import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingConfig:
    """Thread counts and encoder compilation of a query-serving process."""

    threads: int = 1  # torch intra-op threads and FAISS OpenMP threads
    compile: bool = False  # Encoder(compile=True): faster queries after a one-off compile

    def describe(self) -> str:
        encoder = "compiled" if self.compile else "eager"
        return f"torch threads {self.threads}, FAISS threads {self.threads}, encoder {encoder}"


DEFAULT_SERVING = ServingConfig()


def configure_serving(config: ServingConfig = DEFAULT_SERVING) -> ServingConfig:
    """Apply ``config``'s thread counts to this process (call once, before the first query)."""
    torch.set_num_threads(config.threads)
    faiss.omp_set_num_threads(config.threads)
    log.debug("serving: %s", config.describe())
    return config
