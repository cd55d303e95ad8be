"""Contrastive losses against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from encoders.training.loss import clip_loss, contrastive_loss, siglip_loss

# Two images and two captions in 2-D: image 0 = x-axis, image 1 = y-axis; caption 1 is tilted.
IMAGE = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
TEXT = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
SCALE = torch.tensor(2.0)


def _ce(logits: list[float], target: int) -> float:
    return -logits[target] + math.log(sum(math.exp(v) for v in logits))


def test_clip_loss_matches_hand_computation():
    # cosines: image·text = [[1, .6], [0, .8]]; × scale 2
    per_image = [[2.0, 1.2], [0.0, 1.6]]
    per_text = [[2.0, 0.0], [1.2, 1.6]]  # the transpose
    expected = (
        (_ce(per_image[0], 0) + _ce(per_image[1], 1)) / 2
        + (_ce(per_text[0], 0) + _ce(per_text[1], 1)) / 2
    ) / 2
    assert clip_loss(IMAGE, TEXT, SCALE).item() == pytest.approx(expected, rel=1e-6)


def test_clip_loss_hard_negative_only_in_image_to_text_direction():
    negative = torch.tensor([[0.0, 1.0]])  # a caption that matches image 1 better than its own
    per_image = [[2.0, 1.2, 0.0], [0.0, 1.6, 2.0]]
    per_text = [[2.0, 0.0], [1.2, 1.6]]
    expected = (
        (_ce(per_image[0], 0) + _ce(per_image[1], 1)) / 2
        + (_ce(per_text[0], 0) + _ce(per_text[1], 1)) / 2
    ) / 2
    got = clip_loss(IMAGE, TEXT, SCALE, text_negatives=negative)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    masked = clip_loss(IMAGE, TEXT, SCALE, negative, negative_mask=torch.tensor([False]))
    assert masked.item() == pytest.approx(clip_loss(IMAGE, TEXT, SCALE).item(), rel=1e-6)


def test_siglip_loss_matches_hand_computation():
    bias = torch.tensor(-1.0)
    logits = [[2.0 - 1, 1.2 - 1], [0.0 - 1, 1.6 - 1]]

    def log_sigmoid(x: float) -> float:
        return -math.log1p(math.exp(-x))

    total = 0.0
    for i in range(2):
        for j in range(2):
            sign = 1.0 if i == j else -1.0
            total -= log_sigmoid(sign * logits[i][j])
    assert siglip_loss(IMAGE, TEXT, SCALE, bias).item() == pytest.approx(total / 2, rel=1e-6)
    negative = torch.tensor([[0.0, 1.0]])
    extra = -log_sigmoid(-(0.0 - 1)) - log_sigmoid(-(2.0 - 1))
    with_negative = siglip_loss(IMAGE, TEXT, SCALE, bias, negative)
    assert with_negative.item() == pytest.approx((total + extra) / 2, rel=1e-6)


def test_perfect_alignment_drives_clip_loss_to_zero_and_dispatch_checks_bias():
    eye = torch.eye(4)
    assert clip_loss(eye, eye, torch.tensor(100.0)).item() < 1e-6
    with pytest.raises(ValueError):
        contrastive_loss("siglip", eye, eye, torch.tensor(1.0))
    with pytest.raises(ValueError):
        contrastive_loss("triplet", eye, eye, torch.tensor(1.0))


def test_gradients_flow_to_both_towers():
    image = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1).requires_grad_()
    text = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1).requires_grad_()
    clip_loss(image, text, torch.tensor(10.0)).backward()
    assert image.grad.abs().sum() > 0 and text.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_loss_is_float32_under_bf16_autocast(kind):
    """The trainer's embeddings arrive in bf16 from autocast; the loss is computed in fp32
    (a softmax over the batch in bf16 loses the small differences that rank pairs)."""
    torch.manual_seed(0)
    image = torch.nn.functional.normalize(torch.randn(32, 16), dim=-1)
    text = torch.nn.functional.normalize(image + 0.3 * torch.randn(32, 16), dim=-1)
    scale, bias = torch.tensor(50.0), torch.tensor(-5.0)
    low = image.bfloat16(), text.bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = contrastive_loss(kind, *low, scale, bias)
    reference = contrastive_loss(kind, low[0].float(), low[1].float(), scale, bias)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
