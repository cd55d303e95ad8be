"""Load on loopback: N concurrent clients search for a fixed time; throughput, p50/p99, errors.

Three targets, measured separately:

* ``engine``: N threads share one ``Library.searcher`` (as the UI's sessions do) and issue text
  searches, each a new text (the query cache never answers), for ``--seconds``.
* ``ui``: a running ``vitrieve ui`` (started here unless ``--url``): N headless Chromium pages,
  each its own Streamlit session, type a query and wait until the script run finished and
  every thumbnail loaded; plus N plain HTTP clients on the health check and the page itself.
* ``api``: a running ``vitrieve serve`` (started here unless ``--api-url``): N HTTP clients,
  each on its own connection, ``GET /v1/search`` with a new text each time (bench/load_api.py).

Targets: zero errors, p99 under 5 × p50. Examples::

    python bench/load.py engine --library LIB --clients 4 --seconds 60
    python bench/load.py ui --library LIB --clients 3 --seconds 60
    python bench/load.py api --library LIB --clients 4 --seconds 60   # also runs engine
    python bench/load.py engine            # builds a small demo library (random-weight model)

``--threads`` sets torch's and FAISS's thread counts of the engine process (default 1, as a
serving process should: see docs/reliability.md "Load"). Figures on a shared machine measure
the neighbours' work too; report the machine's load with them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # load_browser.py, next to this file
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


def set_threads(threads: int) -> dict:
    """torch intra-op and FAISS OpenMP thread counts of this process (a serving setting)."""
    import faiss
    import torch

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    return {"torch_threads": torch.get_num_threads(), "faiss_threads": threads}


def engine_load(library_dir: Path, clients: int, seconds: float, threads: int = 1) -> LoadReport:
    """N threads searching one shared Searcher (what the UI's sessions do)."""
    from retrieval.library.handle import Library

    settings = set_threads(threads)
    with Library.open(library_dir) as library:
        searcher = library.searcher
        searcher.search("a warm-up query", limit=24)  # loads the model, calibrates once

        def search(_client: int, text: str) -> None:
            response = searcher.search(text, limit=24)
            if not response.results:
                raise RuntimeError(f"no results for {text!r}")

        elapsed, latencies, errors = run_threads(clients, seconds, search)
    return summarise("engine", clients, elapsed, latencies, errors,
                     {**settings, "images": library.count()})  # fmt: skip


# --- the UI over HTTP and in a browser ------------------------------------------------------


def http_load(url: str, clients: int, seconds: float) -> LoadReport:
    """Plain HTTP clients alternating the health check and the app's page."""
    paths = ("/_stcore/health", "/")

    def fetch(client: int, text: str) -> None:
        path = paths[hash(text) % 2]
        with urllib.request.urlopen(url + path, timeout=30) as response:
            if response.status != 200 or not response.read():
                raise RuntimeError(f"{path}: HTTP {response.status}")

    elapsed, latencies, errors = run_threads(clients, seconds, fetch)
    return summarise("ui-http", clients, elapsed, latencies, errors)


@contextlib.contextmanager
def ui_server(library_dir: Path, threads: int) -> Iterator[str]:
    """``vitrieve ui`` on a free loopback port (tests/reliability/uiserver.py)."""
    sys.path.insert(0, str(REPO / "tests" / "reliability"))
    from uiserver import running_ui

    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory() as logs, running_ui(library_dir, Path(logs), env=env) as url:
        yield url


def ui_load(url: str, clients: int, seconds: float, browsers: int | None = None) -> list:
    """HTTP clients, then browser sessions, each for ``seconds`` (one after the other)."""
    reports = [http_load(url, clients, seconds)]
    from load_browser import CHROMIUM, browser_load

    if CHROMIUM.exists():
        reports.append(browser_load(url, browsers or clients, seconds))
    return reports


# --- a library when none is given -----------------------------------------------------------


def demo_library(folder: Path, photos: int = 300) -> Path:
    """The demo's photos indexed with a random-weight tiny model (timing needs no training)."""
    from encoders.model.clip import create_model
    from encoders.model.config import load_config
    from encoders.runtime.encoder import Encoder
    from encoders.weights.checkpoint import save_checkpoint
    from indexer.pipeline.local import IndexOptions, index_library
    from retrieval.service.demo import write_demo_photos

    checkpoint = folder / "model"
    save_checkpoint(create_model(load_config("tiny")), checkpoint)
    write_demo_photos(folder / "photos", photos, size_px=96)
    report = index_library(folder / "photos", Encoder.load(checkpoint),
                           model_ref=str(checkpoint), options=IndexOptions(workers=0))  # fmt: skip
    return Path(report.library)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=["engine", "ui", "both", "api"])
    parser.add_argument("--library", type=Path, help="library dir (default: build a demo one)")
    parser.add_argument("--url", help="a running vitrieve ui (default: start one)")
    parser.add_argument("--api-url", help="a running vitrieve serve (default: start one)")
    parser.add_argument("--api-key", help="sent as Authorization: Bearer (api target)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--browsers", type=int, help="browser sessions (default: --clients)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=1, help="torch/FAISS threads (engine)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        library = args.library or demo_library(Path(scratch))
        reports = []
        if args.target in ("engine", "both", "api"):  # api: the engine's own figure beside it
            reports.append(engine_load(library, args.clients, args.seconds, args.threads))
        if args.target == "api":
            from load_api import api_load, api_server

            with contextlib.ExitStack() as stack:
                url = args.api_url or stack.enter_context(api_server(library, args.threads))
                reports.append(api_load(url, args.clients, args.seconds, args.api_key))
        if args.target in ("ui", "both"):
            with contextlib.ExitStack() as stack:
                url = args.url or stack.enter_context(ui_server(library, args.threads))
                reports += ui_load(url, args.clients, args.seconds, args.browsers)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    if args.json:
        print(json.dumps({"reports": [asdict(r) for r in reports], "loadavg_1m": load}, indent=2))
    else:
        for report in reports:
            print(report.line())
        print(f"machine load average (1 min) at the end: {load:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
