"""Linear layers with oneDNN pre-packed bf16 weights: the eager counterpart of inductor's
weight freezing, for the latency of one text query.

An eager bf16 ``nn.Linear`` on the CPU hands oneDNN a plain weight matrix, which it lays out
again for its kernels on every call; at batch 1 that layout work is a large share of a text
query (docs/decisions.md, "Pre-packed text tower"). Packing once, at load, is what
``torch.compile`` with freezing does too, without its compile time per process. oneDNN's
packing ops are private torch API: where they are missing or disagree, eager layers stay.
"""

from __future__ import annotations

import copy
import logging

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

BATCH_HINT = 16  # rows per call the layout is tuned for (a query's tokens)
MIN_COSINE = 0.9999  # packed outputs must match the module they replace this closely


class PackedLinear(nn.Module):
    """``nn.Linear`` with its weight in oneDNN's blocked layout (inference only)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach()
        self.out_features = linear.out_features
        self.register_buffer("packed", torch.ops.mkldnn._reorder_linear_weight(weight, BATCH_HINT))
        bias = None if linear.bias is None else linear.bias.detach()
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])  # oneDNN's linear takes (N, in)
        out = torch.ops.mkldnn._linear_pointwise(rows, self.packed, self.bias, "none", [], "")
        return out.reshape(*x.shape[:-1], self.out_features)


def _pack_in_place(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, PackedLinear(child))
        else:
            _pack_in_place(child)


def packed_copy(module: nn.Module, probe: torch.Tensor) -> nn.Module | None:
    """A copy of a bf16 CPU ``module`` with packed linear layers, checked on ``probe``
    inputs against the original; None where oneDNN cannot pack or the outputs differ."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        shared = {id(t): t for t in [*module.parameters(), *module.buffers()]}
        packed = copy.deepcopy(module, memo=shared)  # new modules over the same tensors
        _pack_in_place(packed)
        with torch.inference_mode():
            expected, got = module(probe).float(), packed(probe).float()
        cosine = float(F.cosine_similarity(expected, got, dim=-1).min())
    except (RuntimeError, AttributeError, NotImplementedError) as exc:
        log.info("pre-packed weights unavailable (%s): eager linear layers", exc)
        return None
    if cosine < MIN_COSINE:
        log.warning("pre-packed weights differ (cosine %.6f): eager linear layers", cosine)
        return None
    return packed.eval()
