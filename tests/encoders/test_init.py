"""Vision initialisations: the structure each promises, and checkpoints that keep it."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from encoders.errors import VitrieveError
from encoders.model.clip import create_model
from encoders.model.config import CLIPConfig, TextConfig, VisionConfig
from encoders.model.init import factor_pair, mimetic_attention_
from encoders.model.layers import Transformer
from encoders.weights.checkpoint import load_checkpoint, save_checkpoint


def _config(init: str) -> CLIPConfig:
    vision = VisionConfig(image_size=32, patch_size=8, width=64, layers=2, head_width=16)
    text = TextConfig(context_length=16, width=32, heads=2, layers=1)
    return CLIPConfig(embed_dim=32, vision=replace(vision, init=init), text=text)


def test_full_rank_factors_multiply_back_to_the_target() -> None:
    a, b = factor_pair(32, 32, 0.5, -0.3, torch.Generator().manual_seed(3))
    noise = torch.randn(32, 32, generator=torch.Generator().manual_seed(3)) / 32**0.5
    assert torch.allclose(a @ b.T, 0.5 * noise - 0.3 * torch.eye(32), atol=1e-4)


def _head_products(transformer: Transformer, heads: int):
    width = transformer.width
    size = width // heads
    for block in transformer.blocks:
        weight = block.attn.qkv.weight.detach()
        for h in range(heads):
            q = weight[h * size : (h + 1) * size]
            k = weight[width + h * size : width + (h + 1) * size]
            yield "qk", q.T @ k  # x (W_qᵀ W_k) yᵀ is the head's score
        yield "vo", weight[2 * width :].T @ block.attn.proj.weight.detach().T


def test_mimetic_products_are_near_signed_identities() -> None:
    torch.manual_seed(0)
    transformer = Transformer(width=64, layers=3, heads=4, mlp_ratio=4.0)
    mimetic_attention_(transformer, heads=4)
    for kind, product in _head_products(transformer, heads=4):
        diagonal = product.diagonal()
        off = product - torch.diag(diagonal)
        sign = 1 if kind == "qk" else -1
        assert sign * diagonal.mean() > 0.1, kind  # a positive / negative multiple of I ...
        assert sign * diagonal.mean() > 2.5 * off.std(), kind  # ... plus smaller noise


def test_clip_initialisation_has_no_such_structure() -> None:
    torch.manual_seed(0)
    transformer = Transformer(width=64, layers=3, heads=4, mlp_ratio=4.0)
    for _, product in _head_products(transformer, heads=4):
        off = product - torch.diag(product.diagonal())
        assert product.diagonal().mean().abs() < 2 * off.std()


def test_mimetic_heads_attend_to_similar_tokens_first() -> None:
    """Scores x W_qᵀ W_k yᵀ rank each token's own key first, as x·y does."""
    torch.manual_seed(0)
    transformer = Transformer(width=64, layers=1, heads=4, mlp_ratio=4.0)
    mimetic_attention_(transformer, heads=4)
    tokens = torch.nn.functional.layer_norm(torch.randn(20, 64), (64,))
    weight = transformer.blocks[0].attn.qkv.weight.detach()
    q, k = tokens @ weight[:16].T, tokens @ weight[64:80].T  # head 0
    assert torch.equal((q @ k.T).argmax(dim=1), torch.arange(20))


def test_mimetic_config_round_trips_and_older_configs_default_to_clip() -> None:
    config = _config("mimetic")
    data = json.loads(json.dumps(config.to_dict()))
    assert "init" not in data["vision_cfg"]  # open_clip's vision config stays buildable
    assert CLIPConfig.from_dict(data).vision.init == "mimetic"
    del data["vision_init"]  # a checkpoint written before the key existed
    assert CLIPConfig.from_dict(data).vision.init == "clip"
    with pytest.raises(VitrieveError, match="vision_init"):
        CLIPConfig.from_dict({**data, "vision_init": "lsuv"})


@pytest.mark.parametrize("init", ["sincos", "mimetic"])
def test_initialised_model_checkpoint_round_trip(tmp_path, init: str) -> None:
    torch.manual_seed(0)
    model = create_model(_config(init)).eval()
    save_checkpoint(model, tmp_path / "ckpt")
    loaded, _ = load_checkpoint(tmp_path / "ckpt")
    assert loaded.config.vision.init == init
    images = torch.randn(2, 3, 32, 32)
    assert torch.allclose(model.encode_image(images), loaded.eval().encode_image(images))


def test_vision_init_changes_weights_only() -> None:
    torch.manual_seed(0)
    clip_init = create_model(_config("clip")).state_dict()
    torch.manual_seed(0)
    mimetic = create_model(_config("mimetic")).state_dict()
    assert {k: v.shape for k, v in clip_init.items()} == {k: v.shape for k, v in mimetic.items()}
    visual = [k for k in clip_init if k.startswith("visual.")]
    changed = {k for k in visual if not torch.equal(clip_init[k], mimetic[k])}
    assert changed == {
        f"visual.transformer.blocks.{i}.attn.{p}.weight" for i in range(2) for p in ("qkv", "proj")
    }


def test_sincos_init_gives_learnable_positions_that_fall_off_with_distance() -> None:
    torch.manual_seed(0)
    vit = create_model(
        replace(_config("sincos"), vision=replace(_config("sincos").vision, image_size=64))
    ).visual
    assert vit.pos_embed.requires_grad
    patches = vit.pos_embed[1:].detach()  # (64, D): an 8 × 8 grid
    assert torch.allclose(patches.norm(dim=1), torch.ones(64), atol=1e-5)  # CLIP's scale
    row = (patches @ patches.T).reshape(8, 8, 8, 8)[3, 3, 3]  # (3, 3) against (3, 0..7)
    assert row[3] > row[4] > row[5] > row[6] and row[3] > row[2] > row[1] > row[0]


def test_sincos_init_changes_only_the_patch_positions() -> None:
    torch.manual_seed(0)
    clip_init = create_model(_config("clip")).state_dict()
    torch.manual_seed(0)
    sincos = create_model(_config("sincos")).state_dict()
    changed = {k for k in clip_init if not torch.equal(clip_init[k], sincos[k])}
    assert changed == {"visual.pos_embed"}
    assert torch.equal(clip_init["visual.pos_embed"][0], sincos["visual.pos_embed"][0])


def test_a_checkpoint_from_before_vision_init_still_loads(tmp_path) -> None:
    """Checkpoints written before the key existed have no ``vision_init``: they load as-is."""
    torch.manual_seed(0)
    model = create_model(_config("sincos")).eval()
    directory = tmp_path / "old"
    save_checkpoint(model, directory)
    config = json.loads((directory / "config.json").read_text())
    assert config.pop("vision_init") == "sincos"
    (directory / "config.json").write_text(json.dumps(config))
    loaded, _ = load_checkpoint(directory)
    assert loaded.config.vision.init == "clip"
    images = torch.randn(2, 3, 32, 32)
    assert torch.allclose(model.encode_image(images), loaded.eval().encode_image(images))
