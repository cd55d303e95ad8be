"""The training loop: batches from preloaded tensors, one optimiser step, budget, checkpoints.

Everything the loop needs arrives prepared (``TrainData``, a model, ``TrainOptions``); it
reports through a callback and never prints. Determinism: the data order of epoch e is a
permutation seeded by (seed, e) and the augmentation of step s a generator seeded by
(seed, s, rank), so a resumed run replays exactly what an uninterrupted one would have done.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from encoders.clip import CLIP
from encoders.training.optim import (
    CosineSchedule,
    estimate_total_steps,
    make_optimizer,
    warmup_steps,
)
from encoders.training.state import TrainState, load_training_state, save_training_state
from encoders.training.steps import (
    ContrastiveModule,
    TrainData,
    TrainOptions,
    epoch_order,
    make_batch,
    optimise,
    step_generator,
)

__all__ = ["Progress", "Trainer", "TrainData", "TrainOptions"]

log = logging.getLogger(__name__)

PROBE_STEPS = 5  # steps timed before a wall-clock budget is turned into a step count
# Until a budget run's first estimate of its total, the learning rate creeps up as if the
# warm-up were this long; the estimate then sets the real one (a fraction of the total).
PROVISIONAL_WARMUP = 1000


@dataclass(frozen=True)
class Progress:
    """What the loop reports after each step (and with ``val`` after a validation)."""

    step: int
    total_steps: int
    epoch: int
    loss: float
    lr: float
    samples_per_s: float
    eta_s: float
    elapsed_s: float
    val: dict[str, float] = field(default_factory=dict)


Callback = Callable[[Progress], None]
Validate = Callable[[CLIP], dict[str, float]]


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _broadcast(values: list[float]) -> list[float]:
    """Rank 0's values on every rank, so all ranks take the same schedule and stop together."""
    if world()[1] == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.broadcast(tensor, src=0)
    return tensor.tolist()


@dataclass
class _Clock:
    """Wall-clock bookkeeping: elapsed training time and the measured step rate."""

    start: float
    base_elapsed: float
    probe_step: int = -1
    probe_elapsed: float = 0.0

    def elapsed(self) -> float:
        return self.base_elapsed + time.perf_counter() - self.start

    def seconds_per_step(self, step: int, elapsed: float) -> float | None:
        if self.probe_step < 0 or step <= self.probe_step:
            return None
        return (elapsed - self.probe_elapsed) / (step - self.probe_step)


