"""The encoder on a CUDA device (make gpu-check): it loads, picks bf16/fp16/fp32 by that device's
compute capability and checks it there, matches the CPU in fp32, uses the fused attention
kernels, and its compiled single queries (CUDA graphs) match eager ones from any thread."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from encoders.model.clip import create_model
from encoders.model.config import load_config
from encoders.runtime.encoder import DEFAULT_BATCH, Encoder
from encoders.runtime.precision import cuda_precision

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


def test_auto_precision_on_cuda_follows_capability_within_0999_of_cpu_fp32() -> None:
    """bf16 on Ampere+, fp16 autocast on Volta/Turing (never emulated bf16), fp32 before."""
    model = _model()
    reference = Encoder(copy.deepcopy(model), precision="fp32", device="cpu")
    encoder = Encoder(model, device="cuda")  # the equivalence check runs on the device
    expected = cuda_precision(torch.device("cuda", 0))
    major, _ = torch.cuda.get_device_capability(0)
    assert expected == ("bf16" if major >= 8 else "fp16" if major >= 7 else "fp32")
    assert encoder.device.type == "cuda" and encoder.precision == expected
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


def test_compiled_queries_from_many_threads_replay_the_owner_threads_graphs() -> None:
    """CUDA graphs assert when replayed from a thread other than the capturing one
    (pytorch/pytorch#123177): server workers ask from their own threads, so every compiled
    query runs on the encoder's owner thread — and a graph's output is copied before the next
    replay overwrites it."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    eager = Encoder(_model("tiny"), precision="fp32", device="cuda")
    compiled = Encoder(
        copy.deepcopy(eager.model).cpu(), precision="fp32", device="cuda", compile=True
    )
    long = " ".join(["a small red circle"] * 7)  # the context-length bucket
    queries = ["a cat", "a blue square at the top", long] * 6
    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(lambda q: compiled.encode_texts([q]), queries))
    for query, vector in zip(queries, got, strict=True):
        assert float((eager.encode_texts([query]) * vector).sum()) > 0.999
    names = {t.ident: t.name for t in threading.enumerate()}
    assert names.get(compiled._compiled.owner_thread, "").startswith("vitrieve-query")


def test_compiled_image_batches_pad_to_buckets_and_match_eager() -> None:
    eager = Encoder(_model("tiny"), precision="fp32", device="cuda", batch_size=64)
    compiled = Encoder(copy.deepcopy(eager.model).cpu(), precision="fp32", device="cuda",
                       batch_size=64, compile=True)  # fmt: skip
    for count in (3, 64, 70):
        images = _images(eager, count)
        np.testing.assert_allclose(
            compiled.encode_image_tensors(images), eager.encode_image_tensors(images), atol=2e-3
        )
