"""Where an indexing run's CPU time went, kept beside the data path, not in it.

The stage pipeline (``stages``) times its steps from outside them and hands each batch's
figures over here (``took``), with the files it received; the steps themselves never see a
clock.
Worker processes time their own stages (``decode.decoded``): those figures arrive with each
file and are added here, together with each worker's CPU total so far (what no stage accounts
for there: pickling, the pool's bookkeeping). This process's stages are timed with
``time.process_time`` — the whole process, the encoder's threads included: where a writer
thread commits while the main thread prepares the next batch, the two overlap and the stages'
figures are approximate (their sum can exceed the process's total).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from indexer.decode.decoded import Decoded

MAIN = "main "  # the prefix of this process's stages; the workers' have none


class Stopwatch:
    """CPU seconds by stage, of the worker processes and of this one (thread-safe)."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.workers: dict[int, float] = {}  # worker pid → its CPU seconds so far
        self.started = time.process_time()
        self._lock = threading.Lock()

    def took(self, seconds: dict[str, float], files: Iterable[Decoded] = ()) -> None:
        """Add this process's CPU seconds by stage (one batch's steps), and the CPU time the
        workers spent on ``files``."""
        with self._lock:
            for stage, value in seconds.items():
                self.cpu[MAIN + stage] = self.cpu.get(MAIN + stage, 0.0) + value
        for decoded in files:
            for stage, seconds in decoded.cpu.items():
                self._add(stage, seconds)
            if decoded.worker is not None:
                pid, before = decoded.worker
                total = before + sum(decoded.cpu.values())
                self.workers[pid] = max(self.workers.get(pid, 0.0), total)

    def _add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.cpu[stage] = self.cpu.get(stage, 0.0) + seconds

    def by_stage(self, in_workers: bool) -> dict[str, float]:
        """Stage → CPU seconds since this stopwatch started; what no stage accounts for goes
        to "worker other" (``in_workers``: files decoded in worker processes) and
        "main other" (scan, receiving results, merge)."""
        main_total = time.process_time() - self.started
        out = dict(self.cpu)
        timed = sum(out.values())
        worker_stages = sum(v for k, v in out.items() if not k.startswith(MAIN))
        if in_workers:
            out["worker other"] = max(sum(self.workers.values()) - worker_stages, 0.0)
            timed -= worker_stages  # those ran in other processes
        out["main other"] = max(main_total - timed, 0.0)
        return out
