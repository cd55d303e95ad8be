"""Decoding in worker processes, with a per-file time limit and survival of decoder crashes.

Each worker handles one file at a time (``decoded.decode_file``) and announces it when it
starts, so the parent knows which file a hung or crashed worker was holding: a file that runs
past the time limit has its worker killed and is recorded as failed; the other files in flight
are resubmitted to a fresh pool. A file present when a worker died twice is recorded as
crashing the decoder.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from indexer.decode.decoded import Decoded, DecodeSettings, decode_file

__all__ = [
    "DEFAULT_TIMEOUT",
    "DecodePool",
    "DecodeSettings",
    "Decoded",
    "decode_file",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0  # seconds for one file: generous for a 100 MP TIFF on a slow disk
MAX_CRASHES = 2
WORKER_NICENESS = 10


# --- worker side -------------------------------------------------------------------------

_settings: DecodeSettings | None = None
_started: Any = None


def _init_worker(settings: DecodeSettings, started: Any) -> None:
    global _settings, _started
    import torch

    torch.set_num_threads(1)  # the parent's model uses the cores; one decode per worker
    # Below the model's priority: a preempted thread stalls a whole parallel matmul, while a
    # decoder only needs to stay a batch ahead; decoders take whatever CPU the model leaves
    # (for a 6 MP JPEG decoding costs about as much CPU as ViT-B-32 encoding: bench/index.py).
    os.nice(WORKER_NICENESS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _settings, _started = settings, started
    _exit_with_owner()


def _exit_with_owner() -> None:
    """End this worker when the process that owns the pool dies, however it died.

    A worker waits on its call queue, whose write end it holds itself (the queue is pickled
    whole into it), and it holds the forkserver's "alive" pipe: when the owner is killed
    (SIGKILL of ``vitrieve index``, a UI server killed during an indexing job) neither ever
    sees end-of-file, and the workers and the forkserver (~0.9 GB) stay forever. The owner's
    sentinel (``multiprocessing.parent_process()``) does close when it dies."""
    owner = multiprocessing.parent_process()
    if owner is None:
        return

    def watch() -> None:
        owner.join()  # returns when the owner is gone
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-owner", daemon=True).start()


def _work(file_id: int, path: str) -> Decoded:
    _started.put((file_id, os.getpid(), time.monotonic()))
    assert _settings is not None
    before = time.process_time()  # includes sending the previous results back (pickling)
    decoded = decode_file(file_id, Path(path), _settings)
    decoded.worker = (os.getpid(), before)
    return decoded


# --- parent side -------------------------------------------------------------------------


class DecodePool:
    """Decode ``(id, path)`` items in ``workers`` processes; results arrive as they finish."""

    def __init__(
        self,
        settings: DecodeSettings,
        workers: int,
        timeout: float = DEFAULT_TIMEOUT,
        window: int = 64,
    ) -> None:
        self.settings, self.workers, self.timeout = settings, workers, timeout
        self.window = max(window, 2 * workers)
        self._context = multiprocessing.get_context("forkserver")
        # workers fork from a server that has imported torch once, so restarts are cheap
        self._context.set_forkserver_preload(
            ["torch", "torchvision.transforms", "indexer.decode.workers"]
        )
        self._executor: ProcessPoolExecutor | None = None
        self._started: Any = None
        self._crashes: dict[int, int] = {}
        self._warming: threading.Thread | None = None

    def _start(self) -> ProcessPoolExecutor:
        self._started = self._context.SimpleQueue()  # unbuffered: a killed worker's last word
        # still arrives (a Queue's feeder thread would die with it)
        self._executor = ProcessPoolExecutor(
            self.workers,
            mp_context=self._context,
            initializer=_init_worker,
            initargs=(self.settings, self._started),
        )
        return self._executor

    def warm_up(self) -> None:
        """Start the workers in the background now (they import torch: seconds) while the
        caller does other work; ``imap_unordered`` waits for them."""
        if self.workers > 0 and self._executor is None and self._warming is None:
            self._warming = threading.Thread(target=self._start_and_ping, daemon=True)
            self._warming.start()

    def _start_and_ping(self) -> None:
        executor = self._start()
        for _ in range(self.workers):
            executor.submit(os.getpid)

    def _wait_warm(self) -> None:
        if self._warming is not None:
            self._warming.join()
            self._warming = None

    def close(self, kill: bool = False) -> None:
        """Stop the workers; ``kill`` when one of them may be stuck in a decoder."""
        self._wait_warm()
        if self._executor is not None:
            if kill:
                self._kill_workers()
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.close(kill=exc_type is not None)  # interrupted: a worker may be stuck

    def imap_unordered(self, items: Iterable[tuple[int, Path]]) -> Iterator[Decoded]:
        """Yield one ``Decoded`` per item, in completion order."""
        if self.workers <= 0:
            for file_id, path in items:
                yield decode_file(file_id, Path(path), self.settings)
            return
        self._wait_warm()
        todo = iter(items)
        retry: list[tuple[int, Path]] = []
        inflight: dict[Future, tuple[int, Path]] = {}
        running: dict[int, tuple[int, float]] = {}  # file id → (worker pid, start)
        executor = self._executor or self._start()
        while True:
            # after a crash the suspects run one at a time, so the guilty file is the only one
            # present at its second crash
            isolate = any(i in self._crashes for i, _ in retry) or any(
                i in self._crashes for i, _ in inflight.values()
            )
            while len(inflight) < (1 if isolate else self.window):
                item = retry.pop() if retry else next(todo, None)
                if item is None:
                    break
                inflight[executor.submit(_work, item[0], str(item[1]))] = item
            if not inflight:
                return
            done, _ = wait(inflight, timeout=min(1.0, self.timeout), return_when=FIRST_COMPLETED)
            self._drain_started(running)
            broken = False
            for future in done:
                item = inflight.pop(future)
                try:
                    decoded = future.result()
                except BrokenProcessPool:  # still "running": a suspect if it had started
                    broken = True
                    retry.append(item)
                    continue
                running.pop(item[0], None)
                yield decoded
            hung = self._hung(running)
            if hung or broken:
                yield from self._recover(hung, running, inflight, retry)
                inflight.clear()
                running.clear()
                executor = self._start()

    def _drain_started(self, running: dict[int, tuple[int, float]]) -> None:
        try:
            while not self._started.empty():
                file_id, pid, start = self._started.get()
                running[file_id] = (pid, start)
        except (OSError, EOFError):
            return

    def _hung(self, running: dict[int, tuple[int, float]]) -> list[int]:
        now = time.monotonic()
        return [i for i, (_pid, start) in running.items() if now - start > self.timeout]

    def _recover(
        self,
        hung: list[int],
        running: dict[int, tuple[int, float]],
        inflight: dict[Future, tuple[int, Path]],
        retry: list[tuple[int, Path]],
    ) -> Iterator[Decoded]:
        """Kill the pool; fail hung (and repeatedly crashing) files, resubmit the others."""
        log.warning("decoder pool restarted (hung files: %s)", hung)
        self._drain_started(running)
        self.close(kill=True)
        for file_id in hung:
            yield Decoded(file_id, error=f"decoding took longer than {self.timeout:g} s")
        suspects = set(running) - set(hung)
        survivors = []
        for item in dict.fromkeys([*inflight.values(), *retry]):
            file_id = item[0]
            if file_id in hung:
                continue
            if file_id in suspects:
                self._crashes[file_id] = self._crashes.get(file_id, 0) + 1
            if self._crashes.get(file_id, 0) >= MAX_CRASHES:
                yield Decoded(file_id, error="the decoder crashed on this file")
            else:
                survivors.append(item)
        # suspects last: ``pop`` takes them first, one at a time
        retry[:] = sorted(survivors, key=lambda item: item[0] in self._crashes)

    def _kill_workers(self) -> None:
        """SIGKILL the pool's processes: a hung C decoder ignores everything gentler."""
        processes = getattr(self._executor, "_processes", None) or {}
        for process in list(processes.values()):
            if process.is_alive():
                process.kill()
