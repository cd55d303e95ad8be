"""Crash consistency: SIGKILL `vitrieve index` at many points, resume, check everything.

The library grows in waves (so every run has work to be killed in); each round kills one or
two runs — from outside at a random moment, or from inside at a planted point: half-way through
a SQLite commit's WAL write, before or after a commit, half-way through staging a batch, and
during a FAISS save (temporary file half written, complete but not renamed, renamed but not
synced) — then resumes. After every kill the crashed library must open with no orphaned
vector and nothing lost; after every resume every good file has exactly one row and one
vector with the same id, bad files are recorded, and labels given with `vitrieve label`
survive.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
from faultkit import (
    CLI,
    Photos,
    check_complete,
    check_crashed,
    embedded_count,
    index_command,
    kill_when,
    label_snapshot,
    make_checkpoint,
    reap,
    start,
    walkill_env,
)

from encoders.runtime.encoder import Encoder
from indexer.pipeline.local import IndexOptions, index_library

BATCH = 8
# Rounds cycle through these; "external" is a SIGKILL from the test at a random moment,
# "commit"/"stage" points take a random batch, "save" points the first save holding vectors.
ROUNDS = [
    ["commit-during"],
    ["external", "save-written"],
    ["save-renamed"],
    ["stage", "save-partial"],
    ["commit-before"],
    ["commit-after", "external"],
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("crash") / "tiny")


def _plan(kills: int) -> list[list[str]]:
    """Rounds from ``ROUNDS`` until ``kills`` kills are planned (the last round trimmed)."""
    plan, planned = [], 0
    while planned < kills:
        points = ROUNDS[len(plan) % len(ROUNDS)][: kills - planned]
        plan.append(points)
        planned += len(points)
    return plan


class Harness:
    def __init__(self, tmp: Path, checkpoint: Path, seed: int) -> None:
        self.photos = Photos(tmp / "photos")
        self.library = self.photos.root / ".vitrieve"
        self.checkpoint, self.tmp = checkpoint, tmp
        self.rng = np.random.default_rng(seed)
        self.shim = walkill_env(tmp / "shim")
        self.labels: dict = {}
        self.kills = self.landed = self.survived = 0
        self.points: dict[str, int] = {}
        self.resume_seconds: list[float] = []

    def kill_once(self, point: str, wave: int) -> None:
        """One run of `vitrieve index`, killed at ``point``; then the crashed-state checks."""
        batches = max(2, math.ceil(wave / BATCH))
        env, workers = None, "0"
        if point == "external":
            workers = "1"
        elif point == "commit-during" and self.shim is None:
            point = "commit-before"  # no C compiler: the nearest point Python can reach
        elif point == "commit-during":
            env = {**self.shim, "WALKILL_WRITE": str(int(self.rng.integers(1, 6)))}
        if point.startswith(("commit", "stage")):
            point = f"{point}:{int(self.rng.integers(1, batches))}"
        elif point.startswith("save"):
            point = f"{point}:1"
        extra = ("--workers", workers, "--batch-size", str(BATCH))
        command = index_command(self.photos.root, self.checkpoint, *extra,
                                point=None if point == "external" else point)  # fmt: skip
        process = start(command, env)
        if point == "external":
            target = int(self.rng.integers(1, max(2, wave - 1)))
            kill_when(process, self.library, embedded_count(self.library) + target)
        code, _out, err = reap(process)
        self.kills += 1
        name = point.split(":")[0]
        self.points[name] = self.points.get(name, 0) + 1
        assert code in (0, -9), f"{point}: exit {code}\n{err[-2000:]}"
        self.landed += code == -9
        check_crashed(self.library, self.labels)

    def resume(self, encoder: Encoder, via_cli: bool) -> None:
        """Run to completion (in this process, or through the CLI); the complete checks."""
        started = time.monotonic()
        if via_cli:
            code, _out, err = reap(start(index_command(self.photos.root, self.checkpoint)))
            assert code == 0, err[-2000:]
        else:
            options = IndexOptions(workers=0, batch_size=BATCH)
            index_library(self.photos.root, encoder, model_ref=str(self.checkpoint.resolve()),
                          options=options)  # fmt: skip
        self.resume_seconds.append(time.monotonic() - started)
        check_complete(self.library, self.photos, self.labels)
        self.survived = self.landed

    def label(self, name: str) -> None:
        """Label what is indexed so far with `vitrieve label`, and remember the labels."""
        command = [*CLI, "label", "--library", str(self.library), "--labels", "red,green,blue",
                   "--name", name, "--json"]  # fmt: skip
        code, _out, err = reap(start(command))
        assert code == 0, err[-2000:]
        self.labels = label_snapshot(self.library)
        assert any(key[0] == name for key in self.labels)


def test_kill_and_resume(tmp_path: Path, checkpoint: Path, scale, figures) -> None:
    images, kills = int(scale.pick(200, 2000)), int(scale.pick(4, 20))
    started = time.monotonic()
    harness = Harness(tmp_path, checkpoint, seed=7)
    encoder = Encoder.load(checkpoint, precision="fp32")
    plan = _plan(kills)
    wave = math.ceil(images / len(plan))
    for number, points in enumerate(plan):
        harness.photos.add(min(wave, images - number * wave), number * wave, bad_every=37)
        for point in points:
            harness.kill_once(point, wave)
        harness.resume(encoder, via_cli=scale.full and number == len(plan) - 1)
        if number == 0 or (scale.full and number == len(plan) // 2):
            harness.label(f"set{number}")
    assert harness.kills == kills
    assert harness.landed >= kills - 1, f"only {harness.landed} of {kills} kills landed"
    figures({
        "images": len(harness.photos.good) + len(harness.photos.bad),
        "good_images": len(harness.photos.good),
        "bad_images": len(harness.photos.bad),
        "kills_tried": harness.kills,
        "kills_landed": harness.landed,
        "kills_survived": harness.survived,
        "kill_points": harness.points,
        "commit_kill_in_wal_write": harness.shim is not None,
        "label_sets_checked": len({key[0] for key in harness.labels}),
        "resume_seconds_median": round(float(np.median(harness.resume_seconds)), 2),
        "resume_seconds_max": round(max(harness.resume_seconds), 2),
        "wall_seconds": round(time.monotonic() - started, 1),
    })  # fmt: skip
