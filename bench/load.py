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
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from loadkit import LoadReport, run_threads, summarise


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
    from uiserver import running_ui  # tests/reliability: on PYTHONPATH (make bench sets it)

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
