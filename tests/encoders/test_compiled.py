"""Compiled towers' shapes: the text buckets end with the context length, image batches pad to
a short list of sizes (not to the full batch), and what is padded is sliced off again."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from encoders.model.clip import create_model
from encoders.model.config import load_config
from encoders.runtime.compiled import image_buckets, pad_batch, pad_tokens, text_buckets
from encoders.runtime.encoder import Encoder


def test_text_buckets_end_with_the_context_length() -> None:
    assert text_buckets(77) == (8, 16, 32, 64, 77)
    assert text_buckets(32) == (8, 16, 32)
    assert text_buckets(64) == (8, 16, 32, 64)
    tokens = torch.ones(1, 70, dtype=torch.long)
    assert pad_tokens(tokens, 0, 77).shape == (1, 77)  # one shape for 65-77, no recompile
    assert pad_tokens(torch.ones(1, 5, dtype=torch.long), 0, 77).shape == (1, 8)
    assert pad_tokens(torch.ones(1, 77, dtype=torch.long), 0, 77).shape == (1, 77)


@pytest.mark.parametrize(
    ("batch_size", "expected"),
    [
        (64, (8, 16, 32, 64)),
        (512, (8, 16, 32, 64, 128, 256, 512)),
        (100, (8, 16, 32, 64, 100)),
        (4, (4,)),
        (1, (1,)),
    ],
)
def test_image_buckets_are_a_short_list_ending_with_the_batch(batch_size, expected) -> None:
    buckets = image_buckets(batch_size)
    assert buckets == expected and len(buckets) <= 7  # under torch's recompile limit of 8


def test_batches_pad_to_the_next_bucket_not_to_the_batch_size() -> None:
    one = torch.zeros(1, 3, 4, 4)
    assert pad_batch(one, 512).shape[0] == 8  # one image: 8x, not 512x
    assert pad_batch(torch.zeros(256, 3, 4, 4), 512).shape[0] == 256  # a bucket: unpadded
    assert pad_batch(torch.zeros(257, 3, 4, 4), 512).shape[0] == 512
    assert pad_batch(torch.zeros(5, 3, 4, 4), 64).shape[0] == 8


def test_compiled_image_batches_run_padded_to_their_bucket_and_sliced(monkeypatch) -> None:
    """The compiled vision tower sees bucket-sized batches; the rows that come back are the
    caller's, in order (the tower is replaced by a recorder: no compile needed)."""
    torch.manual_seed(0)
    encoder = Encoder(create_model(load_config("tiny")), precision="fp32", device="cpu",
                      batch_size=64, compile=True)  # fmt: skip
    eager_tower, seen = encoder.model.visual, []

    def recorder(batch):
        seen.append(batch.shape[0])
        return eager_tower(batch)

    monkeypatch.setattr(encoder._compiled, "visual", recorder)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(70, 3, 64, 64, generator=generator)
    got = encoder.encode_image_tensors(images)
    assert seen == [64, 8]  # 64, then the last 6 padded to 8 (not to 64)
    encoder._compiled = None
    np.testing.assert_allclose(got, encoder.encode_image_tensors(images), atol=1e-5)
