"""``vitrieve ui`` stops cleanly: SIGTERM (systemd, Docker, ``kill``), SIGINT (Ctrl-C) and even
SIGKILL to the launcher leave no Streamlit server holding the port, and stopping the server's
process group ends what a server that dies mid-job leaves behind (an indexing job's decoder
processes and their multiprocessing forkserver: retrieval/commands/supervise.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from uiserver import VITRIEVE, _healthy, free_port

from retrieval.commands.supervise import KILL_WAIT_S, group_members, start_group, stop_group

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc"),
]


def _stat(pid: int) -> list[str] | None:
    """State, ppid, pgrp, … of a live (not zombie) process; None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, grandchildren, …)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat(int(stat.parent.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _gone(pids: set[int], timeout: float) -> set[int]:
    """The pids still alive after up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = {pid for pid in pids if _stat(pid) is not None}
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def _port_free(port: int) -> bool:
    """Whether a restarted server could listen on ``port`` (SO_REUSEADDR, as Streamlit's:
    connections of the old one may linger in TIME_WAIT; a listener may not)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130), (signal.SIGKILL, -9)]
)
def test_ui_stops_with_its_launcher(
    sig: signal.Signals, code: int, demo_library: Path, tmp_path: Path
) -> None:
    """The signal goes to the launcher only (as systemd's or kill's would), not its group."""
    port = free_port()
    log = tmp_path / "ui.log"
    with log.open("w") as out:
        launcher = subprocess.Popen(
            [str(VITRIEVE), "ui", "--library", str(demo_library), "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    tree: set[int] = set()
    try:
        started = time.monotonic()
        while not _healthy(url):
            assert launcher.poll() is None, log.read_text()
            assert time.monotonic() - started < 120, log.read_text()
            time.sleep(0.5)
        tree = _descendants(launcher.pid)
        assert tree, "no Streamlit child found"
        launcher.send_signal(sig)
        assert launcher.wait(timeout=60) == code, log.read_text()
        assert not _gone(tree, timeout=30), f"left running after {sig.name}: {log.read_text()}"
        assert _port_free(port)
    finally:
        for pid in [launcher.pid, *tree, *_descendants(launcher.pid)]:  # a failed run's
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


MID_JOB = """
import os, signal, sys
from indexer.decode.decoded import DecodeSettings
from indexer.decode.workers import DecodePool

if __name__ == "__main__":
    pool = DecodePool(DecodeSettings(None, 32), workers=2)
    pool.warm_up()
    pool._wait_warm()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # dies mid-job, pool left open
    print("ready", flush=True)
    signal.pause()
"""


def test_stopping_a_server_ends_the_decoders_it_leaves(tmp_path: Path) -> None:
    """A server that exits with a decode pool open leaves a forkserver and its workers (they
    outlive it: what the issue found orphaned); stopping its group ends them too."""
    script = tmp_path / "mid_job.py"
    script.write_text(MID_JOB)
    process = start_group([sys.executable, str(script)])
    try:
        deadline = time.monotonic() + 180
        while len(group_members(process.pid)) < 4:  # server, forkserver, two workers
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        members = set(group_members(process.pid))
        stop_group(process, grace=2.0)
        assert process.returncode is not None
        assert not _gone(members, timeout=KILL_WAIT_S), "decoder processes outlived the stop"
        assert group_members(process.pid) == []
    finally:
        for pid in group_members(process.pid):
            os.kill(pid, signal.SIGKILL)
