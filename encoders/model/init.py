"""Structured initialisations for the ViT: same architecture, other starting weights.

Only the values of existing parameters change, so open_clip builds and loads the same model.

* ``sincos``: learned patch positions start as 2-D sin-cos, so neighbouring patches begin
  with similar positions instead of unrelated noise. ``tiny``'s default: it helped on
  average at no cost (docs/decisions.md, 2026-11-24, "Vision initialisation").
* ``mimetic`` (Trockman & Kolter, 2023, "Mimetic Initialization of Self-Attention Layers"):
  each head's W_q W_kᵀ starts close to a positive multiple of the identity and W_v W_o close
  to a negative one, the structure trained ViTs show — a token attends to tokens that look
  like it. Opt-in: it did not beat the random start (docs/decisions.md, same entry).
"""

from __future__ import annotations

import math

import torch

from encoders.model.layers import Transformer
from encoders.model.vit import VisionTransformer, sincos_2d

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


@torch.no_grad()
def sincos_positions_(vit: VisionTransformer) -> None:
    """Start learned patch positions as 2-D sin-cos, at the scale of CLIP's random ones.

    Neighbouring patches then begin with similar position embeddings instead of unrelated
    noise; the embeddings stay learnable. Rows of ``sincos_2d`` have norm √(width/2), CLIP's
    N(0, 1/width) rows norm ≈ 1: the scale keeps the balance with the patch content.
    """
    width = vit.config.width
    vit.pos_embed[1:] = sincos_2d(vit.config.grid_size, width) * math.sqrt(2 / width)


def initialise_vision_(vit: VisionTransformer, scheme: str) -> None:
    """Apply a ``VisionConfig.init`` scheme to a freshly built ViT ("clip": leave it as is)."""
    if scheme == "mimetic":
        mimetic_attention_(vit.transformer, vit.config.heads)
    elif scheme == "sincos":
        if vit.config.pos_embed == "learned":  # fixed sin-cos positions are that already
            sincos_positions_(vit)
    elif scheme != "clip":
        raise ValueError(f"unknown vision init {scheme!r}")
