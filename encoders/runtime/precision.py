"""The fastest exact precision, measured on this machine and remembered.

Which precision is fastest is a property of the CPU, not of its feature list: bf16 is ~4×
fp32 on a Xeon with AMX, but 0.6× on a Xeon with AVX-512-BF16 and no AMX, and int8 dynamic
quantisation wins only where VNNI/AMX-int8 and the model's shapes favour it. So the choice is
a short measurement — a few batches of the actual work in each candidate precision,
interleaved so that load changes hit every candidate alike, best time of each — and the
fastest candidate that is also *exact* wins (what "exact" means is the caller's: the Encoder's
is bf16 within cosine 0.999 of fp32, int8 with the same top-10 neighbours on ≥ 98 % of a
held-out set; ``encoders.runtime.candidates``).

A measurement is cached as one JSON file per subject (a model id, a training setup) in a
cache directory the caller passes (default ``~/.cache/vitrieve``, from ``Path.home()``:
library code reads no environment variables), together with the key it holds for: the CPU
model, core count, torch version and kernel level (``capability.machine_key``) and the
subject. A different key, or a file that cannot be read, means measuring again.

``measure_autocast`` is the same rule for a training step (the trainer's autocast dtype).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from encoders.runtime.capability import (
    bf16_native,
    cuda_capability,
    cuda_reduced_dtype,
    machine_key,
)

log = logging.getLogger(__name__)

# time_run(candidate, run) → seconds that one call of run took (injected by tests)
TimeRun = Callable[[str, Callable[[], object]], float]
CACHE_VERSION = 1
TIE = 0.03  # rates this close count as equal (the more accurate candidate wins)
AUTOCAST_NAMES = {"fp32": None, "bf16": torch.bfloat16}


def default_cache_dir() -> Path:
    """Where measured choices are kept unless the caller says: ``~/.cache/vitrieve``."""
    return Path.home() / ".cache" / "vitrieve"


def perf_counter_time(name: str, run: Callable[[], object]) -> float:
    """Wall-clock seconds of one ``run()`` (the default ``TimeRun``)."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


@dataclass(frozen=True)
class Choice:
    """A precision and why: items/s measured per candidate, each one's exactness check value
    and whether it passed, and whether this came from the cache."""

    precision: str
    reason: str
    rates: dict[str, float] = field(default_factory=dict)
    checks: dict[str, float] = field(default_factory=dict)
    exact: dict[str, bool] = field(default_factory=dict)
    cached: bool = False

    def describe(self) -> str:
        rates = ", ".join(f"{name} {rate:.1f}/s" for name, rate in self.rates.items())
        source = " (cached)" if self.cached else ""
        return f"{self.precision}{source}: {self.reason}" + (f" [{rates}]" if rates else "")


def time_candidates(
    runs: Mapping[str, Callable[[], object]],
    rounds: int,
    time_run: TimeRun = perf_counter_time,
) -> dict[str, float]:
    """Best seconds per call of each run: one untimed warm-up each, then ``rounds`` rounds
    that take the candidates in turn (a load change hits all of them alike)."""
    for run in runs.values():
        run()
    best = dict.fromkeys(runs, math.inf)
    for _ in range(rounds):
        for name, run in runs.items():
            best[name] = min(best[name], time_run(name, run))
    return best


def pick(rates: Mapping[str, float], exact: Mapping[str, bool]) -> tuple[str, str]:
    """The fastest exact candidate and why. ``rates`` lists the candidates most accurate
    first (fp32, bf16, int8): one less accurate is taken only when it is more than
    ``TIE`` faster than a more accurate one, so measurement noise never trades accuracy for
    nothing."""
    usable = {name: rate for name, rate in rates.items() if exact.get(name, name == "fp32")}
    if not usable:
        return "fp32", "no exact candidate was measured"
    fastest = max(usable.values())
    best = next(name for name, rate in usable.items() if rate * (1 + TIE) >= fastest)
    others = [
        f"{name} {rates[name] / usable[best]:.2f}x its speed"
        + ("" if exact.get(name, name == "fp32") else " but not exact")
        for name in rates
        if name != best
    ]
    if not others:
        return best, "the only candidate measured"
    ties = f"within {TIE:.0%} the more accurate"
    return best, f"the fastest exact one measured, {ties} ({', '.join(others)})"


