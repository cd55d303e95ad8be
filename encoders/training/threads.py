"""Pick the intra-op thread count by measuring, not guessing.

On a machine whose cores are shared, torch's default (one thread per core) can be far
slower than one thread: every parallel region waits for its slowest thread, and a thread
that the scheduler has parked stalls all of them (we measured 2 threads at half the speed of
1 while other jobs ran, and the opposite on an idle machine). So a budgeted run times a few
forward/backward passes of its own vision tower with each candidate and keeps the faster.
"""

from __future__ import annotations

import logging
import time

import torch

from encoders.model.clip import CLIP

log = logging.getLogger(__name__)


def _time_pass(model: CLIP, images: torch.Tensor) -> float:
    started = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model.encode_image(images).float().square().mean()
    loss.backward()
    return time.perf_counter() - started


def pick_threads(model: CLIP, batch: int = 32, rounds: int = 3) -> int:
    """Time fwd+bwd with the default thread count and with 1 (interleaved); set the faster."""
    default = torch.get_num_threads()
    if default <= 1:
        return default
    size = model.config.vision.image_size
    images = torch.randn(batch, 3, size, size)
    best = {default: float("inf"), 1: float("inf")}
    for _ in range(rounds):
        for threads in (default, 1):
            torch.set_num_threads(threads)
            best[threads] = min(best[threads], _time_pass(model, images))
    model.zero_grad(set_to_none=True)
    chosen = min(best, key=best.get)
    torch.set_num_threads(chosen)
    log.info("threads: %s s per probe pass -> using %d", best, chosen)
    return chosen
