"""Training state for ``--resume``: tensors in safetensors, everything else in JSON.

A run's checkpoint directory (``layout.RunLayout.checkpoint``) holds the model
(``config.json`` + ``model.safetensors``, the same format as any checkpoint) and beside it
``training_state.safetensors`` (optimizer moments, RNG state) and ``training_state.json``
(step, epoch, data position, schedule, options). Nothing is pickled, so a run directory from
elsewhere cannot execute code when resumed. A checkpoint is only written from finite weights,
so the last one on disk is always one that can be resumed or served.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from encoders.atomic import atomic_write, atomic_write_text
from encoders.errors import VitrieveError
from encoders.model.clip import CLIP
from encoders.weights.checkpoint import save_checkpoint

STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"
# Optimiser settings that say how to compute (fused CUDA kernel, foreach), not what: a run
# saved on a GPU (fused) and resumed on the CPU keeps the resuming optimiser's own.
IMPLEMENTATION_KEYS = ("fused", "foreach", "capturable", "differentiable")


class NonFiniteLoss(VitrieveError):
    """The loss stayed non-finite for too many steps in a row, or the weights went non-finite."""


@dataclass
class TrainState:
    """Where a run is: enough, with the optimizer, to continue it exactly."""

    step: int = 0  # optimiser steps done
    epoch: int = 0
    position: int = 0  # samples of this epoch's order already used (global, all ranks)
    total_steps: int = 0  # 0 until known (wall-clock budgets estimate it after a few steps)
    warmup: int = 0
    elapsed_s: float = 0.0  # training time used, for wall-clock budgets
    samples: int = 0
    skipped_steps: int = 0  # steps whose loss was not finite: no update was made


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict[str, Any]]:
    """Split an optimizer state dict into named tensors and JSON-able metadata."""
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for index, slots in state_dict["state"].items():
        for name, value in slots.items():
            tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value).detach().cpu()
    groups = [{k: v for k, v in g.items()} for g in state_dict["param_groups"]]
    return tensors, {"param_groups": groups}


def save_training_state(
    directory: Path,
    model: CLIP,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    extra: dict[str, Any],
) -> None:
    """Write model + training state into ``directory`` (each file atomically); refused
    (``NonFiniteLoss``) when a weight is not finite: the last checkpoint stays as it was."""
    bad = nonfinite_parameters(model)
    if bad:
        raise NonFiniteLoss(
            f"not writing a checkpoint to {directory}: {len(bad)} weight tensors hold NaN or "
            f"infinite values (first: {bad[0]}); the last checkpoint written is unchanged"
        )
    save_checkpoint(model, directory, extra={"train": {"step": state.step, **extra}})
    tensors, meta = _optimizer_tensors(optimizer)
    tensors["rng.torch"] = torch.get_rng_state()
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    atomic_write(directory / STATE_TENSORS, lambda tmp: save_file(tensors, str(tmp)))
    payload = {"state": asdict(state), "optimizer": meta, **extra}
    atomic_write_text(directory / STATE_JSON, json.dumps(payload, indent=2, default=list))


def load_training_state(
    directory: Path, optimizer: torch.optim.Optimizer
) -> tuple[TrainState, dict[str, Any]]:
    """Restore the optimizer and the torch RNG; return the state and the saved extras.

    Tensors are read to the host (a checkpoint names no device); ``load_state_dict`` then
    moves each optimiser moment to its parameter's device, so a run saved on a GPU resumes
    on the CPU and the other way round.
    """
    json_path, tensor_path = directory / STATE_JSON, directory / STATE_TENSORS
    if not json_path.is_file() or not tensor_path.is_file():
        raise VitrieveError(f"nothing to resume in {directory} (no {STATE_JSON})")
    try:
        payload = json.loads(json_path.read_text(encoding="utf-8"))
        tensors = load_file(str(tensor_path))
    except (OSError, ValueError) as exc:
        raise VitrieveError(f"cannot read the training state in {directory}: {exc}") from exc
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            slots.setdefault(int(index), {})[name] = value
    groups = payload["optimizer"]["param_groups"]
    for group, current in zip(groups, optimizer.param_groups, strict=False):
        group["betas"] = tuple(group.get("betas", (0.9, 0.999)))
        for key in IMPLEMENTATION_KEYS:  # this device's implementation, not the saver's
            if key in current:
                group[key] = current[key]
    optimizer.load_state_dict({"state": slots, "param_groups": groups})
    torch.set_rng_state(tensors["rng.torch"])
    extras = {k: v for k, v in payload.items() if k not in ("state", "optimizer")}
    return TrainState(**payload["state"]), extras


def saved_options(directory: Path) -> dict[str, Any]:
    """The options a run in ``directory`` was saved with ({} when there is none to read):
    a resumed run takes its batch size from here when none is asked for, since the default
    depends on the device and the run may continue on another one."""
    try:
        payload = json.loads((directory / STATE_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    options = payload.get("options") if isinstance(payload, dict) else None
    return options if isinstance(options, dict) else {}


def nonfinite_parameters(model: nn.Module) -> list[str]:
    """Names of the parameters and buffers holding a NaN or an infinity."""
    named = [*model.named_parameters(), *model.named_buffers()]
    return [
        name
        for name, tensor in named
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
