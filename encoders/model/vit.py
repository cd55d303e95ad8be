"""Vision Transformer (Dosovitskiy et al., 2021), written from patch embeddings up.

The paper's steps, each one line of ``forward_tokens``:
1. split the image into P×P patches,
2. embed each flattened patch linearly,
3. prepend a learnable class token,
4. add position embeddings (learned, or fixed 2-D sin-cos),
5. run pre-norm Transformer blocks, normalise, pool (class token or mean) and project.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from encoders.model.config import VisionConfig
from encoders.model.layers import LayerNorm, Transformer


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) → (B, N, C·P·P): the image cut into non-overlapping P×P patches."""
    batch, channels, height, width = images.shape
    if height % patch_size or width % patch_size:
        raise ValueError(f"image {height}×{width} is not divisible into {patch_size} px patches")
    gh, gw = height // patch_size, width // patch_size
    x = images.reshape(batch, channels, gh, patch_size, gw, patch_size)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, gh, gw, C, P, P)
    return x.reshape(batch, gh * gw, channels * patch_size * patch_size)


def sincos_2d(grid: int, width: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position embeddings (MAE / "Simple ViT"): (grid², width)."""
    if width % 4:
        raise ValueError("sin-cos position embeddings need a width divisible by 4")
    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    omega = 1.0 / 10000 ** (torch.arange(width // 4) / (width // 4 - 1 or 1))
    y = ys.flatten()[:, None] * omega[None, :]
    x = xs.flatten()[:, None] * omega[None, :]
    return torch.cat([x.sin(), x.cos(), y.sin(), y.cos()], dim=1)


def resize_pos_embed(pos_embed: torch.Tensor, new_grid: int) -> torch.Tensor:
    """Bicubic 2-D interpolation of (1 + g², D) position embeddings to a new g'×g' grid.

    The ViT paper's recipe for fine-tuning at a higher resolution: the class token's
    embedding stays, the patch embeddings are resampled as an image.
    """
    cls_pos, patch_pos = pos_embed[:1], pos_embed[1:]
    old_grid = math.isqrt(patch_pos.shape[0])
    if old_grid == new_grid:
        return pos_embed
    grid = patch_pos.reshape(1, old_grid, old_grid, -1).permute(0, 3, 1, 2)  # (1, D, g, g)
    grid = F.interpolate(
        grid.float(), size=(new_grid, new_grid), mode="bicubic", align_corners=False
    )
    patch_pos = grid.permute(0, 2, 3, 1).reshape(new_grid * new_grid, -1)  # (g'², D)
    return torch.cat([cls_pos, patch_pos.to(pos_embed.dtype)], dim=0)


class VisionTransformer(nn.Module):
    """Images (B, 3, H, W) → embeddings (B, embed_dim); patch tokens on request."""

    def __init__(self, config: VisionConfig, embed_dim: int, quick_gelu: bool = False):
        super().__init__()
        self.config = config
        width, patch = config.width, config.patch_size
        self.patch_embed = nn.Linear(3 * patch * patch, width, bias=False)
        self.class_token = nn.Parameter(torch.randn(width) * width**-0.5)
        if config.pos_embed == "sincos":  # fixed, but saved with the weights
            pos = torch.cat([torch.zeros(1, width), sincos_2d(config.grid_size, width)])
            self.pos_embed = nn.Parameter(pos, requires_grad=False)
        else:
            num_positions = 1 + config.grid_size**2
            self.pos_embed = nn.Parameter(torch.randn(num_positions, width) * width**-0.5)
        self.norm_pre = LayerNorm(width) if config.norm_pre else nn.Identity()
        self.transformer = Transformer(
            width, config.layers, config.heads, config.mlp_ratio, quick_gelu
        )
        self.norm = LayerNorm(width)
        self.proj = nn.Linear(width, embed_dim, bias=False)

    def positions_for(self, grid: int) -> torch.Tensor:
        """Position embeddings for a g×g grid, interpolated when it is not the trained one."""
        if grid == self.config.grid_size:
            return self.pos_embed
        if self.config.pos_embed == "sincos":
            pos = sincos_2d(grid, self.config.width).to(self.pos_embed)
            return torch.cat([self.pos_embed[:1], pos])
        return resize_pos_embed(self.pos_embed, grid)

    def forward_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """All normalised tokens (B, 1 + N, D): the class token first, then the patches."""
        patches = patchify(images, self.config.patch_size)  # step 1: (B, N, 3·P·P)
        x = self.patch_embed(patches)  # step 2: (B, N, D)
        cls = self.class_token.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1)  # step 3: (B, 1 + N, D)
        grid = math.isqrt(patches.shape[1])
        x = x + self.positions_for(grid).to(x.dtype)  # step 4
        x = self.transformer(self.norm_pre(x))  # step 5: pre-norm blocks
        return self.norm(x)

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, 1 + N, D) → (B, D): the class token, or the mean of the patch tokens."""
        return tokens[:, 1:].mean(dim=1) if self.config.pool == "mean" else tokens[:, 0]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(self.pool(self.forward_tokens(images)))

    def patch_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """Each patch token projected into the joint space: (B, N, embed_dim), for heatmaps."""
        return self.proj(self.forward_tokens(images)[:, 1:])
