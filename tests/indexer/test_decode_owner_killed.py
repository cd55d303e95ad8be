"""Decoder workers end with the process that owns their pool, however it dies: a SIGKILLed
``vitrieve index`` used to leave a forkserver and its workers (~0.9 GB each) behind forever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

OWNER = """
import os, sys, time
import numpy
from indexer.decode.workers import DecodePool, DecodeSettings
pool = DecodePool(DecodeSettings(transform=numpy.asarray, target_size=32), workers=2)
pool.warm_up()
pool._wait_warm()
print(os.getpid(), flush=True)
time.sleep(600)
"""


def _descendants(root: int) -> set[int]:
    """Every live process whose ancestry (through /proc) reaches ``root``, or that was
    reparented away from it: matched by the forkserver command line of this session."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if "multiprocessing" in command and f"VITRIEVE_OWNER_TEST={root}".encode() in environ:
            found.add(int(entry.name))
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_workers_end_when_their_owner_is_killed(tmp_path):
    marker = str(os.getpid())
    env = {**os.environ, "VITRIEVE_OWNER_TEST": marker}
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True,
                             env=env, cwd=tmp_path)  # fmt: skip
    try:
        line = owner.stdout.readline()
        assert line.strip().isdigit(), "the owner did not start its pool"
        helpers = _descendants(int(marker))
        assert len(helpers) >= 3  # the forkserver and two workers (and the resource tracker)
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(10)
        deadline = time.monotonic() + 30
        while _descendants(int(marker)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _descendants(int(marker)) == set(), "workers outlived their killed owner"
    finally:
        if owner.poll() is None:
            owner.kill()
        for pid in _descendants(int(marker)):
            os.kill(pid, signal.SIGKILL)
