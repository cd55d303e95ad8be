"""Size limits of a model config, checked before anything is allocated.

A config.json is untrusted input (a downloaded checkpoint): each size has its own bound, and
joint bounds stop sizes that are each within limits from multiplying into an absurd network.
"""

from __future__ import annotations

from typing import Protocol

from encoders.errors import VitrieveError


# The sizes this module reads, as read-only protocols: ``encoders.model.config`` imports this
# module to validate what it parses, so this one must not import it back (no import circle,
# not even one hidden behind TYPE_CHECKING).
class VisionSizes(Protocol):
    @property
    def image_size(self) -> int: ...
    @property
    def patch_size(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def layers(self) -> int: ...
    @property
    def head_width(self) -> int: ...
    @property
    def mlp_ratio(self) -> float: ...
    @property
    def grid_size(self) -> int: ...


class TextSizes(Protocol):
    @property
    def context_length(self) -> int: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def heads(self) -> int: ...
    @property
    def layers(self) -> int: ...
    @property
    def mlp_ratio(self) -> float: ...
    @property
    def hf_model(self) -> str | None: ...


class ConfigSizes(Protocol):
    @property
    def embed_dim(self) -> int: ...
    @property
    def vision(self) -> VisionSizes: ...
    @property
    def text(self) -> TextSizes: ...


MAX_WIDTH = 8192  # refuse absurd configs before allocating anything
MAX_LAYERS = 128
MAX_IMAGE_SIZE = 4096
MAX_CONTEXT = 4096
MAX_VOCAB = 1_000_000
# Joint limits: each size within its own limit can still multiply into an absurd network.
MAX_PARAMETERS = 6_000_000_000  # above open_clip's largest ViT (ViT-e-14, ~4.6 B)
MAX_PATCHES = 16_384  # patch tokens per image (a 128 × 128 grid; open_clip's largest: 729)


def validate(config: ConfigSizes) -> None:
    """Refuse inconsistent or absurdly large configs before any tensor is allocated."""
    v, t = config.vision, config.text
    checks = [
        (0 < config.embed_dim <= MAX_WIDTH, "embed_dim"),
        (0 < v.width <= MAX_WIDTH and 0 < t.width <= MAX_WIDTH, "width"),
        (0 < v.layers <= MAX_LAYERS and 0 <= t.layers <= MAX_LAYERS, "layers"),
        (0 < v.image_size <= MAX_IMAGE_SIZE, "image_size"),
        (0 < v.patch_size <= v.image_size, "patch_size"),
        (v.patch_size > 0 and v.image_size % v.patch_size == 0, "image_size / patch_size"),
        (v.head_width > 0 and v.width % v.head_width == 0, "vision width divisible by head_width"),
        (t.heads > 0 and t.width % t.heads == 0, "text width divisible by heads"),
        (0 < t.context_length <= MAX_CONTEXT, "context_length"),
        (0 < t.vocab_size <= MAX_VOCAB, "vocab_size"),
        (0 < v.mlp_ratio <= 16 and 0 < t.mlp_ratio <= 16, "mlp_ratio"),
        (t.hf_model is None or isinstance(t.hf_model, str), "hf_model_name"),
    ]
    bad = [what for ok, what in checks if not ok]
    if bad:
        raise VitrieveError(f"model config out of range: {', '.join(bad)}")
    if v.grid_size**2 > MAX_PATCHES:
        raise VitrieveError(f"model config out of range: {v.grid_size**2} patches > {MAX_PATCHES}")
    if parameter_count(config) > MAX_PARAMETERS:
        raise VitrieveError(
            f"model config out of range: ~{parameter_count(config) / 1e9:.1f} B parameters "
            f"> {MAX_PARAMETERS / 1e9:.0f} B"
        )


def parameter_count(config: ConfigSizes) -> int:
    """Approximate parameters (embeddings, attention, MLPs, projections): the size check
    made before anything is allocated."""
    v, t = config.vision, config.text
    vision = (3 * v.patch_size**2 + v.grid_size**2 + 1 + config.embed_dim) * v.width
    vision += v.layers * (4 + 2 * v.mlp_ratio) * v.width**2
    text = (t.vocab_size + t.context_length + config.embed_dim) * t.width
    text += t.layers * (4 + 2 * t.mlp_ratio) * t.width**2
    return int(vision + (0 if t.hf_model else text))
