"""A real ``vitrieve serve`` process on a free loopback port, for the API tests (and
bench/load.py): started in its own process group, stopped (TERM, then KILL) afterwards with
the UI tests' helper (tests/reliability/uiserver.py)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from uiserver import _stop as stop  # one way to stop a server's process group
from uiserver import free_port

__all__ = ["VITRIEVE", "free_port", "running_api", "stop"]
VITRIEVE = Path(sys.executable).with_name("vitrieve")
READY_S = 180


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def running_api(libraries: list[str], log_path: Path, extra: list[str] | None = None,
                env: dict | None = None) -> Iterator[str]:  # fmt: skip
    """``vitrieve serve --library ... --port P``; yields ``http://127.0.0.1:P``."""
    port = free_port()
    command = [str(VITRIEVE), "serve", "--port", str(port), *(extra or [])]
    for library in libraries:
        command += ["--library", library]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            started = time.monotonic()
            while not _healthy(url):
                if process.poll() is not None or time.monotonic() - started > READY_S:
                    raise RuntimeError(f"vitrieve serve did not come up:\n{log_path.read_text()}")
                time.sleep(0.3)
            yield url
        finally:
            stop(process)
