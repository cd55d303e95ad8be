"""Hypothesis for a bounded time: batches of examples under fixed seeds 0, 1, 2, ... until the
time budget is spent, so a run is reproducible (a failure names its seed) and bounded in time."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st


@dataclass
class FuzzRun:
    """What a bounded run did: examples tried, seconds, and the unexpected failures met."""

    examples: int = 0
    seeds: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)  # "seed N: ExceptionType: message"

    def figures(self) -> dict[str, Any]:
        distinct = sorted({f.split(": ", 1)[1][:120] for f in self.failures})
        return {"examples": self.examples, "seeds": self.seeds,
                "seconds": round(self.seconds, 1), "failures": len(self.failures),
                "distinct_failures": distinct[:20]}  # fmt: skip


def fuzz_for(
    seconds: float,
    strategy: st.SearchStrategy,
    check: Callable[[Any], None],
    batch: int = 50,
    min_examples: int = 0,
) -> FuzzRun:
    """Call ``check(example)`` on examples of ``strategy`` for about ``seconds`` (at least
    ``min_examples``). ``check`` raises ``AssertionError`` (or anything) for a failure; every
    failure is recorded (not just the first) so one run lists every distinct crash."""
    run = FuzzRun()
    start = time.monotonic()
    while time.monotonic() - start < seconds or run.examples < min_examples:

        @settings(max_examples=batch, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(strategy)
        def one(example: Any) -> None:
            run.examples += 1
            try:
                check(example)
            except Exception as exc:  # recorded, reported by the caller's final assert
                message = f"seed {run.seeds}: {type(exc).__name__}: {exc}"
                run.failures.append(message[:500])

        seed(run.seeds)(one)()
        run.seeds += 1
    run.seconds = time.monotonic() - start
    return run
