"""Typed, frozen model configuration in open_clip's JSON schema.

A config round-trips through ``to_dict``/``from_dict`` as the same JSON open_clip writes
(``embed_dim``, ``vision_cfg{...}``, ``text_cfg{...}``), so open_clip's model files and ours
describe architectures the same way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from encoders.errors import VitrieveError
from encoders.model.limits import validate

CLIP_INIT_TEMPERATURE = 0.07  # CLIP paper: logit scale initialised to log(1 / 0.07)
MAX_CONFIG_BYTES = 1 << 20  # a model config is a few hundred bytes of JSON

VISION_POOLS = {"tok": "cls", "avg": "mean"}  # open_clip name -> ours
POS_EMBEDS = {"learnable": "learned", "sin_cos_2d": "sincos"}
VISION_INITS = ("clip", "sincos", "mimetic")  # how a fresh ViT starts (encoders/model/init.py)
# open_clip's words for what a Hugging Face tower of ours does (encoders/model/hf_text.py): a masked
# mean of the last hidden states, then a linear projection
HF_POOLER, HF_PROJECTION = "mean_pooler", "linear"


@dataclass(frozen=True)
class VisionConfig:
    """The ViT: image → P×P patches → tokens → pre-norm blocks → pooled embedding."""

    image_size: int = 224
    patch_size: int = 16  # open_clip's default: what a config that omits it means
    width: int = 768
    layers: int = 12
    head_width: int = 64
    mlp_ratio: float = 4.0
    pool: str = "cls"  # "cls": the class token; "mean": mean of the patch tokens
    pos_embed: str = "learned"  # "learned" (ViT, CLIP) or "sincos" (fixed 2-D sin-cos)
    norm_pre: bool = True  # CLIP's LayerNorm before the blocks (not in the ViT paper)
    # Starting weights only (same parameters, so open_clip builds and loads the model):
    # "clip" random; "sincos" learned positions start as 2-D sin-cos; "mimetic" attention
    # starts near W_q W_kᵀ ∝ I, W_v W_o ∝ −I (encoders/model/init.py).
    init: str = "clip"

    @property
    def heads(self) -> int:
        return self.width // self.head_width

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size


@dataclass(frozen=True)
class TextConfig:
    """The text Transformer, or a pretrained Hugging Face tower when ``hf_model`` is set."""

    context_length: int = 77
    vocab_size: int = 49408
    width: int = 512
    heads: int = 8
    layers: int = 12
    mlp_ratio: float = 4.0
    # a pretrained tower's Hugging Face name (encoders/model/hf_text.py), e.g. MiniLM's
    # "sentence-transformers/all-MiniLM-L6-v2"; the sizes above are then that tower's own
    hf_model: str | None = None
    lock: bool = False  # freeze a pretrained tower during training


@dataclass(frozen=True)
class CLIPConfig:
    """Both towers, the joint embedding size and the contrastive temperature."""

    embed_dim: int = 512
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    quick_gelu: bool = False  # OpenAI's original weights use x * sigmoid(1.702 x)
    init_logit_scale: float = math.log(1 / CLIP_INIT_TEMPERATURE)
    init_logit_bias: float | None = None  # set for the sigmoid (SigLIP) loss
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        """open_clip's JSON schema (plus a few keys of ours that open_clip ignores)."""
        v, t = self.vision, self.text
        vision_cfg: dict[str, Any] = {
            "image_size": v.image_size,
            "layers": v.layers,
            "width": v.width,
            "patch_size": v.patch_size,
            "head_width": v.head_width,
            "mlp_ratio": v.mlp_ratio,
            "pool_type": _openclip_name(VISION_POOLS, v.pool),
            "pos_embed_type": _openclip_name(POS_EMBEDS, v.pos_embed),
            "no_ln_pre": not v.norm_pre,
        }
        text_cfg: dict[str, Any] = {
            "context_length": t.context_length,
            "vocab_size": t.vocab_size,
            "width": t.width,
            "heads": t.heads,
            "layers": t.layers,
            "mlp_ratio": t.mlp_ratio,
        }
        if t.hf_model:
            text_cfg.update(hf_model_name=t.hf_model, hf_tokenizer_name=t.hf_model)
            text_cfg.update(hf_pooler_type=HF_POOLER, hf_proj_type=HF_PROJECTION)
        out: dict[str, Any] = {"embed_dim": self.embed_dim, "quick_gelu": self.quick_gelu}
        out.update(vision_cfg=vision_cfg, text_cfg=text_cfg)
        out["init_logit_scale"] = self.init_logit_scale
        if v.init != "clip":  # top level: open_clip's vision_cfg has no such key
            out["vision_init"] = v.init
        if t.lock:  # top level too: open_clip's text_cfg has no such key
            out["lock_text"] = True
        if self.init_logit_bias is not None:
            out["init_logit_bias"] = self.init_logit_bias
        if self.name:
            out["name"] = self.name
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str = "") -> CLIPConfig:
        """Parse open_clip's schema; refuse what our encoders cannot build, and absurd sizes."""
        if not isinstance(data, dict):
            raise VitrieveError(f"invalid model config {name}: not a JSON object")
        try:
            vision = _vision_from_dict(dict(data["vision_cfg"]), data.get("vision_init", "clip"))
            text = _text_from_dict(dict(data["text_cfg"]), data.get("lock_text"))
            config = cls(
                embed_dim=int(data["embed_dim"]),
                vision=vision,
                text=text,
                quick_gelu=bool(data.get("quick_gelu", False)),
                init_logit_scale=float(data.get("init_logit_scale", cls.init_logit_scale)),
                init_logit_bias=_optional_float(data.get("init_logit_bias")),
                name=str(data.get("name", name)),
            )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise VitrieveError(f"invalid model config {name or ''}: {exc!r}") from exc
        validate(config)
        return config

    def with_image_size(self, image_size: int) -> CLIPConfig:
        return replace(self, vision=replace(self.vision, image_size=image_size))


