"""Transformer building blocks shared by the vision and the text tower."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

QUICK_GELU_SCALE = 1.702  # x·σ(1.702 x) ≈ GELU(x), OpenAI's approximation


class QuickGELU(nn.Module):
    """OpenAI CLIP's GELU approximation; needed to reproduce its original weights."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(QUICK_GELU_SCALE * x)


class LayerNorm(nn.LayerNorm):
    """LayerNorm that returns the input's dtype (keeps bf16 activations bf16)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps).to(x.dtype)


class Attention(nn.Module):
    """Multi-head self-attention with one fused q/k/v projection."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        batch, length, width = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.heads, width // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, N, Dh)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        out = out.transpose(1, 2).reshape(batch, length, width)  # (B, N, D)
        return self.proj(out)


class MLP(nn.Module):
    """Position-wise feed-forward: width → mlp_ratio·width → width."""

    def __init__(self, width: int, mlp_ratio: float, quick_gelu: bool = False) -> None:
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.fc1 = nn.Linear(width, hidden)
        self.act = QuickGELU() if quick_gelu else nn.GELU()
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm Transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, quick_gelu: bool = False):
        super().__init__()
        self.norm1 = LayerNorm(width)
        self.attn = Attention(width, heads)
        self.norm2 = LayerNorm(width)
        self.mlp = MLP(width, mlp_ratio, quick_gelu)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), causal=causal)
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    """A stack of pre-norm blocks."""

    def __init__(
        self, width: int, layers: int, heads: int, mlp_ratio: float, quick_gelu: bool = False
    ) -> None:
        super().__init__()
        self.width = width
        self.blocks = nn.ModuleList(
            Block(width, heads, mlp_ratio, quick_gelu) for _ in range(layers)
        )
        self.init_weights()

    def init_weights(self) -> None:
        """CLIP's initialisation: residual projections scaled down with depth."""
        width = self.width
        proj_std = width**-0.5 * (2 * max(len(self.blocks), 1)) ** -0.5
        for block in self.blocks:
            nn.init.normal_(block.attn.qkv.weight, std=width**-0.5)
            nn.init.normal_(block.attn.proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.fc1.weight, std=(2 * width) ** -0.5)
            nn.init.normal_(block.mlp.fc2.weight, std=proj_std)
            for linear in (block.attn.qkv, block.attn.proj, block.mlp.fc1, block.mlp.fc2):
                nn.init.zeros_(linear.bias)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, causal=causal)
        return x
