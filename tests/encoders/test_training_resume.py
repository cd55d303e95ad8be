"""Device-free training checkpoints: a run saved elsewhere resumes here, exactly (CPU).

A GPU run's checkpoint differs from a CPU run's in three ways, each simulated here: its
options name a CUDA device, its batch size was the GPU's default, and its optimiser was
torch's fused AdamW. The GPU itself is exercised by ``test_training_gpu.py``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from encoders.training import loop
from encoders.training.layout import RunLayout
from encoders.training.main import TrainRequest, train_from_files
from encoders.training.state import STATE_JSON, STATE_TENSORS

pytestmark = pytest.mark.usefixtures("one_thread")


def _request(data: Path, out: Path, options, resume: bool = False) -> TrainRequest:
    return TrainRequest(
        data=data, out=out, model="tiny", image_size=32, text_tower="own",
        resume=resume, options=options,
    )  # fmt: skip


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(RunLayout(run).checkpoint / "model.safetensors"))


def test_a_run_saved_on_a_gpu_resumes_on_the_cpu_with_its_batch_size(
    synth: Path, small_options, stop_at, tmp_path: Path
):
    lines = (synth / "train.tsv").read_text().splitlines()[:161]  # header + 160 pairs
    data = synth / "train160.tsv"
    data.write_text("\n".join(lines) + "\n")
    options = small_options(epochs=1.2, batch_size=32)  # 6 steps, a checkpoint at step 3
    train_from_files(_request(data, tmp_path / "straight", options))
    with pytest.raises(stop_at.Interrupt):
        train_from_files(_request(data, tmp_path / "moved", options), stop_at(4))
    state_json = RunLayout(tmp_path / "moved").checkpoint / STATE_JSON
    payload = json.loads(state_json.read_text())
    assert payload["options"]["batch_size"] == 32 and payload["state"]["step"] == 3
    payload["options"]["device"] = "cuda:0"  # as a GPU run writes it
    state_json.write_text(json.dumps(payload))
    unset = replace(options, batch_size=None)  # the CPU's default (64) would change the run
    result = train_from_files(_request(data, tmp_path / "moved", unset, resume=True))
    assert result.state.step == 6
    straight, moved = _weights(tmp_path / "straight"), _weights(tmp_path / "moved")
    assert straight.keys() == moved.keys()
    for key in straight:
        assert torch.equal(straight[key], moved[key]), key


def test_fused_optimiser_state_resumes_into_the_default_optimiser(
    make_trainer, small_options, stop_at, monkeypatch, tmp_path: Path
):
    """A GPU run's fused AdamW state (saved to the host) loads into the CPU's AdamW."""
    try:
        torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], fused=True)
    except (RuntimeError, ValueError) as exc:
        pytest.skip(f"this torch has no fused AdamW on the CPU: {exc}")
    monkeypatch.setattr(loop, "fused_adamw", lambda device: True)
    options = small_options(epochs=1.2)  # 6 steps, a checkpoint at step 3
    fused = make_trainer(tmp_path, options, stop_at(4))
    assert fused.optimizer.defaults["fused"]
    with pytest.raises(stop_at.Interrupt):
        fused.run()
    saved = load_file(str(RunLayout(tmp_path).checkpoint / STATE_TENSORS))
    monkeypatch.setattr(loop, "fused_adamw", lambda device: False)
    resumed = make_trainer(tmp_path, options)
    assert not resumed.optimizer.defaults["fused"]
    resumed.resume()
    assert resumed.state.step == 3
    assert not any(group["fused"] for group in resumed.optimizer.param_groups)  # its own
    params = [p for group in resumed.optimizer.param_groups for p in group["params"]]
    for index, param in enumerate(params):
        slots = resumed.optimizer.state[param]
        assert float(slots["step"]) == 3.0
        assert slots["exp_avg"].device == param.device and slots["exp_avg"].dtype == param.dtype
        assert torch.equal(slots["exp_avg_sq"], saved[f"optimizer.{index}.exp_avg_sq"])
    state = resumed.run(resume=True)
    assert state.step == 6
    assert all(torch.isfinite(p).all() for p in resumed.model.parameters())