def _openclip_name(names: dict[str, str], ours: str) -> str:
    """open_clip's word for one of our option values (``names`` maps theirs → ours)."""
    return next(theirs for theirs, value in names.items() if value == ours)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _single_int(value: Any) -> int:
    if isinstance(value, list | tuple):
        if len(set(value)) != 1:
            raise VitrieveError(f"only square images and patches are supported, got {value}")
        value = value[0]
    return int(value)


# Each section's sizes with their types; a size left out of the JSON takes the default.
_VISION_SIZES: dict[str, Callable[[Any], Any]] = {
    "image_size": _single_int, "patch_size": _single_int, "width": int, "layers": int,
    "head_width": int, "mlp_ratio": float,
}  # fmt: skip
_TEXT_SIZES: dict[str, Callable[[Any], Any]] = {
    "context_length": int, "vocab_size": int, "width": int, "heads": int, "layers": int,
    "mlp_ratio": float,
}  # fmt: skip
_VISION_IGNORED = {"pool_type", "pos_embed_type", "no_ln_pre", "output_tokens"}
_TEXT_IGNORED = {"hf_model_name", "lock", "hf_tokenizer_name", "hf_pooler_type", "hf_proj_type"}


def _sizes(d: dict[str, Any], defaults: object, types: dict[str, Callable[[Any], Any]]) -> dict:
    """A section's sizes, each of its type; one left out takes ``defaults``' value."""
    return {key: cast(d.get(key, getattr(defaults, key))) for key, cast in types.items()}


def _reject_unknown(section: str, data: dict[str, Any], known: set[str]) -> None:
    # Options we do not implement (timm towers, attentional pooling, ...) would silently
    # build a different network than the config describes: refuse them instead.
    unknown = sorted(k for k, v in data.items() if k not in known and v not in (None, False))
    if unknown:
        raise VitrieveError(f"unsupported {section} options in model config: {', '.join(unknown)}")


