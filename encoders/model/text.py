"""Text Transformer: token ids → causal pre-norm blocks → end-of-text pooling → projection."""

from __future__ import annotations

import torch
from torch import nn

from encoders.model.config import TextConfig
from encoders.model.layers import LayerNorm, Transformer

# CLIP's (and open_clip's) starting scales of the token and position embeddings
TOKEN_EMBED_STD = 0.02
POS_EMBED_STD = 0.01


class TextTransformer(nn.Module):
    """Token ids (B, L) → embeddings (B, embed_dim).

    With a causal mask, position i sees only positions ≤ i, so the end-of-text token's
    output — the one we pool — does not depend on the padding after it. Callers may
    therefore cut a batch down to its longest prompt (see ``Encoder.encode_texts``).
    """

    def __init__(
        self, config: TextConfig, embed_dim: int, eot_id: int, quick_gelu: bool = False
    ) -> None:
        super().__init__()
        self.config = config
        self.eot_id = eot_id
        self.token_embed = nn.Embedding(config.vocab_size, config.width)
        self.pos_embed = nn.Parameter(
            torch.randn(config.context_length, config.width) * POS_EMBED_STD
        )
        self.transformer = Transformer(
            config.width, config.layers, config.heads, config.mlp_ratio, quick_gelu
        )
        self.norm = LayerNorm(config.width)
        self.proj = nn.Linear(config.width, embed_dim, bias=False)
        nn.init.normal_(self.token_embed.weight, std=TOKEN_EMBED_STD)

    def eot_positions(self, tokens: torch.Tensor) -> torch.Tensor:
        """Index of the first end-of-text token in each row (the last position if none)."""
        is_eot = tokens == self.eot_id
        last = torch.full_like(tokens[:, 0], tokens.shape[1] - 1)
        return torch.where(is_eot.any(dim=1), is_eot.int().argmax(dim=1), last)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        if length > self.config.context_length:
            raise ValueError(f"{length} tokens exceed the context of {self.config.context_length}")
        x = self.token_embed(tokens) + self.pos_embed[:length]  # (B, L, D)
        x = self.norm(self.transformer(x, causal=True))
        pooled = x[torch.arange(x.shape[0], device=x.device), self.eot_positions(tokens)]
        return self.proj(pooled)
