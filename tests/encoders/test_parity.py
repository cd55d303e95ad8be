"""Our encoders reproduce open_clip's embeddings from converted weights (fp32, 1e-4)."""

from __future__ import annotations

import open_clip
import pytest
import torch

from encoders.model.clip import create_model
from encoders.model.config import CLIPConfig, load_config
from encoders.weights.checkpoint import (
    from_openclip_state_dict,
    load_checkpoint,
    save_checkpoint,
    to_openclip_state_dict,
)

TOLERANCE = 1e-4
CAPTIONS = ["a cat", "a red bicycle by the sea", "invoices from 2023", ""]


def _openclip_model(config: CLIPConfig) -> torch.nn.Module:
    cfg = config.to_dict()
    kwargs = {k: cfg[k] for k in ("embed_dim", "vision_cfg", "text_cfg", "quick_gelu")}
    return open_clip.CLIP(**kwargs).eval()


def _inputs(config: CLIPConfig) -> tuple[torch.Tensor, torch.Tensor]:
    size = config.vision.image_size
    images = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(1))
    tokens = open_clip.get_tokenizer("ViT-B-32", context_length=config.text.context_length)(
        CAPTIONS
    )
    return images, tokens


def _max_diffs(reference: torch.nn.Module, ours: torch.nn.Module, config: CLIPConfig):
    images, tokens = _inputs(config)
    with torch.no_grad():
        image_diff = reference.encode_image(images, normalize=True) - ours.encode_image(images)
        text_diff = reference.encode_text(tokens, normalize=True) - ours.encode_text(tokens)
    return image_diff.abs().max().item(), text_diff.abs().max().item()


TINY_VARIANTS = {
    "tiny": load_config("tiny"),
    "tiny-mean-sincos-quickgelu": CLIPConfig.from_dict(
        {
            "embed_dim": 64,
            "quick_gelu": True,
            "vision_cfg": {
                "image_size": 32,
                "patch_size": 4,
                "width": 64,
                "layers": 2,
                "head_width": 32,
                "pool_type": "avg",
                "pos_embed_type": "sin_cos_2d",
                "no_ln_pre": True,
            },
            "text_cfg": {"context_length": 16, "width": 64, "heads": 2, "layers": 2},
        }
    ),
}


@pytest.mark.parametrize("name", sorted(TINY_VARIANTS))
def test_tiny_configs_match_openclip(name: str) -> None:
    torch.manual_seed(0)
    config = TINY_VARIANTS[name]
    reference = _openclip_model(config)
    ours = create_model(config).eval()
    ours.load_state_dict(from_openclip_state_dict(reference.state_dict()), strict=True)
    image_diff, text_diff = _max_diffs(reference, ours, config)
    assert image_diff < TOLERANCE and text_diff < TOLERANCE


def test_vit_b32_matches_openclip() -> None:
    torch.manual_seed(0)
    reference = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    config = load_config("ViT-B-32")
    ours = create_model(config).eval()
    ours.load_state_dict(from_openclip_state_dict(reference.state_dict()), strict=True)
    image_diff, text_diff = _max_diffs(reference, ours, config)
    assert image_diff < TOLERANCE and text_diff < TOLERANCE


def test_conversion_round_trips_to_openclip(tmp_path) -> None:
    torch.manual_seed(0)
    config = load_config("tiny")
    reference = _openclip_model(config)
    ours = create_model(config)
    ours.load_state_dict(from_openclip_state_dict(reference.state_dict()))
    back = to_openclip_state_dict(ours)
    expected = {k: v for k, v in reference.state_dict().items() if not k.endswith("attn_mask")}
    assert set(back) == set(expected)
    assert all(torch.equal(back[k], expected[k]) for k in expected)


def test_openclip_weights_file_loads_through_checkpoint_dir(tmp_path) -> None:
    """The user feature: an open_clip weights file → our checkpoint → same embeddings."""
    from safetensors.torch import save_file

    from encoders.weights.checkpoint import load_openclip_weights

    torch.manual_seed(0)
    config = load_config("tiny")
    reference = _openclip_model(config)
    weights = tmp_path / "open_clip_model.safetensors"
    state = {k: v.contiguous() for k, v in reference.state_dict().items() if "attn_mask" not in k}
    save_file(state, str(weights))
    save_checkpoint(load_openclip_weights(config, weights), tmp_path / "ckpt")
    ours, meta = load_checkpoint(tmp_path / "ckpt")
    assert len(meta["model_id"]) == 16
    image_diff, text_diff = _max_diffs(reference, ours.eval(), config)
    assert image_diff < TOLERANCE and text_diff < TOLERANCE
