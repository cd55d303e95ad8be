"""Structured initialisations for the ViT: same architecture, better starting weights.

*Mimetic* initialisation (Trockman & Kolter, 2023, "Mimetic Initialization of Self-Attention
Layers") sets each head's W_q W_kᵀ close to a positive multiple of the identity and W_v W_o
close to a negative one, the structure trained ViTs show: a token then attends to tokens that
look like it — with spatially structured position embeddings, to its neighbours, as a
convolution does — and small-data training starts from there instead of from noise. Only the
values of existing parameters change, so open_clip builds and loads the same model.
"""

from __future__ import annotations

import math

import torch

from encoders.layers import Transformer
from encoders.vit import VisionTransformer

# The paper's ViT-Tiny values: W_q W_kᵀ ≈ α₁ Z + β₁ I, W_v W_o ≈ α₂ Z − β₂ I, Z ~ N(0, 1/d).
MIMETIC_QK = (0.7, 0.7)
MIMETIC_VO = (0.4, 0.4)


def factor_pair(
    width: int, rank: int, alpha: float, beta: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B), each (width, rank), with A Bᵀ the best rank-``rank`` fit of α Z + β I.

    Z is Gaussian with variance 1/width; β may be negative. The split through the SVD gives
    both factors the same scale (√ of the singular values), as two trained projections have.
    """
    noise = torch.randn(width, width, generator=generator) / math.sqrt(width)
    target = alpha * noise + beta * torch.eye(width)
    u, s, vh = torch.linalg.svd(target)
    root = s[:rank].sqrt()
    return u[:, :rank] * root, vh[:rank].T * root


@torch.no_grad()
def mimetic_attention_(
    transformer: Transformer,
    heads: int,
    qk: tuple[float, float] = MIMETIC_QK,
    vo: tuple[float, float] = MIMETIC_VO,
    generator: torch.Generator | None = None,
) -> None:
    """Re-initialise every block's q/k/v and output projections mimetically, in place.

    Our ``Attention`` computes q = x W_qᵀ (W_q: the first ``width`` rows of ``qkv.weight``),
    so a head's score is x (W_q,hᵀ W_k,h) yᵀ: setting W_q,h = Aᵀ and W_k,h = Bᵀ makes that
    x A Bᵀ yᵀ ≈ x (α Z + β I) yᵀ. Likewise W_v = Aᵀ and W_o = B give W_vᵀ W_oᵀ ≈ α Z − β I.
    """
    width = transformer.width
    head_width = width // heads
    for block in transformer.blocks:
        weight = block.attn.qkv.weight  # (3·width, width): q, k, v rows
        for h in range(heads):
            rows = slice(h * head_width, (h + 1) * head_width)
            a, b = factor_pair(width, head_width, qk[0], qk[1], generator)
            weight[:width][rows] = a.T
            weight[width : 2 * width][rows] = b.T
        a, b = factor_pair(width, width, vo[0], -vo[1], generator)
        weight[2 * width :] = a.T
        block.attn.proj.weight.copy_(b)


def gaussian_positions(
    grid: int, width: int, scale: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(grid², width) random Fourier features whose dot products fall off with 2-D distance.

    p_i · p_j ≈ exp(−|r_i − r_j|² / 2σ²) with σ = ``scale`` patches (Rahimi & Recht, 2007):
    with W_q W_kᵀ ≈ I, attention on these alone is a Gaussian blur over the patch grid.
    """
    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()], dim=1).float()  # (N, 2)
    freqs = torch.randn(2, width, generator=generator) / scale
    phase = torch.rand(width, generator=generator) * 2 * math.pi
    return math.sqrt(2.0 / width) * torch.cos(coords @ freqs + phase)


def initialise_vision_(vit: VisionTransformer, scheme: str) -> None:
    """Apply a ``VisionConfig.init`` scheme to a freshly built ViT ("clip": leave it as is)."""
    if scheme == "mimetic":
        mimetic_attention_(vit.transformer, vit.config.heads)
    elif scheme != "clip":
        raise ValueError(f"unknown vision init {scheme!r}")
