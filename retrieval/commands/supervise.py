"""A server child that stops with its launcher, taking everything it started with it.

``vitrieve ui`` runs Streamlit as a child. Left to itself, a child outlives a launcher stopped
with SIGTERM (what systemd, Docker and ``kill`` send), still holding its port; and a Streamlit
server that exits in the middle of an indexing job leaves that job's decoder processes and
their multiprocessing forkserver behind (they wait on their queues forever, ~0.4 GB and
~0.9 GB resident). So the child runs in a process group of its own, which its descendants
join: the launcher turns SIGTERM, SIGHUP and Ctrl-C into a clean stop of the child, then ends
whatever is left of the group, SIGKILL after a grace period. On Linux the child is also sent
SIGTERM when the launcher dies outright (SIGKILL), where nothing of the launcher runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

STOP_GRACE_S = 10.0  # for the child to stop cleanly, then for its group to end, before SIGKILL
KILL_WAIT_S = 5.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Terminated(Exception):
    """SIGTERM or SIGHUP reached the launcher (SIGINT is ``KeyboardInterrupt``)."""


def start_group(command: list[str]) -> subprocess.Popen:
    """Run ``command`` as the leader of a new process group (a terminal's Ctrl-C reaches the
    launcher only, which stops the group), with no stdin."""
    return subprocess.Popen(
        command, stdin=subprocess.DEVNULL, process_group=0, preexec_fn=_exit_with_launcher()
    )


def _exit_with_launcher() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when the launcher dies, even by
    SIGKILL; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    launcher = os.getpid()

    def in_child() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != launcher:  # the launcher died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return in_child


def stop_group(process: subprocess.Popen, grace: float = STOP_GRACE_S) -> None:
    """Stop ``process`` (a ``start_group`` leader) and every process of its group: SIGTERM to
    the leader (it stops cleanly), then to what is left of the group, SIGKILL to whatever is
    still there ``grace`` seconds later. Safe to call after the leader has exited."""
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
    for sig, patience in ((signal.SIGTERM, grace), (signal.SIGKILL, KILL_WAIT_S)):
        if not group_members(process.pid):
            break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        deadline = time.monotonic() + patience
        while group_members(process.pid) and time.monotonic() < deadline:
            process.poll()  # reap the leader once it is gone
            time.sleep(0.1)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(KILL_WAIT_S)


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid``, read from /proc; without
    /proc, ``[pgid]`` while the group can still be signalled."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for stat in proc.glob("[0-9]*/stat"):
        try:  # "pid (name) state ppid pgrp …": the name may hold spaces and parentheses
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 2 and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """While inside: SIGTERM and SIGHUP raise ``Terminated``, SIGINT ``KeyboardInterrupt``,
    once (then they are ignored until the caller has stopped its child); the previous handlers
    come back on leaving. Only the main thread receives signals: elsewhere, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: object) -> None:
        ignore_stop_signals()
        raise KeyboardInterrupt if signum == signal.SIGINT else Terminated(signum)

    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def ignore_stop_signals() -> None:
    """Ignore further stop signals (while the child is being stopped)."""
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
