"""Streamed training data (DataLoader workers decoding ahead of the trainer) trains exactly as
preloaded data does, resumes exactly, and survives an unreadable file (CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from encoders.training import main
from encoders.training.layout import RunLayout
from encoders.training.main import prepare_data
from encoders.training.stream import DecodedImages, StreamedImages

pytestmark = pytest.mark.usefixtures("one_thread")


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(RunLayout(run).checkpoint / "model.safetensors"))


def test_streamed_data_trains_and_resumes_exactly_like_preloaded(
    make_trainer, small_options, stop_at, tmp_path: Path
):
    preloaded = small_options(epochs=1.2, stream=False)  # 6 steps over 2 epochs
    straight = make_trainer(tmp_path / "preloaded", preloaded)
    assert isinstance(straight.data.images, torch.Tensor)
    straight.run()
    streamed = small_options(epochs=1.2, stream=True)
    broken = make_trainer(tmp_path / "streamed", streamed, stop_at(4))
    assert isinstance(broken.data.images, StreamedImages)
    with pytest.raises(stop_at.Interrupt):
        broken.run()
    resumed = make_trainer(tmp_path / "streamed", streamed)
    assert resumed.run(resume=True).step == 6
    assert all(0.0 <= r["data_wait"] <= 1.0 for r in resumed.history)
    a, b = _weights(tmp_path / "preloaded"), _weights(tmp_path / "streamed")
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_data_too_big_to_preload_is_streamed(
    synth: Path, small_options, monkeypatch: pytest.MonkeyPatch
):
    from encoders.model.clip import create_model
    from encoders.model.config import load_config
    from encoders.model.tokenizer import get_tokenizer
    from encoders.training.data import read_captioned

    config = load_config("tiny").with_image_size(32)
    tokenizer = get_tokenizer(config.text)
    model = create_model(config, tokenizer)
    items = read_captioned(synth / "train.tsv")[:40]
    options = small_options()  # stream=None: decided by size
    assert isinstance(prepare_data(items, model, tokenizer, options).images, torch.Tensor)
    monkeypatch.setattr(main, "PRELOAD_LIMIT_BYTES", 40 * 3 * 32 * 32 - 1)
    data = prepare_data(items, model, tokenizer, options)
    assert isinstance(data.images, StreamedImages) and len(data.images) == 40
    assert data.captions == [item.caption for item in items]


def test_an_unreadable_streamed_image_is_black_not_fatal(synth: Path, tmp_path: Path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    good = next(synth.rglob("*.png"))
    images = DecodedImages([good, broken], 32)
    assert images[0].shape == (3, 32, 32) and images[0].dtype == torch.uint8
    assert images[0].float().std() > 0 and not images[1].any()
