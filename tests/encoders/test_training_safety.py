"""The trainer's numerical safety, device defaults, data-wait records and accumulation (CPU)."""

from __future__ import annotations

import inspect
import json
import time

import pytest
import torch
from safetensors.torch import load_file

from encoders.errors import VitrieveError
from encoders.model.clip import create_model
from encoders.model.config import load_config
from encoders.model.tokenizer import get_tokenizer
from encoders.training import loop, steps
from encoders.training.captions import build_caption_table
from encoders.training.devices import attention_context, autocast, default_batch_size
from encoders.training.layout import RunLayout
from encoders.training.loop import MAX_NONFINITE_STEPS, NonFiniteLoss
from encoders.training.loss import contrastive_loss
from encoders.training.optim import make_optimizer, warmup_steps
from encoders.training.steps import (
    ContrastiveModule,
    TrainOptions,
    optimise,
    with_device_defaults,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _poison_losses(monkeypatch: pytest.MonkeyPatch, bad_calls: set[int] | None) -> list[int]:
    """Make the loss NaN on the given calls (1-based; None: from the third call on)."""
    calls = [0]

    def loss(*args, **kwargs):
        calls[0] += 1
        value = contrastive_loss(*args, **kwargs)
        bad = calls[0] >= 3 if bad_calls is None else calls[0] in bad_calls
        return value * float("nan") if bad else value

    monkeypatch.setattr(steps, "contrastive_loss", loss)
    return calls


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_a_nonfinite_step_is_skipped_and_counted(
    make_trainer, small_options, monkeypatch, tmp_path
):
    _poison_losses(monkeypatch, {2})
    weights: dict[int, dict] = {}
    options = small_options(epochs=0.8, checkpoint_every=0)  # 4 steps
    trainer = make_trainer(
        tmp_path, options, lambda p: weights.update({p.step: _snapshot(trainer.model)})
    )
    state = trainer.run()
    assert state.step == 4 and state.skipped_steps == 1
    assert all(torch.equal(weights[1][k], weights[2][k]) for k in weights[1])  # no update
    assert any(not torch.equal(weights[2][k], weights[3][k]) for k in weights[2])  # resumed
    adam_steps = {float(s["step"]) for s in trainer.optimizer.state.values()}
    assert adam_steps == {3.0}  # the optimiser stepped 3 times, not 4
    records = [json.loads(line) for line in RunLayout(tmp_path).metrics.open()]
    assert [r.get("skipped", False) for r in records[:4]] == [False, True, False, False]
    assert records[-1]["final"] and records[-1]["skipped_steps"] == 1
    saved = load_file(str(RunLayout(tmp_path).checkpoint / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in saved.values())
    meta = json.loads((RunLayout(tmp_path).checkpoint / "training_state.json").read_text())
    assert meta["state"]["skipped_steps"] == 1


def test_nonfinite_steps_in_a_row_stop_the_run_with_one_clear_line(
    make_trainer, small_options, monkeypatch, tmp_path
):
    _poison_losses(monkeypatch, None)  # steps 1-2 train, every step from 3 on is NaN
    weights: dict[int, dict] = {}
    options = small_options(epochs=4, checkpoint_every=2)
    trainer = make_trainer(
        tmp_path, options, lambda p: weights.update({p.step: _snapshot(trainer.model)})
    )
    last = 2 + MAX_NONFINITE_STEPS
    with pytest.raises(NonFiniteLoss) as caught:
        trainer.run()
    message = str(caught.value)
    assert isinstance(caught.value, VitrieveError) and "\n" not in message
    assert f"stopped at step {last}" in message and f"steps 3-{last}" in message
    assert "learning rate" in message and "data" in message
    assert max(weights) == last and trainer.state.skipped_steps == MAX_NONFINITE_STEPS
    saved = load_file(str(RunLayout(tmp_path).checkpoint / "model.safetensors"))
    for key, value in saved.items():  # the last checkpoint holds step 2's (finite) weights
        assert torch.equal(value, weights[2][key].float()), key


def test_a_checkpoint_is_never_written_from_nan_weights(make_trainer, small_options, tmp_path):
    trainer = make_trainer(tmp_path, small_options(epochs=0.2, checkpoint_every=0))
    trainer.run()
    weights = RunLayout(tmp_path).checkpoint / "model.safetensors"
    before = weights.read_bytes()
    name, param = next(iter(trainer.model.named_parameters()))
    with torch.no_grad():
        param.view(-1)[0] = float("nan")
    with pytest.raises(NonFiniteLoss, match=name):
        trainer.save()
    assert weights.read_bytes() == before


def test_defaults_have_one_source_and_depend_on_the_device():
    assert TrainOptions().batch_size is None  # filled in per device
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)  # cuda: only the object
    assert with_device_defaults(TrainOptions(), cpu).batch_size == default_batch_size(cpu) == 128
    assert with_device_defaults(TrainOptions(), cuda).batch_size == default_batch_size(cuda)
    assert with_device_defaults(TrainOptions(batch_size=8), cuda).batch_size == 8
    for function, name in ((make_optimizer, "weight_decay"), (warmup_steps, "fraction")):
        assert inspect.signature(function).parameters[name].default is inspect.Parameter.empty
    model = create_model(load_config("tiny"))
    optimizer = make_optimizer(model, 1e-3, TrainOptions().weight_decay)
    assert optimizer.param_groups[0]["weight_decay"] == TrainOptions().weight_decay == 0.1


def test_a_default_batch_larger_than_the_data_shrinks_to_it(make_trainer, small_options):
    # 160 pairs in 2 micro-batches a step: 80 per pass, under the CPU default (128)
    options = small_options(batch_size=None, accum=2, epochs=1, checkpoint_every=0)
    trainer = make_trainer(None, options)
    assert trainer.options.batch_size == 80 < default_batch_size(torch.device("cpu"))
    assert trainer.run().step == 1
    with pytest.raises(VitrieveError, match="fewer than one optimiser step"):
        make_trainer(None, small_options(batch_size=200, epochs=1))  # asked for: kept


def test_metrics_record_the_share_of_step_time_spent_waiting_for_data(
    make_trainer, small_options, monkeypatch, tmp_path
):
    slow = loop.make_batch

    def slow_batch(*args, **kwargs):
        time.sleep(1.0)
        return slow(*args, **kwargs)

    monkeypatch.setattr(loop, "make_batch", slow_batch)
    seen = []
    trainer = make_trainer(tmp_path, small_options(epochs=0.6, checkpoint_every=0), seen.append)
    trainer.run()
    records = [json.loads(line) for line in RunLayout(tmp_path).metrics.open()]
    steps_only = [r for r in records if not r.get("final")]
    assert len(steps_only) == 3 and all(0.3 < r["data_wait"] < 1.0 for r in steps_only)
    assert 0.3 < records[-1]["data_wait"] < 1.0
    assert seen[0].data_wait == pytest.approx(steps_only[0]["data_wait"], abs=1e-4)


def test_accumulation_gives_the_whole_batch_gradient():
    """``accum`` 2 over 16 pairs: two passes of 8 whose gradients add up to the gradient of one
    contrastive batch of 16 (every image against all 16 captions) — not to the average of two
    separate batches of 8, whose negatives would be 8 captions each."""
    torch.manual_seed(0)
    model = create_model(load_config("tiny").with_image_size(32))
    module = ContrastiveModule(model, cached_text=False)
    params = [p for p in model.parameters() if p.requires_grad]
    images, text = torch.randn(16, 3, 32, 32), torch.randint(1, 400, (16, 8))
    cpu = torch.device("cpu")

    def gradient(groups: list[slice]) -> torch.Tensor:
        """The mean over ``groups`` of each group's own contrastive-loss gradient."""
        model.zero_grad()
        for rows in groups:
            with attention_context(cpu), autocast(cpu):
                out = module(images[rows], text[rows], None)
            loss = contrastive_loss("clip", out[0], out[1], out[3], out[4]) / len(groups)
            loss.backward()
        return torch.cat([_flat_grad(p) for p in params])

    whole, halves = gradient([slice(0, 16)]), gradient([slice(0, 8), slice(8, 16)])
    model.zero_grad()
    start = [p.detach().clone() for p in params]
    sgd = torch.optim.SGD(params, lr=1.0)  # one step of lr 1: the weights move by −gradient
    assert optimise(module, sgd, (images, text, None, None), TrainOptions(accum=2)).updated
    moved = zip(start, params, strict=True)
    accumulated = torch.cat([(before - p.detach()).flatten() for before, p in moved])
    assert (accumulated - whole).norm() < 0.01 * whole.norm()
    assert (halves - whole).norm() > 10 * (accumulated - whole).norm()


def _flat_grad(param: torch.nn.Parameter) -> torch.Tensor:
    return (torch.zeros_like(param) if param.grad is None else param.grad).flatten()


@pytest.mark.parametrize("clip", [0.0, 1e-3])
def test_grad_clip_bounds_the_step_by_the_global_norm(clip: float):
    """With ``grad_clip`` the whole gradient is rescaled to that norm before the update (one
    SGD step of lr 1 moves the weights by exactly the clipped gradient); without it, by the
    raw gradient, whose norm is far above 1e-3 at a random start."""
    torch.manual_seed(0)
    model = create_model(load_config("tiny").with_image_size(32))
    module = ContrastiveModule(model, cached_text=False)
    params = [p for p in model.parameters() if p.requires_grad]
    start = [p.detach().clone() for p in params]
    batch = (torch.randn(8, 3, 32, 32), torch.randint(1, 400, (8, 8)), None, None)
    sgd = torch.optim.SGD(params, lr=1.0)
    assert optimise(module, sgd, batch, TrainOptions(grad_clip=clip)).updated
    pairs = zip(start, params, strict=True)
    moved = torch.cat([(before - p.detach()).flatten() for before, p in pairs])
    if clip:
        assert moved.norm().item() == pytest.approx(clip, rel=1e-3)
    else:
        assert moved.norm().item() > 100 * 1e-3


def test_several_hard_negatives_per_image_keep_their_images_rows():
    """``negatives_per_image`` N > 1: each image's caption brings its first N negatives (N
    consecutive rows, masked where a caption has fewer), and accumulation slices them with
    their images — ``accum`` 2 gives the same update as one pass over the whole batch."""
    config = load_config("tiny").with_image_size(32)
    tokenizer = get_tokenizer(config.text)
    colours, shapes = ("red", "blue", "green", "pink"), ("circle", "square", "star", "heart")
    captions = [f"a {c} {s}" for c in colours for s in shapes]
    table = build_caption_table(captions, tokenizer, negatives_per_caption=3)
    images = torch.zeros(len(captions), 3, 32, 32, dtype=torch.uint8)
    data = steps.TrainData(images, captions, table)
    options = TrainOptions(negatives_per_image=3, grey_fraction=0.0, flip=False, min_scale=1.0)
    index = torch.arange(8)
    batch = steps.make_batch(data, index, options, torch.Generator())
    _, text, negatives, mask = batch
    expected = table.negatives[table.index_of(captions[:8])][:, :3].reshape(-1)
    assert negatives.shape[0] == 24 and torch.equal(mask, expected >= 0) and mask.all()
    assert torch.equal(negatives, table.tokens[expected.clamp(min=0)][:, : negatives.shape[1]])

    torch.manual_seed(0)
    model = create_model(config)
    module = ContrastiveModule(model, cached_text=False)
    params = [p for p in model.parameters() if p.requires_grad]
    pixels = torch.randn(8, 3, 32, 32)
    batch = (pixels, text, negatives, mask)

    def moved(accum: int) -> torch.Tensor:
        start = [p.detach().clone() for p in params]
        sgd = torch.optim.SGD(params, lr=1.0)
        assert optimise(module, sgd, batch, TrainOptions(accum=accum)).updated
        delta = torch.cat([(b - p.detach()).flatten() for b, p in zip(start, params, strict=True)])
        with torch.no_grad():
            for b, p in zip(start, params, strict=True):
                p.copy_(b)
        return delta

    whole, accumulated = moved(1), moved(2)
    assert (accumulated - whole).norm() < 0.01 * whole.norm()
