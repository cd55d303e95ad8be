"""The inference face: bf16 close to fp32, short queries cut to their length, numpy out.

``auto``'s measured choice is kept in a temporary cache here (tests/encoders/test_precision.py
tests the choice itself)."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from encoders.errors import VitrieveError
from encoders.model.clip import create_model
from encoders.model.config import load_config
from encoders.runtime.capability import bf16_native
from encoders.runtime.encoder import Encoder
from encoders.weights.checkpoint import save_checkpoint


@pytest.fixture(autouse=True, scope="module")
def _precision_cache(tmp_path_factory):
    """``auto`` measures once per model into a temporary cache, not the user's."""
    folder = tmp_path_factory.mktemp("precision")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("encoders.runtime.encoder.default_cache_dir", lambda: folder)
        yield folder


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt")
    save_checkpoint(create_model(load_config("tiny")), path)
    return path


def _photo(seed: int, size: int = 96) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, size)[None, :, None] * rng.random(3)[None, None, :]
    noise = rng.normal(0, 20, (size, size, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def test_outputs_are_normalised_float32_rows_in_order(tiny_ckpt) -> None:
    encoder = Encoder.load(tiny_ckpt, precision="fp32")
    images = [_photo(i) for i in range(3)]
    vectors = encoder.encode_images(images)
    assert vectors.dtype == np.float32 and vectors.shape == (3, encoder.embed_dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert np.allclose(encoder.encode_images(images[1:2])[0], vectors[1], atol=1e-5)
    texts = encoder.encode_texts(["a red circle", "a blue square"])
    assert texts.shape == (2, encoder.embed_dim)
    assert encoder.encode_texts([]).shape == (0, encoder.embed_dim)


@pytest.mark.skipif(not bf16_native(torch.device("cpu")), reason="CPU without native bf16")
@pytest.mark.parametrize("name", ["tiny", "ViT-B-32"])
def test_bf16_stays_within_cosine_0999_of_fp32(tiny_ckpt, name: str) -> None:
    torch.manual_seed(0)
    model = create_model(load_config(name))
    fp32 = Encoder(copy.deepcopy(model), precision="fp32")
    auto = Encoder(model, precision="bf16")
    assert auto.dtype == torch.bfloat16 and auto.precision == "bf16"
    images = [_photo(i, 256) for i in range(4)]
    texts = ["a photo of my cat", "invoices", "a red bicycle by the sea at sunset"]
    image_cos = (fp32.encode_images(images) * auto.encode_images(images)).sum(1)
    text_cos = (fp32.encode_texts(texts) * auto.encode_texts(texts)).sum(1)
    assert image_cos.min() >= 0.999 and text_cos.min() >= 0.999


def test_short_query_runs_only_its_own_length(tiny_ckpt) -> None:
    encoder = Encoder.load(tiny_ckpt, precision="fp32")
    seen: list[int] = []
    hook = encoder.model.text.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape[1]))
    short = encoder.encode_texts(["a cat"])
    hook.remove()
    assert seen == [4]  # start, "a", "cat", end — not the 32-token context
    with torch.inference_mode():
        full = encoder.model.encode_text(encoder.tokenizer(["a cat"])).numpy()
    assert np.allclose(short, full, atol=1e-5)


def test_patch_similarity_is_a_grid(tiny_ckpt) -> None:
    encoder = Encoder.load(tiny_ckpt)
    grid = encoder.patch_similarity("a red circle", _photo(0))
    side = load_config("tiny").vision.grid_size
    assert grid.shape == (side, side) and np.all(np.abs(grid) <= 1.0001)


def test_load_refuses_a_name_without_weights_and_a_missing_dir(tmp_path) -> None:
    with pytest.raises(VitrieveError, match="open_clip weights file"):
        Encoder.load("ViT-B-32")
    with pytest.raises(VitrieveError):
        Encoder.load(tmp_path)


def test_compiled_towers_give_the_eager_embeddings_from_any_thread(tiny_ckpt) -> None:
    """Compiled single queries asked from several threads at once (server workers) all run
    on the encoder's one owner thread and match eager ones."""
    from concurrent.futures import ThreadPoolExecutor

    eager = Encoder.load(tiny_ckpt, precision="fp32")
    compiled = Encoder.load(tiny_ckpt, precision="fp32", compile=True)
    images = torch.stack([eager.preprocess(_photo(i)) for i in range(5)])
    assert (eager.encode_image_tensors(images) * compiled.encode_image_tensors(images)).sum(
        1
    ).min() > 0.999
    queries = ["a cat", "a small red circle on the left of a large blue square"] * 4
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda q: compiled.encode_texts([q]), queries))
    for query, vector in zip(queries, got, strict=True):
        assert float((eager.encode_texts([query]) * vector).sum()) > 0.999
    owner = compiled._compiled.owner_thread  # the thread that ran the compiled queries
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    assert names.get(owner, "").startswith("vitrieve-query")


