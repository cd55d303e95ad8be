"""Pre-packed linear layers for queries: same embeddings, original module untouched."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from encoders.model.clip import create_model
from encoders.model.config import load_config
from encoders.model.tokenizer import trim_padding
from encoders.runtime.encoder import Encoder
from encoders.runtime.packed import PackedLinear, packed_copy

needs_onednn = pytest.mark.skipif(
    not torch.backends.mkldnn.is_available(), reason="oneDNN is not available"
)


@needs_onednn
def test_packed_text_tower_gives_the_eager_embeddings():
    encoder = Encoder(create_model(load_config("tiny")), precision="bf16")
    assert encoder._packed_text is not None
    texts = ["a red circle", "two blue squares on a green background", "x"]
    packed = torch.from_numpy(encoder.encode_texts(texts))
    with torch.inference_mode():
        tokens = trim_padding(encoder.tokenizer(texts), encoder.tokenizer.pad_id)
        eager = F.normalize(encoder.model.text(tokens).float(), dim=-1)
    assert F.cosine_similarity(packed, eager, dim=-1).min() > 0.9999
    assert not any(isinstance(m, PackedLinear) for m in encoder.model.modules())


@needs_onednn
def test_packed_copy_shares_tensors_and_refuses_what_it_cannot_run():
    layer = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 8)).to(torch.bfloat16)
    probe = torch.randn(3, 16, dtype=torch.bfloat16)
    packed = packed_copy(layer, probe)
    assert isinstance(packed[0], PackedLinear) and isinstance(layer[0], nn.Linear)
    with torch.inference_mode():
        assert F.cosine_similarity(packed(probe).float(), layer(probe).float()).min() > 0.9999

    class ReadsWeights(nn.Module):  # uses .weight directly: packing would break it
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(16, 8).to(torch.bfloat16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x @ self.fc.weight.T

    assert packed_copy(ReadsWeights(), probe) is None
