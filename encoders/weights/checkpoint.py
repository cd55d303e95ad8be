"""Checkpoints: a directory with ``config.json`` + ``model.safetensors``; open_clip conversion.

Nothing here unpickles arbitrary objects: safetensors holds only tensors, and open_clip's
``.bin``/``.pt`` files are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from encoders.atomic import atomic_write, atomic_write_text
from encoders.errors import VitrieveError
from encoders.model.clip import CLIP, create_model
from encoders.model.config import CLIPConfig, read_config_json

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
MODEL_ID_CHARS = 16  # hex digits of the weights' SHA-256 kept as the model id
MAX_NAME_CHARS = 100  # a config's name as shown (it comes from an untrusted file)
ERROR_LINE_CHARS = 200  # an underlying error, as quoted in our one-line errors
_HASH_CHUNK = 1 << 22  # bytes read at a time while hashing weights

# open_clip block parameter names → ours (inside ``transformer.resblocks.{i}.`` / ``blocks.{i}.``)
_BLOCK_NAMES = {
    "ln_1": "norm1",
    "ln_2": "norm2",
    "attn.in_proj_weight": "attn.qkv.weight",
    "attn.in_proj_bias": "attn.qkv.bias",
    "attn.out_proj": "attn.proj",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
}
# Whole-tensor renames outside the blocks (open_clip → ours).
_TOP_NAMES = {
    "visual.class_embedding": "visual.class_token",
    "visual.positional_embedding": "visual.pos_embed",
    "visual.ln_pre": "visual.norm_pre",
    "visual.ln_post": "visual.norm",
    "token_embedding": "text.token_embed",
    "positional_embedding": "text.pos_embed",
    "ln_final": "text.norm",
    "transformer": "text.transformer",
}
_BLOCK_RE = re.compile(r"^(.*)transformer\.resblocks\.(\d+)\.(.+)$")


def _rename(name: str, table: dict[str, str]) -> str:
    for old, new in table.items():
        if name == old or name.startswith(old + "."):
            return new + name[len(old) :]
    return name


def from_openclip_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """open_clip's (CLIP-style ViT) state dict → ours. Transposed/reshaped where layouts differ."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor) or name.endswith("attn_mask"):
            continue
        match = _BLOCK_RE.match(name)
        if match:
            prefix, index, rest = match.groups()
            name = f"{prefix}transformer.blocks.{index}.{_rename(rest, _BLOCK_NAMES)}"
            name = "text." + name if not prefix else name
        elif name == "visual.conv1.weight":
            name, tensor = "visual.patch_embed.weight", tensor.reshape(tensor.shape[0], -1)
        elif name in ("visual.proj", "text_projection"):
            name = "visual.proj.weight" if name == "visual.proj" else "text.proj.weight"
            tensor = tensor.t()
        else:
            name = _rename(name, _TOP_NAMES)
        out[name] = tensor.contiguous()
    return out


def to_openclip_state_dict(model: CLIP) -> dict[str, torch.Tensor]:
    """Ours → open_clip's names and layouts (the inverse of ``from_openclip_state_dict``)."""
    inverse_top = {v: k for k, v in _TOP_NAMES.items()}
    inverse_block = {v: k for k, v in _BLOCK_NAMES.items()}
    patch = model.config.vision.patch_size
    out: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach()
        match = re.match(r"^(visual\.|text\.)transformer\.blocks\.(\d+)\.(.+)$", name)
        if match:
            tower, index, rest = match.groups()
            prefix = "visual." if tower == "visual." else ""
            name = f"{prefix}transformer.resblocks.{index}.{_rename(rest, inverse_block)}"
        elif name == "visual.patch_embed.weight":
            tensor = tensor.reshape(tensor.shape[0], 3, patch, patch)
            name = "visual.conv1.weight"
        elif name in ("visual.proj.weight", "text.proj.weight"):
            name = "visual.proj" if name.startswith("visual") else "text_projection"
            tensor = tensor.t()
        else:
            name = _rename(name, inverse_top)
        out[name] = tensor.contiguous()
    return out


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a ``.safetensors`` file or a ``.bin``/``.pt`` file, loaded without pickle."""
    if not path.is_file():
        raise VitrieveError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # torch's restricted unpickler met a non-tensor
        raise VitrieveError(
            f"refused weights {path}: it holds pickled objects, not only tensors ({_line(exc)})"
        ) from exc
    except Exception as exc:  # any failure to parse is the same user error
        raise VitrieveError(f"cannot read weights from {path}: {_line(exc)}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # an open_clip training checkpoint
    if not isinstance(state, dict):
        raise VitrieveError(f"{path} does not hold a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _line(exc: Exception) -> str:
    """An exception's first non-empty line, shortened: errors leave the CLI as one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:ERROR_LINE_CHARS]


def load_openclip_weights(config: CLIPConfig, path: Path) -> CLIP:
    """Build our CLIP for an open_clip architecture and fill it with open_clip weights."""
    state = from_openclip_state_dict(read_state_dict(path))  # refused before building
    model = create_model(config)
    _load_strict(model, state, source=str(path))
    return model


def _load_strict(model: CLIP, state: dict[str, torch.Tensor], source: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise VitrieveError(f"weights in {source} do not fit the model config: {exc}") from exc


def save_checkpoint(model: CLIP, directory: Path, extra: dict[str, Any] | None = None) -> str:
    """Write ``config.json`` + ``model.safetensors`` atomically; return the weights' id."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    weights = directory / WEIGHTS_FILE
    atomic_write(weights, lambda tmp: save_file(state, str(tmp)))
    model_id = file_digest(weights)
    meta = {**model.config.to_dict(), "vitrieve": {"model_id": model_id, **(extra or {})}}
    atomic_write_text(directory / CONFIG_FILE, json.dumps(meta, indent=2))
    return model_id


def load_checkpoint(directory: Path) -> tuple[CLIP, dict[str, Any]]:
    """A model and its ``vitrieve`` metadata (model id, training facts) from a directory."""
    config_path, weights = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not config_path.is_file() or not weights.is_file():
        raise VitrieveError(
            f"{directory} is not a checkpoint (needs {CONFIG_FILE} + {WEIGHTS_FILE})"
        )
    raw = read_config_json(config_path)
    config = CLIPConfig.from_dict(raw, name=str(raw.get("name", directory.name))[:MAX_NAME_CHARS])
    try:  # safetensors: a header and raw tensors, nothing executed (a pickle is refused)
        state = load_file(str(weights))
    except Exception as exc:
        raise VitrieveError(f"cannot read weights {weights}: {_line(exc)}") from exc
    try:  # a pretrained text tower named in the config may be missing or not a model
        model = create_model(config)
    except (OSError, ValueError) as exc:
        raise VitrieveError(f"cannot build the model of {directory}: {_line(exc)}") from exc
    _load_strict(model, state, source=str(weights))
    extra = raw.get("vitrieve")
    meta = dict(extra) if isinstance(extra, dict) else {}
    meta.setdefault("model_id", file_digest(weights))
    return model, meta


def file_digest(path: Path, length: int = MODEL_ID_CHARS) -> str:
    """A short content hash of a weights file: the model's identity in libraries."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()[:length]
