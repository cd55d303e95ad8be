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
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from encoders.clip import CLIP
from encoders.loss import contrastive_loss
from encoders.tokenizer import trim_padding
from encoders.training.captions import CaptionTable
from encoders.training.data import augment_batch
from encoders.training.optim import CosineSchedule, estimate_total_steps, make_optimizer
from encoders.training.state import TrainState, load_training_state, save_training_state

log = logging.getLogger(__name__)

PROBE_STEPS = 5  # steps timed before a wall-clock budget is turned into a step count
PROVISIONAL_WARMUP = 50  # warm-up used until the first estimate of the total
# The fused CPU flash-attention kernel's backward is ~10× slower than its forward at our
# sequence lengths (65 image, ~17 text tokens): the plain matmul-softmax path trains faster.
TRAIN_ATTENTION = [SDPBackend.MATH]


@dataclass(frozen=True)
class TrainOptions:
    """How to train (not what): loss, batch, schedule, augmentation, checkpointing."""

    loss: str = "clip"
    batch_size: int = 256  # per process
    lr: float = 1e-3
    weight_decay: float = 0.1
    epochs: float | None = None
    minutes: float | None = None
    accum: int = 1
    hard_negatives: bool = True
    min_scale: float = 0.6
    flip: bool = True
    warmup_fraction: float = 0.05
    checkpoint_every: int = 0  # steps; 0 = only at the end
    val_every: int = 0  # steps; 0 = about ten times per run
    seed: int = 0
    threads: int = 0  # intra-op threads; 0 = measured (budget runs) or torch's default


@dataclass
class TrainData:
    """Preloaded training tensors; ``text_features`` when the text tower is locked and cached."""

    images: torch.Tensor  # (N, 3, S, S) uint8
    captions: list[str]
    table: CaptionTable
    text_features: torch.Tensor | None = None  # (U, H): locked tower outputs per caption


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


class ContrastiveModule(nn.Module):
    """CLIP plus the training-time text path: tokens, or cached locked-tower features.

    One module so DDP sees every trainable parameter used in one ``forward``.
    """

    def __init__(self, clip: CLIP, cached_text: bool) -> None:
        super().__init__()
        self.clip = clip
        self.cached_text = cached_text

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        if self.cached_text:
            return F.normalize(self.clip.text.proj(text), dim=-1)
        return self.clip.encode_text(text)

    def forward(self, images: torch.Tensor, text: torch.Tensor, negatives: torch.Tensor | None):
        image_emb = self.clip.encode_image(images)
        both = text if negatives is None else torch.cat([text, negatives])
        text_emb = self.encode_text(both)
        text_part, negative_part = text_emb[: len(text)], text_emb[len(text) :]
        bias = self.clip.logit_bias
        negatives_out = negative_part if negatives is not None else None
        return image_emb, text_part, negatives_out, self.clip.temperature_scale(), bias


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def epoch_order(count: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of an epoch: a permutation seeded by (seed, epoch)."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 1009 + rank)


def _text_input(data: TrainData, index: torch.Tensor) -> torch.Tensor:
    if data.text_features is not None:
        return data.text_features[index]
    return data.table.tokens[index]


def make_batch(
    data: TrainData, indices: torch.Tensor, options: TrainOptions, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Augmented images, caption input, and one hard negative per image (+ validity mask)."""
    captions = [data.captions[i] for i in indices.tolist()]
    images, captions = augment_batch(
        data.images[indices], captions, options.min_scale, options.flip, generator=generator
    )
    caption_index = data.table.index_of(captions)
    text = _text_input(data, caption_index)
    if not options.hard_negatives:
        return images, _trim(data, text), None, None
    rows = data.table.negatives[caption_index]  # (B, K), −1 = none
    valid_per_row = (rows >= 0).sum(dim=1)
    pick = (torch.rand(len(rows), generator=generator) * valid_per_row.clamp(min=1)).long()
    negative_index = rows.gather(1, pick[:, None]).squeeze(1)
    mask = negative_index >= 0
    negatives = _text_input(data, negative_index.clamp(min=0))
    if data.text_features is None:  # trim captions and negatives to one common length
        both = trim_padding(torch.cat([text, negatives]), data.table.pad_id)
        text, negatives = both[: len(text)], both[len(text) :]
    return images, text, negatives, mask


def _trim(data: TrainData, text: torch.Tensor) -> torch.Tensor:
    return text if data.text_features is not None else trim_padding(text, data.table.pad_id)


def optimise(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: tuple,
    options: TrainOptions,
) -> float:
    """One optimiser step over ``accum`` micro-batches (DDP syncs on the last one only)."""
    images, text, negatives, mask = batch
    chunks = max(options.accum, 1)
    total = 0.0
    for i in range(chunks):
        part = slice(i * len(images) // chunks, (i + 1) * len(images) // chunks)
        sync = i == chunks - 1 or not hasattr(module, "no_sync")
        with nullcontext() if sync else module.no_sync(), sdpa_kernel(TRAIN_ATTENTION):
            with torch.autocast(images.device.type, dtype=torch.bfloat16):
                neg = None if negatives is None else negatives[part]
                image_emb, text_emb, neg_emb, scale, bias = module(images[part], text[part], neg)
            part_mask = None if mask is None else mask[part]
            loss = contrastive_loss(
                options.loss, image_emb, text_emb, scale, bias, neg_emb, part_mask
            )
            (loss / chunks).backward()
        total += float(loss.detach()) / chunks
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total


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
            self.state.warmup = max(1, int(total * self.options.warmup_fraction))

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
            state.warmup = max(
                1, min(PROVISIONAL_WARMUP, int(total * self.options.warmup_fraction))
            )
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