class ChoiceCache:
    """Measured choices as JSON files under ``directory`` / ``precision``, one per subject;
    ``directory=None`` keeps nothing (every lookup misses)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = None if directory is None else Path(directory) / "precision"

    def path(self, subject: str) -> Path | None:
        if self.directory is None:
            return None
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", subject)[:40]
        digest = hashlib.sha256(subject.encode()).hexdigest()[:12]
        return self.directory / f"{slug}-{digest}.json"

    def load(self, subject: str, key: Mapping[str, Any]) -> Choice | None:
        """The cached choice for ``subject`` if it was measured under ``key``; else None (a
        missing, unreadable or differently keyed file alike)."""
        path = self.path(subject)
        if path is None or not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != CACHE_VERSION or data.get("key") != dict(key):
                log.info("precision cache %s holds another machine or model: measuring", path)
                return None
            choice = Choice(**data["choice"])
            if not isinstance(choice.precision, str) or not isinstance(choice.rates, dict):
                raise TypeError("malformed choice")
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("ignoring unreadable precision cache %s (%s)", path, exc)
            return None
        return Choice(**{**asdict(choice), "cached": True})

    def store(self, subject: str, key: Mapping[str, Any], choice: Choice) -> None:
        """Write atomically (a reader never sees half a file); failure only logs."""
        path = self.path(subject)
        if path is None:
            return
        data = {"version": CACHE_VERSION, "key": dict(key), "choice": asdict(choice)}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=1)
            os.replace(temp, path)
        except OSError as exc:
            log.warning("cannot write precision cache %s (%s)", path, exc)


def cache_key(subject: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The machine key plus what is measured (JSON-comparable)."""
    return {**machine_key(), "subject": subject, **(extra or {})}


def measure_autocast(
    step: Callable[[], object],
    device: torch.device,
    *,
    subject: str = "training",
    cache_dir: Path | None = None,
    rounds: int = 3,
    time_run: TimeRun = perf_counter_time,
) -> torch.dtype | None:
    """The autocast dtype that runs ``step`` fastest on ``device`` (None: fp32 throughout).

    On the CPU, fp32 and (where oneDNN has native bf16) bf16 autocast are timed on
    ``1 + rounds`` calls of ``step`` each — real training steps, the caller's to count — and
    the faster kept, cached under ``subject`` (say, the model and batch size) in
    ``cache_dir`` (default ``~/.cache/vitrieve``), measured again when that changes. On CUDA
    nothing is measured: bf16 where that device has it natively (Ampere+), else fp32 (fp16
    would need loss scaling).
    """
    if device.type == "cuda":
        return torch.bfloat16 if bf16_native(device) else None
    names = ["fp32", "bf16"] if bf16_native(device) else ["fp32"]
    if len(names) == 1:
        return None
    cache = ChoiceCache(default_cache_dir() if cache_dir is None else cache_dir)
    key = cache_key(subject, {"what": "autocast"})
    choice = cache.load(subject, key)
    if choice is None:

        def under(name: str) -> Callable[[], object]:
            dtype = AUTOCAST_NAMES[name]

            def run() -> object:
                context = torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()
                with context:
                    return step()

            return run

        seconds = time_candidates({name: under(name) for name in names}, rounds, time_run)
        rates = {name: 1 / max(s, 1e-12) for name, s in seconds.items()}
        best, reason = pick(rates, dict.fromkeys(names, True))
        choice = Choice(best, reason, rates=rates)
        cache.store(subject, key, choice)
    log.info("training autocast: %s", choice.describe())
    return AUTOCAST_NAMES.get(choice.precision)


def cuda_precision(device: torch.device) -> str:
    """``auto`` on a CUDA device: bf16 where it is native on that device (Ampere+), fp16
    autocast on Volta/Turing, fp32 before — never emulated bf16."""
    if bf16_native(device):
        return "bf16"
    return "fp16" if cuda_reduced_dtype(cuda_capability(device)) == torch.float16 else "fp32"
