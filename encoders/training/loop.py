"""The training loop, top-down: data order, one optimiser step, the clock, budget, checkpoints.

Everything the loop needs arrives prepared (``TrainData``, a model, ``TrainOptions``); it
reports through a callback and never prints. Read ``Trainer.run`` → ``_train`` → ``_step``:
each step takes this rank's slice of the next global batch (``BatchOrder``), builds and
optimises it (``steps``), counts non-finite steps (a run that keeps producing them stops with
one line), re-estimates a ``--minutes`` budget from the measured step rate (``Clock``), and
reports. Determinism: the data order of epoch e is a permutation seeded by (seed, e) and the
augmentation of step s a generator seeded by (seed, s, rank), so a resumed run replays exactly
what an uninterrupted one would have done. The model, its optimiser state and the data live
on the training device (``devices.train_device``); checkpoints are device-free, so a run can
be resumed on another device.
"""

# One module over 300 lines: the loop's clock, data order and non-finite guard are read
# with the loop that uses them (as in nanoGPT's train.py); apart, a step is a tour of files.

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from encoders.errors import VitrieveError
from encoders.model.clip import CLIP
from encoders.training.devices import fused_adamw, train_device
from encoders.training.layout import RunLayout
from encoders.training.optim import (
    CosineSchedule,
    estimate_total_steps,
    make_optimizer,
    warmup_steps,
)
from encoders.training.state import (
    NonFiniteLoss,
    TrainState,
    load_training_state,
    save_training_state,
)
from encoders.training.steps import (
    ContrastiveModule,
    StepResult,
    TrainData,
    TrainOptions,
    make_batch,
    optimise,
    step_generator,
    with_device_defaults,
)
from encoders.training.stream import StreamedImages, machine_loader_workers

__all__ = ["NonFiniteLoss", "Progress", "Trainer", "TrainData", "TrainOptions"]

log = logging.getLogger(__name__)

PROBE_STEPS = 5  # steps timed before a wall-clock budget is turned into a step count
# Until a budget run's first estimate of its total, the learning rate creeps up as if the
# warm-up were this long; the estimate then sets the real one (a fraction of the total).
PROVISIONAL_WARMUP = 1000
# Non-finite steps in a row after which a run stops (a single bad batch is skipped and
# forgotten; five in a row is a diverged run or systematically broken data).
MAX_NONFINITE_STEPS = 5


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
    data_wait: float = 0.0  # share of this step's time spent preparing its batch
    skipped_steps: int = 0  # steps skipped so far because the loss was not finite


Callback = Callable[[Progress], None]
Validate = Callable[[CLIP], dict[str, float]]


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def broadcast(values: list[float], device: torch.device) -> list[float]:
    """Rank 0's values on every rank, so all ranks take the same schedule and stop together
    (on the training device: NCCL only moves CUDA tensors)."""
    if world()[1] == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return tensor.tolist()


