"""The ViT's steps behave as the paper describes."""

from __future__ import annotations

import torch

from encoders.model.config import VisionConfig
from encoders.model.vit import VisionTransformer, patchify, resize_pos_embed, sincos_2d


def test_patchify_cuts_non_overlapping_patches_in_raster_order() -> None:
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    patches = patchify(images, 4)  # (B, N, C·P·P)
    assert patches.shape == (2, 4, 48)
    top_right = images[1, :, :4, 4:].reshape(-1)
    assert torch.equal(patches[1, 1], top_right)


def test_linear_patch_embedding_equals_strided_convolution() -> None:
    torch.manual_seed(0)
    vit = VisionTransformer(VisionConfig(image_size=32, patch_size=8, width=64, layers=1), 32)
    images = torch.randn(2, 3, 32, 32)
    conv_weight = vit.patch_embed.weight.reshape(64, 3, 8, 8)
    conv = torch.nn.functional.conv2d(images, conv_weight, stride=8).flatten(2).transpose(1, 2)
    assert torch.allclose(vit.patch_embed(patchify(images, 8)), conv, atol=1e-5)


def test_position_embeddings_interpolate_for_larger_images() -> None:
    torch.manual_seed(0)
    vit = VisionTransformer(VisionConfig(image_size=32, patch_size=8, width=64, layers=1), 32)
    assert vit(torch.randn(2, 3, 32, 32)).shape == (2, 32)
    assert vit(torch.randn(2, 3, 64, 64)).shape == (2, 32)  # 4×4 grid → 8×8 grid
    resized = resize_pos_embed(vit.pos_embed.detach(), 8)
    assert resized.shape == (1 + 64, 64)
    assert torch.equal(resized[0], vit.pos_embed[0])  # the class token's position is kept


def test_bicubic_resize_preserves_a_smooth_field() -> None:
    grid = torch.linspace(0, 1, 4)
    field = (grid[:, None] + grid[None, :]).reshape(16, 1).repeat(1, 8)
    pos = torch.cat([torch.zeros(1, 8), field])
    resized = resize_pos_embed(pos, 8)[1:, 0].reshape(8, 8)
    assert torch.all(resized[:, 1:] >= resized[:, :-1] - 1e-4)  # still increasing left→right


def test_mean_pooling_ignores_the_class_token() -> None:
    config = VisionConfig(
        image_size=16, patch_size=8, width=32, layers=1, head_width=16, pool="mean"
    )
    vit = VisionTransformer(config, 8)
    tokens = torch.randn(1, 5, 32)
    assert torch.allclose(vit.pool(tokens), tokens[:, 1:].mean(dim=1))


def test_sincos_embeddings_are_fixed_and_distinct() -> None:
    pos = sincos_2d(4, 16)
    assert pos.shape == (16, 16)
    assert torch.cdist(pos, pos).fill_diagonal_(1).min() > 0.1
    config = VisionConfig(
        image_size=16, patch_size=4, width=32, layers=1, head_width=16, pos_embed="sincos"
    )
    assert not VisionTransformer(config, 8).pos_embed.requires_grad