class Trainer:
    """Runs ``TrainOptions`` on a model and ``TrainData``; rank 0 reports and checkpoints."""

    def __init__(
        self,
        model: CLIP,
        data: TrainData,
        options: TrainOptions,
        run_dir: Path | None = None,
        callback: Callback | None = None,
        validate: Validate | None = None,
        started: float | None = None,
    ) -> None:
        self.model, self.data, self.options = model, data, options
        self.started = started  # perf_counter() when setup began: budgets include it
        self.run_dir, self.callback, self.validate = run_dir, callback, validate
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
        self.rank, self.world_size = world()
        module: nn.Module = ContrastiveModule(model, data.text_features is not None)
        if self.world_size > 1:
            module = nn.parallel.DistributedDataParallel(module)
        self.module = module
        self.optimizer = make_optimizer(model, options.lr, options.weight_decay)
        self.state = TrainState()
        self.samples_per_step = options.batch_size * max(options.accum, 1) * self.world_size
        self.steps_per_epoch = len(data.images) // self.samples_per_step
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"{len(data.images)} training pairs are fewer than one batch of "
                f"{self.samples_per_step}: lower --batch-size"
            )
        self.history: list[dict] = []

    @property
    def checkpoint_dir(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / "checkpoint"

    def resume(self) -> None:
        """Continue from ``RUN_DIR/checkpoint``: weights, optimizer, RNG, schedule, position."""
        from safetensors.torch import load_file

        from encoders.checkpoint import WEIGHTS_FILE

        directory = self.checkpoint_dir
        assert directory is not None
        self.state, _ = load_training_state(directory, self.optimizer)
        self.model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)), strict=True)

    def schedule(self) -> CosineSchedule:
        state = self.state
        if state.total_steps == 0:
            return CosineSchedule(self.options.lr, 10**9, PROVISIONAL_WARMUP)
        return CosineSchedule(self.options.lr, state.total_steps, state.warmup)

    def _plan_epochs(self) -> None:
        if self.options.epochs is not None and self.state.total_steps == 0:
            total = max(1, round(self.options.epochs * self.steps_per_epoch))
            self.state.total_steps = total
            self.state.warmup = warmup_steps(total, self.options.warmup_fraction)

    def next_indices(self) -> torch.Tensor:
        """This rank's slice of the next global batch; a new epoch starts when one is used up."""
        state, size = self.state, self.samples_per_step
        if state.position + size > len(self.data.images):
            state.epoch, state.position = state.epoch + 1, 0
        order = epoch_order(len(self.data.images), self.options.seed, state.epoch)
        local = size // self.world_size
        start = state.position + self.rank * local
        state.position += size
        return order[start : start + local]

    def _update_budget(self, clock: _Clock) -> bool:
        """For ``--minutes``: (re-)estimate the total steps; True when the run must stop."""
        state, budget = self.state, (self.options.minutes or 0) * 60
        elapsed = clock.elapsed()
        if clock.probe_step < 0:
            clock.probe_step, clock.probe_elapsed = state.step, elapsed  # step 1 pays one-offs
        if not budget:
            return state.step >= state.total_steps
        rate = clock.seconds_per_step(state.step, elapsed)
        total = state.total_steps
        if rate is not None and state.step >= PROBE_STEPS and (total == 0 or state.step % 20 == 0):
            total = estimate_total_steps(state.step, elapsed, rate, budget)
        stop = state.step >= total > 0 or elapsed >= budget
        total, stop = _broadcast([float(total), float(stop)])
        if state.total_steps == 0 and total > 0:
            state.warmup = warmup_steps(int(total), self.options.warmup_fraction)
        state.total_steps = int(total)
        return bool(stop)

    def _due(self, every: int, seconds_every: float, clock: _Clock, last: list[float]) -> bool:
        """Every ``every`` steps, or (budget runs) every ``seconds_every`` seconds."""
        if every:
            return self.state.step % every == 0
        if self.options.minutes:
            if clock.elapsed() - last[0] >= seconds_every:
                last[0] = clock.elapsed()
                return True
            return False
        return self.state.step % max(self.state.total_steps // 10, 1) == 0

    def run(self, resume: bool = False) -> TrainState:
        """Train until the epochs or the budget are used up; returns the final state."""
        if resume:
            self.resume()
        self._plan_epochs()
        clock = _Clock(self.started or time.perf_counter(), self.state.elapsed_s)
        last_val = [clock.elapsed()]
        budget = (self.options.minutes or 0) * 60
        stop = self.state.total_steps and self.state.step >= self.state.total_steps
        while not stop:
            step = self.state.step
            batch = make_batch(
                self.data,
                self.next_indices(),
                self.options,
                step_generator(self.options.seed, step, self.rank),
            )
            lr = self.schedule().apply(self.optimizer, step)
            loss = optimise(self.module, self.optimizer, batch, self.options)
            self.state.step += 1
            self.state.samples += self.samples_per_step
            self.state.elapsed_s = clock.elapsed()
            stop = self._update_budget(clock)
            val = {}
            if self.validate and self.rank == 0 and not stop:
                due = self._due(self.options.val_every, budget / 10, clock, last_val)
                val = self.validate(self.model) if due else {}
            self._report(loss, lr, clock, val)
            every = self.options.checkpoint_every
            if every and not stop and self.state.step % every == 0:
                self.save()
        return self.finish(clock)

    def finish(self, clock: _Clock) -> TrainState:
        """Final validation, checkpoint and report."""
        val = self.validate(self.model) if self.validate and self.rank == 0 else {}
        last = self.history[-1] if self.history else {"loss": float("nan"), "lr": 0.0}
        self._report(last["loss"], last["lr"], clock, val, final=True)
        self.save()
        return self.state

    def save(self) -> None:
        if self.rank != 0 or self.checkpoint_dir is None:
            return
        extra = {"options": self.options.__dict__, "samples": self.state.samples}
        save_training_state(self.checkpoint_dir, self.model, self.optimizer, self.state, extra)

    def _report(
        self, loss: float, lr: float, clock: _Clock, val: dict, final: bool = False
    ) -> None:
        state = self.state
        elapsed = clock.elapsed()
        rate = clock.seconds_per_step(state.step, elapsed)
        per_second = self.samples_per_step / rate if rate else 0.0
        remaining = max(state.total_steps - state.step, 0) * (rate or 0.0)
        record = {
            "step": state.step,
            "epoch": state.epoch,
            "samples": state.samples,
            "elapsed_s": round(elapsed, 3),
            "loss": loss,
            "lr": lr,
            "samples_per_s": round(per_second, 1),
            **{f"val_{k}": v for k, v in val.items()},
        }
        if final:
            record["final"] = True
        self.history.append(record)
        if self.rank != 0:
            return
        if self.run_dir is not None:
            with (self.run_dir / "metrics.jsonl").open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        if self.callback:
            progress = Progress(
                state.step, state.total_steps, state.epoch, loss, lr, per_second,
                remaining, elapsed, dict(val),
            )  # fmt: skip
            self.callback(progress)
