"""CLIP (Radford et al., 2021): a vision and a text tower meeting in one embedding space."""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from encoders.model.config import CLIPConfig
from encoders.model.hf_text import HFTextTower
from encoders.model.init import initialise_vision_
from encoders.model.text import TextTransformer
from encoders.model.tokenizer import Tokenizer, get_tokenizer
from encoders.model.vit import VisionTransformer

MAX_LOGIT_SCALE = 100.0  # CLIP paper: temperature clipped so logits scale at most ×100


class CLIP(nn.Module):
    """Two towers and a learnable temperature (and a bias, for the sigmoid loss)."""

    def __init__(self, config: CLIPConfig, visual: nn.Module, text: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.visual = visual
        self.text = text
        self.logit_scale = nn.Parameter(torch.tensor(float(config.init_logit_scale)))
        bias = config.init_logit_bias
        self.logit_bias = None if bias is None else nn.Parameter(torch.tensor(float(bias)))

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        features = self.visual(images)
        return F.normalize(features, dim=-1) if normalize else features

    def encode_text(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        features = self.text(tokens)
        return F.normalize(features, dim=-1) if normalize else features

    def temperature_scale(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def forward(
        self, images: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised image and text embeddings, and the clamped logit scale."""
        return self.encode_image(images), self.encode_text(tokens), self.temperature_scale()


def create_model(config: CLIPConfig, tokenizer: Tokenizer | None = None) -> CLIP:
    """Build a randomly initialised CLIP (or one with a pretrained text tower) from a config."""
    tokenizer = tokenizer or get_tokenizer(config.text)
    visual = VisionTransformer(config.vision, config.embed_dim, config.quick_gelu)
    initialise_vision_(visual, config.vision.init)
    text: nn.Module
    if config.text.hf_model:
        text = HFTextTower(config.text, config.embed_dim, tokenizer.pad_id)
        config = replace(config, text=text.config)  # the pretrained tower's real figures
    else:
        text = TextTransformer(config.text, config.embed_dim, tokenizer.eot_id, config.quick_gelu)
    return CLIP(config, visual, text)