@lru_cache(maxsize=2)  # the current epoch (and the next, when a loader reads ahead)
def epoch_order(count: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of an epoch: a permutation seeded by (seed, epoch). Read-only."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


@dataclass(frozen=True)
class BatchOrder:
    """This rank's sample indices for each step, a pure function of the run's position: each
    rank takes its slice of every global batch of ``samples_per_step``, and a batch that would
    run past the end of the data starts the next epoch. Pure, so a resumed run picks up where
    it stopped and a streaming loader can be told the batches ahead of the trainer."""

    count: int
    samples_per_step: int  # global: all ranks, all micro-batches
    seed: int
    rank: int = 0
    world_size: int = 1

    def at(self, epoch: int, position: int) -> tuple[int, int, torch.Tensor]:
        """(epoch, position after it, this rank's indices) of the batch starting there."""
        size = self.samples_per_step
        if position + size > self.count:
            epoch, position = epoch + 1, 0
        local = size // self.world_size
        start = position + self.rank * local
        order = epoch_order(self.count, self.seed, epoch)
        return epoch, position + size, order[start : start + local]

    def upcoming(self, epoch: int, position: int) -> Iterator[torch.Tensor]:
        """This rank's index batches from (epoch, position) on, without end."""
        while True:
            epoch, position, indices = self.at(epoch, position)
            yield indices


@dataclass
class Clock:
    """Wall-clock bookkeeping: elapsed training time, the measured step rate, data waits."""

    start: float
    base_elapsed: float
    probe_step: int = -1
    probe_elapsed: float = 0.0
    data_s: float = 0.0  # this run's time preparing batches
    step_s: float = 0.0  # this run's time in whole steps (batch + optimiser step)

    def elapsed(self) -> float:
        return self.base_elapsed + time.perf_counter() - self.start

    def seconds_per_step(self, step: int, elapsed: float) -> float | None:
        if self.probe_step < 0 or step <= self.probe_step:
            return None
        return (elapsed - self.probe_elapsed) / (step - self.probe_step)

    def add_step(self, data_s: float, step_s: float) -> float:
        """Account one step; returns the share of it spent waiting for data."""
        self.data_s += data_s
        self.step_s += step_s
        return data_s / step_s if step_s > 0 else 0.0

    def data_wait(self) -> float:
        """The share of this run's step time spent waiting for data."""
        return self.data_s / self.step_s if self.step_s > 0 else 0.0


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
        self.layout = None if run_dir is None else RunLayout(run_dir)
        self.run_dir, self.callback, self.validate = run_dir, callback, validate
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
        self.module = self._module(data.text_features is not None)
        self.optimizer = make_optimizer(
            model, options.lr, options.weight_decay, fused=fused_adamw(self.device)
        )
        self.state = TrainState()
        self.nonfinite_in_a_row = 0
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
        return None if self.layout is None else self.layout.checkpoint

    def run(self, resume: bool = False) -> TrainState:
        """Train until the epochs or the budget are used up; returns the final state.

        Raises ``NonFiniteLoss`` when the loss stays non-finite for ``MAX_NONFINITE_STEPS``
        steps in a row (no checkpoint is written from such a run).
        """
        if resume:
            self.resume()
        if self.options.epochs is not None and self.state.total_steps == 0:
            total = max(1, round(self.options.epochs * self.steps_per_epoch))
            self.state.total_steps = total
            self.state.warmup = warmup_steps(total, self.options.warmup_fraction)
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
            self._count_nonfinite(result.updated, lr)
            every = self.options.checkpoint_every
            if every and not stop and self.state.step % every == 0:
                self.save()

    def _step(self, clock: Clock) -> tuple[StepResult, float, float]:
        """One optimiser step on the next batch: (result, lr, share of it waiting for data)."""
        step, state = self.state.step, self.state
        began = time.perf_counter()
        generator = step_generator(self.options.seed, step, self.rank)
        state.epoch, state.position, indices = self.order.at(state.epoch, state.position)
        pixels = None if self.stream is None else next(self.stream)
        batch = make_batch(self.data, indices, self.options, generator, self.device, pixels)
        prepared = time.perf_counter()
        lr = self.schedule().apply(self.optimizer, step)
        result = optimise(self.module, self.optimizer, batch, self.options)
        return result, lr, clock.add_step(prepared - began, time.perf_counter() - began)

    def schedule(self) -> CosineSchedule:
        state = self.state
        if state.total_steps == 0:
            return CosineSchedule(self.options.lr, 10**9, PROVISIONAL_WARMUP)
        return CosineSchedule(self.options.lr, state.total_steps, state.warmup)

    def _count_nonfinite(self, updated: bool, lr: float) -> None:
        """After step ``state.step`` (1-based, as in the metrics): a run whose loss stays not
        finite for ``MAX_NONFINITE_STEPS`` steps in a row is not recovering on its own."""
        step = self.state.step
        self.nonfinite_in_a_row = 0 if updated else self.nonfinite_in_a_row + 1
        if updated:
            return
        log.warning("step %d: the loss is not finite; the step was skipped (no update)", step)
        if self.nonfinite_in_a_row < MAX_NONFINITE_STEPS:
            return
        raise NonFiniteLoss(
            f"training stopped at step {step}: the loss was not finite for "
            f"{MAX_NONFINITE_STEPS} steps in a row (steps {step - MAX_NONFINITE_STEPS + 1}-"
            f"{step}, none of them applied; no checkpoint was written from them). Likely "
            f"causes: a learning rate too high for this model and batch (peak {lr:.3g} here: "
            "try a lower one or a longer warm-up), or broken training data (images or captions "
            "that make the loss overflow)"
        )

    def _open_stream(self) -> Iterator[torch.Tensor] | None:
        """Streamed data: a loader decoding the batches this run will ask for, ahead of it."""
        images = self.data.images
        if not isinstance(images, StreamedImages):
            return None
        _, channels, height, width = images.shape
        batch_bytes = (self.samples_per_step // self.world_size) * channels * height * width
        ranks = self.world_size  # on a GPU machine, one rank per GPU shares its cores
        if self.device.type == "cuda":
            ranks = min(ranks, torch.cuda.device_count())
        workers = machine_loader_workers(batch_bytes, ranks)
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

    def finish(self, clock: Clock) -> TrainState:
        """Final validation, checkpoint and report (with the run's share of data waits)."""
        val = self.validate(self.model) if self.validate and self.rank == 0 else {}
        last = self.history[-1] if self.history else {"loss": float("nan"), "lr": 0.0}
        self._report(last["loss"], last["lr"], clock, val, clock.data_wait(), final=True)
        self.save()
        return self.state

    def resume(self) -> None:
        """Continue from the run's checkpoint: weights, optimizer, RNG, schedule, position."""
        from safetensors.torch import load_file

        from encoders.weights.checkpoint import WEIGHTS_FILE

        directory = self.checkpoint_dir
        assert directory is not None
        self.state, _ = load_training_state(directory, self.optimizer)
        self.model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)), strict=True)

    def save(self) -> None:
        """Checkpoint (rank 0): model, optimiser, RNG, position — only from finite weights."""
        if self.rank != 0 or self.checkpoint_dir is None:
            return
        extra = {"options": self.options.__dict__, "samples": self.state.samples}
        save_training_state(self.checkpoint_dir, self.model, self.optimizer, self.state, extra)

    def _report(
        self, loss: float, lr: float, clock: Clock, val: dict, wait: float,
        skipped: bool = False, final: bool = False,
    ) -> None:  # fmt: skip
        state = self.state
        elapsed = clock.elapsed()
        rate = clock.seconds_per_step(state.step, elapsed)
        per_second = self.samples_per_step / rate if rate else 0.0
        remaining = max(state.total_steps - state.step, 0) * (rate or 0.0)
        record = {
            "step": state.step, "epoch": state.epoch, "samples": state.samples,
            "elapsed_s": round(elapsed, 3), "loss": loss, "lr": lr,
            "samples_per_s": round(per_second, 1), "data_wait": round(wait, 4),
            "skipped_steps": state.skipped_steps, **{f"val_{k}": v for k, v in val.items()},
        }  # fmt: skip
        if skipped:
            record["skipped"] = True
        if final:
            record["final"] = True
        self.history.append(record)
        if self.rank != 0:
            return
        if self.layout is not None:
            self.layout.append_metrics(record)
        if self.callback:
            progress = Progress(
                state.step, state.total_steps, state.epoch, loss, lr, per_second,
                remaining, elapsed, dict(val), wait, state.skipped_steps,
            )  # fmt: skip
            self.callback(progress)
