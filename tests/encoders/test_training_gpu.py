"""The trainer on a CUDA device (``gpu``-marked: skipped without one; ``make gpu-check``).

What the CPU tests cannot show: the model, optimiser state and batches really on the GPU,
the fused kernels running, resume on the GPU, and a GPU run resumed on the CPU.
CUDA kernels are not bitwise deterministic (atomics in some backward passes), so resumes are
compared by how far the weights are from the uninterrupted run, relative to how far those
steps moved them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from encoders.training.devices import default_batch_size
from encoders.training.finetune import FinetuneOptions, finetune_folder
from encoders.training.layout import RunLayout
from encoders.training.main import TrainRequest, train_from_files
from encoders.training.steps import TrainOptions

pytestmark = pytest.mark.gpu


def _flat(weights: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([weights[k].float().flatten().cpu() for k in sorted(weights)])


def test_training_runs_on_the_gpu_with_everything_there(make_trainer, small_options, tmp_path):
    trainer = make_trainer(tmp_path, small_options(epochs=0.6, device="cuda"))
    assert trainer.device.type == "cuda"
    assert trainer.data.images.device.type == "cuda"
    assert all(p.device.type == "cuda" for p in trainer.model.parameters())
    assert trainer.optimizer.defaults.get("fused")
    start = _flat(trainer.model.state_dict())
    state = trainer.run()
    assert state.step == 3 and state.skipped_steps == 0
    slots = [s for s in trainer.optimizer.state.values()]
    assert slots and all(s["exp_avg"].device.type == "cuda" for s in slots)
    saved = load_file(str(RunLayout(tmp_path).checkpoint / "model.safetensors"))
    assert all(t.device.type == "cpu" and torch.isfinite(t).all() for t in saved.values())
    assert not torch.equal(start, _flat(saved))
    records = [json.loads(line) for line in RunLayout(tmp_path).metrics.open()]
    assert all(0.0 <= r["data_wait"] <= 1.0 for r in records)


def test_resume_on_the_gpu_and_on_the_cpu(make_trainer, small_options, stop_at, tmp_path: Path):
    options = small_options(epochs=1.2, device="cuda")  # 6 steps, a checkpoint at step 3
    straight = make_trainer(tmp_path / "straight", options)
    straight.run()
    broken = make_trainer(tmp_path / "gpu", options, stop_at(4))
    with pytest.raises(stop_at.Interrupt):
        broken.run()
    at_three = _flat(load_file(str(RunLayout(tmp_path / "gpu").checkpoint / "model.safetensors")))
    cpu_dir = tmp_path / "cpu"
    shutil.copytree(tmp_path / "gpu", cpu_dir)  # the GPU run's step-3 checkpoint
    on_gpu = make_trainer(tmp_path / "gpu", options)
    assert on_gpu.run(resume=True).step == 6
    on_cpu = make_trainer(cpu_dir, small_options(epochs=1.2, device="cpu"))
    assert on_cpu.run(resume=True).step == 6
    assert all(group["fused"] for group in on_gpu.optimizer.param_groups)
    assert not any(group["fused"] for group in on_cpu.optimizer.param_groups)
    reference = _flat(
        load_file(str(RunLayout(tmp_path / "straight").checkpoint / "model.safetensors"))
    )
    moved = (reference - at_three).norm()
    gpu_resumed = _flat(
        load_file(str(RunLayout(tmp_path / "gpu").checkpoint / "model.safetensors"))
    )
    cpu_resumed = _flat(on_cpu.model.state_dict())
    assert (gpu_resumed - reference).norm() < 0.01 * moved  # exact up to kernel order
    assert (cpu_resumed - reference).norm() < 0.25 * moved  # another device's arithmetic
    assert torch.isfinite(cpu_resumed).all()


def test_train_from_files_with_validation_on_the_gpu(synth: Path, tmp_path: Path):
    """The default recipe (locked MiniLM cached on the GPU) with the GPU's default batch."""
    options = TrainOptions(epochs=2, seed=0, device="cuda")
    request = TrainRequest(
        data=synth / "train.tsv", val=synth / "test.tsv", out=tmp_path / "run",
        image_size=32, options=options,
    )  # fmt: skip
    result = train_from_files(request)
    assert result.final["top1"] > 1 / 64 and result.samples_per_s > 0
    saved = json.loads((RunLayout(tmp_path / "run").checkpoint / "training_state.json").read_text())
    assert saved["options"]["batch_size"] == default_batch_size(torch.device("cuda")) > 64


def test_finetune_on_the_gpu(class_folders, tmp_path: Path):
    data, checkpoint = class_folders
    for probe in (True, False):
        options = FinetuneOptions(epochs=4, batch_size=8, linear_probe=probe, device="cuda")
        result = finetune_folder(data, checkpoint, tmp_path / "run", options)
        assert 0.0 <= result["accuracy"] <= 1.0
        assert result["train_accuracy"] >= 0.5


def test_streamed_data_on_the_gpu_matches_preloaded(make_trainer, small_options, tmp_path):
    """Pinned, prefetched uint8 batches from loader workers, augmented on the GPU."""
    runs = {}
    for stream in (False, True):
        options = small_options(epochs=0.6, device="cuda", stream=stream)
        trainer = make_trainer(tmp_path / str(stream), options)
        assert trainer.run().step == 3
        runs[stream] = _flat(trainer.model.state_dict())
    start = _flat(make_trainer(None, small_options(device="cpu")).model.state_dict())
    assert (runs[True] - runs[False]).norm() < 0.01 * (runs[False] - start).norm()


def test_accumulation_on_the_gpu_keeps_the_whole_batch(make_trainer, small_options):
    """Two passes of 16 on the GPU: the first step's loss is that of one batch of 32."""
    losses = {}
    for batch, accum in ((32, 1), (16, 2)):
        options = small_options(epochs=0.2, batch_size=batch, accum=accum, device="cuda")
        trainer = make_trainer(None, options)
        trainer.run()
        losses[accum] = trainer.history[0]["loss"]
    assert losses[2] == pytest.approx(losses[1], rel=1e-2)