def _vision_from_dict(d: dict[str, Any], init: Any = "clip") -> VisionConfig:
    _reject_unknown("vision_cfg", d, set(_VISION_SIZES) | _VISION_IGNORED)
    base = VisionConfig()  # the defaults: what a key left out of the JSON means
    pool = d.get("pool_type", _openclip_name(VISION_POOLS, base.pool))
    pos = d.get("pos_embed_type", _openclip_name(POS_EMBEDS, base.pos_embed))
    if pool not in VISION_POOLS or pos not in POS_EMBEDS:
        raise VitrieveError(f"unsupported vision pool_type={pool!r} / pos_embed_type={pos!r}")
    if init not in VISION_INITS:
        raise VitrieveError(f"unsupported vision_init={init!r}: use one of {VISION_INITS}")
    return VisionConfig(
        **_sizes(d, base, _VISION_SIZES),
        pool=VISION_POOLS[pool],
        pos_embed=POS_EMBEDS[pos],
        norm_pre=not bool(d.get("no_ln_pre", not base.norm_pre)),
        init=init,
    )


def _text_from_dict(d: dict[str, Any], lock: Any = None) -> TextConfig:
    """``lock``: the top-level ``lock_text``; older files kept it in ``text_cfg``."""
    _reject_unknown("text_cfg", d, set(_TEXT_SIZES) | _TEXT_IGNORED)
    base = TextConfig()
    return TextConfig(
        **_sizes(d, base, _TEXT_SIZES),
        hf_model=d.get("hf_model_name"),
        lock=bool(d.get("lock", base.lock) if lock is None else lock),
    )


# Our built-ins. `tiny` trains on a 2-core CPU in minutes: 64 px images in 16 px patches (a
# 4×4 grid: ~2.7× the samples per CPU-second of 8 px patches, which learned more in a fixed
# time on two data families — docs/training.md, "Patch size") and short captions. Its ViT
# is 128 wide and 4 deep (docs/decisions.md, 2026-11-23, "The tiny ViT").
BUILTIN: dict[str, CLIPConfig] = {
    "tiny": CLIPConfig(
        embed_dim=256,
        vision=VisionConfig(
            image_size=64, patch_size=16, width=128, layers=4, head_width=64, init="sincos"
        ),
        text=TextConfig(context_length=32, width=256, heads=4, layers=4),
        name="tiny",
    ),
    "small": CLIPConfig(
        embed_dim=384,
        vision=VisionConfig(image_size=224, patch_size=16, width=384, layers=12, head_width=64),
        text=TextConfig(context_length=77, width=384, heads=6, layers=12),
        name="small",
    ),
}
ALIASES = {"base": "ViT-B-16"}


def openclip_config_names() -> list[str]:
    """Names of open_clip's shipped model configs that our encoders can build."""
    folder = resources.files("open_clip") / "model_configs"
    names = []
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            try:
                CLIPConfig.from_dict(json.loads(entry.read_text()))
            except VitrieveError:
                continue
            names.append(entry.name[: -len(".json")])
    return sorted(names)


def load_config(name_or_path: str | Path) -> CLIPConfig:
    """Resolve ``tiny``/``small``/``base``, an open_clip ViT name, or a JSON file path."""
    key = str(name_or_path)
    if key in BUILTIN:
        return BUILTIN[key]
    key = ALIASES.get(key, key)
    path = Path(key)
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise VitrieveError(f"model config file not found: {path}")
        return CLIPConfig.from_dict(read_config_json(path), name=path.stem)
    packaged = resources.files("open_clip") / "model_configs" / f"{key}.json"
    if packaged.is_file():
        return CLIPConfig.from_dict(json.loads(packaged.read_text()), name=key)
    known = ", ".join([*BUILTIN, *ALIASES, "ViT-B-32", "ViT-B-16", "ViT-S-32", "..."])
    raise VitrieveError(f"unknown model {key!r}: use one of {known} or a config .json path")


def read_config_json(path: Path) -> dict[str, Any]:
    """A config file's JSON object; refused unread when larger than any real config."""
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise VitrieveError(f"model config {path} is larger than {MAX_CONFIG_BYTES} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise VitrieveError(f"cannot read model config {path}: {exc!r}"[:300]) from exc
    if not isinstance(data, dict):
        raise VitrieveError(f"model config {path} is not a JSON object")
    return data
