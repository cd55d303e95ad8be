"""The encoder on a CUDA device (make gpu-check): it loads, checks bf16 there, matches the CPU
in fp32, uses the fused attention kernels, and its compiled single queries match eager ones."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from encoders.model.clip import create_model
from encoders.model.config import load_config
from encoders.runtime.encoder import DEFAULT_BATCH, Encoder

pytestmark = pytest.mark.gpu
TEXTS = ["a photo of my cat", "invoices", "a red bicycle by the sea at sunset"]


def _model(name: str = "ViT-B-32"):
    torch.manual_seed(0)
    return create_model(load_config(name))


def _images(encoder: Encoder, count: int = 6) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    size = encoder.image_size
    ramp = torch.linspace(-1.5, 1.5, size)
    smooth = (ramp[None, :] + ramp[:, None])[None, None].expand(count, 3, size, size)
    return smooth + 0.3 * torch.randn(count, 3, size, size, generator=generator)


def test_auto_precision_on_cuda_is_bf16_within_0999_of_cpu_fp32() -> None:
    model = _model()
    reference = Encoder(copy.deepcopy(model), precision="fp32", device="cpu")
    encoder = Encoder(model, device="cuda")  # the equivalence check runs on the device
    assert encoder.device.type == "cuda" and encoder.dtype == torch.bfloat16
    assert encoder.batch_size == DEFAULT_BATCH["cuda"]
    images = _images(reference)
    image_cos = (reference.encode_image_tensors(images) * encoder.encode_image_tensors(images)).sum(
        1
    )
    text_cos = (reference.encode_texts(TEXTS) * encoder.encode_texts(TEXTS)).sum(1)
    assert image_cos.min() >= 0.999 and text_cos.min() >= 0.999


def test_host_and_device_inputs_give_the_same_rows_in_order() -> None:
    encoder = Encoder(_model("tiny"), precision="fp32", device="cuda", batch_size=4)
    images = _images(encoder, 10)
    from_host = encoder.encode_image_tensors(images)  # pinned, non-blocking copies
    from_device = encoder.encode_image_tensors(images.cuda())
    one = encoder.encode_image_tensors(images[7:8])
    np.testing.assert_allclose(from_host, from_device, atol=1e-5)
    np.testing.assert_allclose(from_host[7], one[0], atol=1e-4)
    assert from_host.dtype == np.float32 and from_host.shape == (10, encoder.embed_dim)


def test_bf16_towers_run_on_the_fused_flash_attention_kernel() -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    encoder = Encoder(_model(), precision="bf16", device="cuda")
    images = _images(encoder, 8)
    expected = encoder.encode_image_tensors(images)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):  # raises if flash cannot run these shapes
        flash = encoder.encode_image_tensors(images)
        encoder.encode_texts(TEXTS)
    assert (expected * flash).sum(1).min() > 0.9999


def test_compiled_single_queries_match_eager_ones_per_bucket() -> None:
    eager = Encoder(_model("tiny"), precision="fp32", device="cuda")
    compiled = Encoder(
        copy.deepcopy(eager.model).cpu(), precision="fp32", device="cuda", compile=True
    )
    for query in ["a cat", "a small red circle on the left of a large blue square", "a cat"]:
        cosine = float((eager.encode_texts([query]) * compiled.encode_texts([query])).sum())
        assert cosine > 0.999
