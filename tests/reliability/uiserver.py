"""A real ``vitrieve ui`` process on a free loopback port, for the HTTP-level reliability tests
(security endpoints, load). Also used by bench/load.py."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

VITRIEVE = Path(sys.executable).with_name("vitrieve")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def running_ui(
    library: Path, log_dir: Path, extra: list[str] | None = None, env: dict | None = None
) -> Iterator[str]:
    """Start ``vitrieve ui --library LIB`` in its own process group; yield its base URL."""
    port = free_port()
    log_path = log_dir / f"ui-{port}.log"
    command = [str(VITRIEVE), "ui", "--library", str(library), "--port", str(port), *(extra or [])]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=log_dir,
            start_new_session=True, env={**os.environ, **(env or {})},
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            started = time.monotonic()
            while not _healthy(url):
                if process.poll() is not None or time.monotonic() - started > 120:
                    raise RuntimeError(f"vitrieve ui did not come up:\n{log_path.read_text()}")
                time.sleep(0.5)
            yield url
        finally:
            _stop(process)


def _stop(process: subprocess.Popen) -> None:
    for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue
