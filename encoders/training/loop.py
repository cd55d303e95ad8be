"""The training loop: batches from preloaded tensors, one optimiser step, budget, checkpoints.

Everything the loop needs arrives prepared (``TrainData``, a model, ``TrainOptions``); it
reports through a callback and never prints. Determinism: the data order of epoch e is a
permutation seeded by (seed, e) and the augmentation of step s a generator seeded by
(seed, s, rank), so a resumed run replays exactly what an uninterrupted one would have done.
The model, its optimiser state and the data live on the training device
(``devices.train_device``); checkpoints are device-free (tensors saved from the host), so a
run can be resumed on another device.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from encoders.errors import VitrieveError
from encoders.model.clip import CLIP
from encoders.training.clock import Clock, Progress, broadcast, world
from encoders.training.devices import (
    device_defaults,
    fused_adamw,
    train_device,
    with_device_defaults,
)
from encoders.training.guard import NonFiniteGuard, check_finite_weights
from encoders.training.optim import (
    CosineSchedule,
    estimate_total_steps,
    make_optimizer,
    warmup_steps,
)
from encoders.training.order import BatchOrder
from encoders.training.state import TrainState, load_training_state, save_training_state
from encoders.training.steps import (
    ContrastiveModule,
    StepResult,
    TrainData,
    TrainOptions,
    make_batch,
    optimise,
    step_generator,
)
from encoders.training.stream import StreamedImages

__all__ = ["Progress", "Trainer", "TrainData", "TrainOptions"]

log = logging.getLogger(__name__)

PROBE_STEPS = 5  # steps timed before a wall-clock budget is turned into a step count
# Until a budget run's first estimate of its total, the learning rate creeps up as if the
# warm-up were this long; the estimate then sets the real one (a fraction of the total).
PROVISIONAL_WARMUP = 1000


Callback = Callable[[Progress], None]
Validate = Callable[[CLIP], dict[str, float]]


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
        self.device = train_device(options.device)
        self.rank, self.world_size = world()
        per_step = len(data.images) // (max(options.accum, 1) * self.world_size)
        self.options = options = with_device_defaults(options, self.device, per_step)
        self.model = model.to(self.device)
        self.data = data.placed(self.device)
        self.started = started  # perf_counter() when setup began: budgets include it
        self.run_dir, self.callback, self.validate = run_dir, callback, validate
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
        self.module = self._module(data.text_features is not None)
        self.optimizer = make_optimizer(
            model, options.lr, options.weight_decay, fused=fused_adamw(self.device)
        )
        self.state = TrainState()
        self.guard = NonFiniteGuard()
        self.samples_per_step = options.batch_size * max(options.accum, 1) * self.world_size
        self.steps_per_epoch = len(data.images) // self.samples_per_step
        if self.steps_per_epoch == 0:
            raise VitrieveError(
                f"{len(data.images)} training pairs are fewer than one optimiser step's "
                f"{self.samples_per_step} (batch {options.batch_size} × accumulation "
                f"{max(options.accum, 1)} × {self.world_size} processes): lower the batch size"
            )
        self.order = BatchOrder(
            len(data.images), self.samples_per_step, options.seed, self.rank, self.world_size
        )
        self.stream: Iterator[torch.Tensor] | None = None  # streamed data's batches
        self.history: list[dict] = []

    def _module(self, cached_text: bool) -> nn.Module:
        """The model with its training-time text path; DDP-wrapped across processes."""
        module: nn.Module = ContrastiveModule(self.model, cached_text)
        if self.world_size == 1:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)

    @property
    def checkpoint_dir(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / "checkpoint"

    def resume(self) -> None:
        """Continue from ``RUN_DIR/checkpoint``: weights, optimizer, RNG, schedule, position."""
        from safetensors.torch import load_file

        from encoders.weights.checkpoint import WEIGHTS_FILE

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
        state = self.state
        state.epoch, state.position, indices = self.order.at(state.epoch, state.position)
        return indices

    def _open_stream(self) -> Iterator[torch.Tensor] | None:
        """Streamed data: a loader decoding the batches this run will ask for, ahead of it."""
        images = self.data.images
        if not isinstance(images, StreamedImages):
            return None
        workers = device_defaults(self.device).decode_workers
        upcoming = self.order.upcoming(self.state.epoch, self.state.position)
        return images.stream(upcoming, workers, pin=self.device.type == "cuda")

    def _update_budget(self, clock: Clock) -> bool:
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
        total, stop = broadcast([float(total), float(stop)], self.device)
        if state.total_steps == 0 and total > 0:
            state.warmup = warmup_steps(int(total), self.options.warmup_fraction)
        state.total_steps = int(total)
        return bool(stop)

    def _due(self, every: int, seconds_every: float, clock: Clock, last: list[float]) -> bool:
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
        """Train until the epochs or the budget are used up; returns the final state.

        Raises ``NonFiniteLoss`` when the loss stays non-finite for ``MAX_NONFINITE_STEPS``
        steps in a row (no checkpoint is written from such a run).
        """
        if resume:
            self.resume()
        self._plan_epochs()
        clock = Clock(self.started or time.perf_counter(), self.state.elapsed_s)
        self.stream = self._open_stream()
        try:
            self._train(clock)
        finally:
            self.stream = None  # a streaming loader's workers stop, however the run ends
        return self.finish(clock)

    def _train(self, clock: Clock) -> None:
        """Steps until the planned total (or the budget) is reached."""
        last_val = [clock.elapsed()]
        budget = (self.options.minutes or 0) * 60
        stop = self.state.total_steps and self.state.step >= self.state.total_steps
        while not stop:
            result, lr, wait = self._step(clock)
            self.state.step += 1
            self.state.samples += self.samples_per_step
            self.state.skipped_steps += not result.updated
            self.state.elapsed_s = clock.elapsed()
            stop = self._update_budget(clock)
            val = {}
            if self.validate and self.rank == 0 and not stop:
                due = self._due(self.options.val_every, budget / 10, clock, last_val)
                val = self.validate(self.model) if due else {}
            self._report(result.loss, lr, clock, val, wait, skipped=not result.updated)
            self.guard.after_step(self.state.step, result.updated, lr)
            every = self.options.checkpoint_every
            if every and not stop and self.state.step % every == 0:
                self.save()

    def _step(self, clock: Clock) -> tuple[StepResult, float, float]:
        """One optimiser step on the next batch: (result, lr, share of it waiting for data)."""
        step = self.state.step
        began = time.perf_counter()
        generator = step_generator(self.options.seed, step, self.rank)
        indices = self.next_indices()
        pixels = None if self.stream is None else next(self.stream)
        batch = make_batch(self.data, indices, self.options, generator, self.device, pixels)
        prepared = time.perf_counter()
        lr = self.schedule().apply(self.optimizer, step)
        result = optimise(self.module, self.optimizer, batch, self.options)
        return result, lr, clock.add_step(prepared - began, time.perf_counter() - began)

    def finish(self, clock: Clock) -> TrainState:
        """Final validation, checkpoint and report (with the run's share of data waits)."""
        val = self.validate(self.model) if self.validate and self.rank == 0 else {}
        last = self.history[-1] if self.history else {"loss": float("nan"), "lr": 0.0}
        self._report(last["loss"], last["lr"], clock, val, clock.data_wait(), final=True)
        self.save()
        return self.state

    def save(self) -> None:
        """Checkpoint (rank 0): model, optimiser, RNG, position — only from finite weights."""
        if self.rank != 0 or self.checkpoint_dir is None:
            return
        check_finite_weights(self.model, str(self.checkpoint_dir))
        extra = {"options": self.options.__dict__, "samples": self.state.samples}
        save_training_state(self.checkpoint_dir, self.model, self.optimizer, self.state, extra)

    def _report(
        self,
        loss: float,
        lr: float,
        clock: Clock,
        val: dict,
        wait: float,
        skipped: bool = False,
        final: bool = False,
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
            "data_wait": round(wait, 4),
            "skipped_steps": state.skipped_steps,
            **{f"val_{k}": v for k, v in val.items()},
        }
        if skipped:
            record["skipped"] = True
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
                remaining, elapsed, dict(val), wait, state.skipped_steps,
            )  # fmt: skip
            self.callback(progress)