def test_batch_size_defaults_by_device(tiny_ckpt) -> None:
    from encoders.runtime.encoder import DEFAULT_BATCH, default_batch_size

    assert Encoder.load(tiny_ckpt, device="cpu").batch_size == DEFAULT_BATCH["cpu"] == 64
    assert default_batch_size(torch.device("cuda", 0)) == DEFAULT_BATCH["cuda"] >= 256
    model = create_model(load_config("tiny"))
    assert Encoder(model, device="cpu", batch_size=7).batch_size == 7


def test_out_of_memory_halves_the_batch_and_goes_on(tiny_ckpt, monkeypatch, caplog) -> None:
    encoder = Encoder.load(tiny_ckpt, precision="fp32", device="cpu")
    images = torch.stack([encoder.preprocess(_photo(i)) for i in range(10)])
    expected = encoder.encode_image_tensors(images)
    encoder.batch_size = 8
    real, sizes = Encoder._encode_image_batch, []

    def once_too_big(self, batch):
        sizes.append(batch.shape[0])
        if len(sizes) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, batch)

    monkeypatch.setattr(Encoder, "_encode_image_batch", once_too_big)
    with caplog.at_level("WARNING", logger="encoders.runtime.encoder"):
        got = encoder.encode_image_tensors(images)
    assert sizes == [8, 4, 4, 2] and encoder.batch_size == 4
    assert "out of memory" in caplog.text and "going on with 4" in caplog.text
    np.testing.assert_allclose(got, expected, atol=1e-5)  # every row, in order


def test_out_of_memory_at_batch_one_and_other_errors_are_raised(tiny_ckpt, monkeypatch) -> None:
    encoder = Encoder.load(tiny_ckpt, precision="fp32", device="cpu", batch_size=1)
    images = torch.stack([encoder.preprocess(_photo(0))])

    def fails(error):
        def batch(self, pixels):
            raise error

        return batch

    monkeypatch.setattr(Encoder, "_encode_image_batch", fails(RuntimeError("CUDA out of memory")))
    with pytest.raises(RuntimeError, match="out of memory"):
        encoder.encode_image_tensors(images)
    encoder.batch_size = 4
    monkeypatch.setattr(Encoder, "_encode_image_batch", fails(ValueError("a real bug")))
    with pytest.raises(ValueError, match="a real bug"):
        encoder.encode_image_tensors(images)
    assert encoder.batch_size == 4  # only out-of-memory errors shrink the batch


def test_bf16_check_falls_back_to_fp32_when_embeddings_drift(monkeypatch) -> None:
    import encoders.runtime.candidates as module

    monkeypatch.setattr(module, "MIN_BF16_COSINE", 1.01)  # no bf16 run can pass this
    encoder = Encoder(create_model(load_config("tiny")), precision="bf16", device="cpu")
    assert encoder.dtype == torch.bfloat16  # forced: no check
    checked = Encoder(create_model(load_config("tiny")), precision="fp32", device="cpu")
    checked._reduce("bf16", checked=True)  # the check a GPU's auto runs
    assert checked.dtype == torch.float32 and checked.precision == "fp32"
    assert next(checked.model.parameters()).dtype == torch.float32


def test_text_that_is_not_unicode_is_a_user_error(tiny_ckpt) -> None:
    """A lone surrogate (undecodable argv bytes, a bad HTTP client) is one clear error, from
    either tokenizer; a NUL character is just text."""
    encoder = Encoder.load(tiny_ckpt)
    with pytest.raises(VitrieveError, match="not valid Unicode"):
        encoder.encode_texts(["a red\ud800 circle"])
    assert encoder.encode_texts(["a red\x00 circle"]).shape == (1, encoder.embed_dim)
