"""Transforms that misbehave on chosen images, to test the decode pool (importable by workers)."""

from __future__ import annotations

import os
import signal
import time

import numpy as np

HANG_WIDTH = 33  # an image this wide hangs the "decoder"
CRASH_WIDTH = 35  # an image this wide kills its worker (as a segfaulting codec would)


class HostileTransform:
    def __call__(self, image) -> np.ndarray:
        if image.width == HANG_WIDTH:
            time.sleep(3600)
        if image.width == CRASH_WIDTH:
            os.kill(os.getpid(), signal.SIGKILL)
        return np.zeros((3, 8, 8), np.float32)
