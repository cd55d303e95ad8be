"""The HTTP API side of bench/load.py: N concurrent HTTP clients searching ``vitrieve serve``.

Each client is its own ``httpx.Client`` (its own keep-alive connection, as an integrator's
service would hold) and sends ``GET /v1/search`` with a new text each time (the server's
query cache never answers). The server is started on a free loopback port unless ``--api-url``
names a running one; ``--api-key`` is sent as ``Authorization: Bearer``.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from loadkit import LoadReport, run_threads, summarise

LIMIT = 24  # results per search, as the engine target asks for


@contextlib.contextmanager
def api_server(library_dir: Path, threads: int) -> Iterator[str]:
    """``vitrieve serve`` on a free loopback port (tests/api/apiserver.py)."""
    from apiserver import running_api  # tests/api and tests/reliability on PYTHONPATH (make bench)

    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with (
        tempfile.TemporaryDirectory() as logs,
        running_api([str(library_dir)], Path(logs) / "serve.log", env=env) as url,
    ):
        yield url


def api_load(url: str, clients: int, seconds: float, key: str | None = None) -> LoadReport:
    """N clients, each with its own connection, searching for ``seconds``."""
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    sessions = [httpx.Client(base_url=url, headers=headers, timeout=60) for _ in range(clients)]
    sessions[0].get("/v1/search", params={"q": "a warm-up query", "k": LIMIT}).raise_for_status()

    def search(client: int, text: str) -> None:
        response = sessions[client].get("/v1/search", params={"q": text, "k": LIMIT})
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:120]}")
        if not response.json()["results"]:
            raise RuntimeError(f"no results for {text!r}")

    try:
        elapsed, latencies, errors = run_threads(clients, seconds, search)
    finally:
        for session in sessions:
            session.close()
    return summarise("api", clients, elapsed, latencies, errors, {"url": url})
