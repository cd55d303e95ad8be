"""What the load benchmarks share: the report of one run, the query texts, the client threads.

bench/load.py (engine and UI), bench/load_api.py (HTTP API) and bench/load_browser.py (browser
sessions) all import it; it imports none of them.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
COLOURS = ("red", "blue", "green", "yellow", "purple", "orange", "white", "black", "pink")
THINGS = ("circle", "square", "triangle", "star", "ring", "cross", "shape", "box", "dot")
PLACES = ("", "on the left", "on the right", "at the top", "in the middle", "on grass",
          "on a beach", "in the snow", "at night", "indoors")  # fmt: skip


@dataclass
class LoadReport:
    """What one load run measured (latencies in milliseconds)."""

    target: str
    clients: int
    seconds: float
    requests: int = 0
    errors: int = 0
    throughput_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    p99_over_p50: float = 0.0
    error_samples: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    def line(self) -> str:
        return (f"{self.target}: {self.clients} clients × {self.seconds:.0f} s → "
                f"{self.requests} requests ({self.throughput_per_s:.1f}/s), errors {self.errors}, "
                f"p50 {self.p50_ms:.0f} ms, p99 {self.p99_ms:.0f} ms "
                f"(p99/p50 {self.p99_over_p50:.1f}), max {self.max_ms:.0f} ms")  # fmt: skip


def summarise(target: str, clients: int, elapsed: float, latencies: list[float],
              errors: list[str], settings: dict | None = None) -> LoadReport:  # fmt: skip
    """A report from per-request latencies (seconds) and error messages."""
    ms = np.asarray(latencies, np.float64) * 1000
    p50, p99 = np.percentile(ms, [50, 99]) if len(ms) else (0.0, 0.0)
    return LoadReport(
        target=target, clients=clients, seconds=round(elapsed, 1),
        requests=len(ms) + len(errors), errors=len(errors),
        throughput_per_s=round(len(ms) / elapsed, 2) if elapsed else 0.0,
        p50_ms=round(float(p50), 1), p99_ms=round(float(p99), 1),
        max_ms=round(float(ms.max()), 1) if len(ms) else 0.0,
        p99_over_p50=round(float(p99 / p50), 2) if p50 else 0.0,
        error_samples=sorted(set(errors))[:5], settings=settings or {},
    )  # fmt: skip


def queries(seed: int) -> Iterator[str]:
    """Endless distinct-looking search texts (810 combinations, then numbered variants)."""
    rng = random.Random(seed)
    for round_ in range(1_000_000):
        text = f"a {rng.choice(COLOURS)} {rng.choice(THINGS)} {rng.choice(PLACES)}".strip()
        yield text if round_ < 500 else f"{text} {round_}"


def run_threads(clients: int, seconds: float, request: Callable[[int, str], None]) -> tuple:
    """``clients`` threads call ``request(client, text)`` until ``seconds`` pass."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(number: int) -> None:
        texts = queries(number)
        start.wait()
        while time.monotonic() < stop_at[0]:
            text = next(texts)
            began = time.perf_counter()
            try:
                request(number, text)
                took, failure = time.perf_counter() - began, None
            except Exception as exc:  # a load test counts every failure, whatever it is
                took, failure = 0.0, f"{type(exc).__name__}: {exc}"[:200]
            with lock:
                (errors.append(failure) if failure else latencies.append(took))

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.monotonic() + seconds
    began = time.monotonic()
    start.wait()
    for thread in threads:
        thread.join(seconds + 120)
    return time.monotonic() - began, latencies, errors


# --- the engine ---------------------------------------------------------------------------
