"""Fixtures shared by the trainer's tests (CPU and ``gpu``-marked): a small synthetic set, a
factory for short, fast trainers on it, class folders for fine-tuning, an interrupting
callback, and one intra-op thread (opt-in: ``pytestmark = pytest.mark.usefixtures(...)``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from encoders.data.datasets import write_synthetic
from encoders.data.synthetic import render_object
from encoders.model.clip import create_model
from encoders.model.config import load_config
from encoders.model.tokenizer import get_tokenizer
from encoders.training.data import read_captioned
from encoders.training.loop import Trainer, TrainOptions
from encoders.training.main import prepare_data
from encoders.weights.checkpoint import save_checkpoint

SMALL_ITEMS = 160  # 5 steps of 32 per epoch


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,200 training and 400 test pairs of the synthetic shapes at 64 px."""
    out = tmp_path_factory.mktemp("synth")
    write_synthetic(out, 1200, 400, size_px=64, seed=0, workers=1)
    return out


def _small_options(**changes) -> TrainOptions:
    base = TrainOptions(batch_size=32, lr=1e-3, seed=3, checkpoint_every=3, device="cpu")
    return replace(base, **changes)


@pytest.fixture
def small_options() -> Callable[..., TrainOptions]:
    """``small_options(**changes)``: batch 32, lr 1e-3, seed 3, a checkpoint every 3 steps,
    on the CPU, with ``changes`` applied."""
    return _small_options


MakeTrainer = Callable[..., Trainer]


@pytest.fixture
def make_trainer(synth: Path) -> MakeTrainer:
    """``make_trainer(run_dir, options, callback=None)``: the tiny model at 32 px (own text
    tower) on the first 160 training pairs; the same start weights every time."""

    def build(run_dir: Path | None, options: TrainOptions, callback=None) -> Trainer:
        torch.manual_seed(0)
        config = load_config("tiny").with_image_size(32)
        tokenizer = get_tokenizer(config.text)
        model = create_model(config, tokenizer)
        items = read_captioned(synth / "train.tsv")[:SMALL_ITEMS]
        data = prepare_data(items, model, tokenizer, options)
        return Trainer(model, data, options, run_dir, callback)

    return build


class StepInterrupt(Exception):
    """Raised by a ``stop_at`` callback: the run dies as if killed after that step."""


class StopAt:
    """``stop_at(step)``: a progress callback raising ``stop_at.Interrupt`` at that step."""

    Interrupt = StepInterrupt

    def __call__(self, step: int) -> Callable:
        def callback(progress) -> None:
            if progress.step == step:
                raise StepInterrupt(step)

        return callback


@pytest.fixture
def stop_at() -> StopAt:
    return StopAt()


@pytest.fixture
def one_thread():
    """One intra-op thread: on a shared 2-core machine it is the faster (and steadier) choice."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def class_folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data, checkpoint): two class folders of 12 rendered images, and an untrained tiny
    checkpoint to fine-tune."""
    root = tmp_path_factory.mktemp("ft")
    for colour, shape in (("red", "circle"), ("blue", "square")):
        (root / "data" / f"{colour} {shape}").mkdir(parents=True)
        for seed in range(12):
            image = render_object(colour, shape, 64, seed=seed, background="textured")
            image.save(root / "data" / f"{colour} {shape}" / f"{seed}.png")
    torch.manual_seed(0)
    save_checkpoint(create_model(load_config("tiny")), root / "ckpt")
    return root / "data", root / "ckpt"
