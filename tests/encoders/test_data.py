"""Reading captioned data: bad rows skipped and counted, flips that keep captions true."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from encoders.data.synthetic import SceneObject, render_scene
from encoders.errors import VitrieveError
from encoders.model.transforms import eval_transform
from encoders.training.captions import swap_left_right
from encoders.training.data import (
    CaptionDataset,
    augment_batch,
    normalize_batch,
    preload_images,
    read_captioned,
    read_captioned_counted,
)


def _image(path, colour=(200, 30, 30), size=16):
    Image.new("RGB", (size, size), colour).save(path)


@pytest.fixture
def tsv(tmp_path):
    (tmp_path / "img").mkdir()
    for name in ("a", "b", "c"):
        _image(tmp_path / "img" / f"{name}.png")
    lines = [
        "filepath\ttitle\tlabel\theld_out",
        "img/a.png\ta red square\tred square\t0",
        f"{tmp_path / 'img' / 'b.png'}\tabsolute path works\tred square\t1",
        "img/missing.png\tgone\tx\t0",
        "img/c.png\t\tred square\t0",  # empty caption
        "img/c.png\ttoo\tmany\tfields\there",
        "",
        "img/c.png\tthe third\t\t0",  # empty label is allowed
    ]
    path = tmp_path / "data.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_reads_tsv_and_counts_bad_rows(tsv, caplog):
    items, skipped = read_captioned_counted(tsv, label_col="label")
    assert [i.caption for i in items] == ["a red square", "absolute path works", "the third"]
    assert items[0].path == tsv.parent / "img" / "a.png" and items[0].label == "red square"
    assert items[2].label is None and items[1].extra == {"held_out": "1"}
    assert skipped == {
        "missing image file": 1,
        "empty image or caption": 1,
        "wrong number of fields": 1,
        "empty line": 1,
    }
    with caplog.at_level(logging.WARNING):
        assert len(read_captioned(tsv)) == 3
    assert "skipped 4 bad rows" in caplog.text


def test_custom_separator_and_columns(tmp_path):
    _image(tmp_path / "x.png")
    (tmp_path / "d.csv").write_text('caption,image\n"red, square",x.png\n')
    items = read_captioned(tmp_path / "d.csv", sep=",", image_col="image", caption_col="caption")
    assert items[0].caption == "red, square" and items[0].path == tmp_path / "x.png"
    with pytest.raises(VitrieveError, match="no column 'filepath'"):
        read_captioned(tmp_path / "d.csv", sep=",")
    with pytest.raises(VitrieveError, match="not found"):
        read_captioned(tmp_path / "nope.tsv")


def test_reads_folder_with_txt_captions(tmp_path):
    (tmp_path / "sub").mkdir()
    _image(tmp_path / "sub" / "one.png")
    (tmp_path / "sub" / "one.txt").write_text("  a red\nsquare \n")
    _image(tmp_path / "two.png")  # no caption: skipped
    items, skipped = read_captioned_counted(tmp_path)
    assert [(i.path.name, i.caption) for i in items] == [("one.png", "a red square")]
    assert skipped == {"no caption file": 1}


def test_swap_left_right():
    assert swap_left_right("a red circle left of a blue square") == (
        "a red circle right of a blue square"
    )
    assert swap_left_right("Left: a star on the right side") == "Right: a star on the left side"
    assert swap_left_right("a leftover bright circle") == "a leftover bright circle"


def _left_scene(tmp_path):
    scene = render_scene([SceneObject("red", "circle", "small", "left")], size_px=32)
    scene.image.save(tmp_path / "s.png")
    (tmp_path / "s.txt").write_text("a red circle on the left")
    return read_captioned(tmp_path)


def _red_centroid_x(image: torch.Tensor) -> float:
    """Mean x of reddish pixels in a normalised (3, S, S) image."""
    red = (image[0] > 1.0) & (image[1] < 0.0)
    return float(torch.nonzero(red)[:, 1].float().mean()) / image.shape[-1]


def test_flip_swaps_left_right_consistently(tmp_path):
    dataset = CaptionDataset(_left_scene(tmp_path), eval_transform(32), flip=True)
    torch.manual_seed(0)
    seen = set()
    for _ in range(40):
        image, caption = dataset[0]
        side = "left" if _red_centroid_x(image) < 0.5 else "right"
        assert caption == f"a red circle on the {side}"
        seen.add(side)
    assert seen == {"left", "right"}


def test_augment_batch_flips_with_captions(tmp_path):
    items = _left_scene(tmp_path)
    images, kept = preload_images([items[0].path] * 32, 32)
    assert images.shape == (32, 3, 32, 32) and images.dtype == torch.uint8 and len(kept) == 32
    out, captions = augment_batch(
        images, ["a red circle on the left"] * 32, min_scale=1.0, generator=torch.Generator()
    )
    assert out.shape == (32, 3, 32, 32) and out.dtype == torch.float32
    for image, caption in zip(out, captions, strict=True):
        side = "left" if _red_centroid_x(image) < 0.5 else "right"
        assert caption == f"a red circle on the {side}"
    assert len(set(captions)) == 2
    plain = normalize_batch(images)
    assert torch.allclose(plain[0], eval_transform(32)(Image.open(items[0].path)), atol=1e-5)


def test_unreadable_image_is_skipped_not_fatal(tmp_path):
    _image(tmp_path / "good.png")
    (tmp_path / "good.txt").write_text("good")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    (tmp_path / "bad.txt").write_text("bad")
    items = read_captioned(tmp_path)
    assert [i.caption for i in items] == ["bad", "good"]
    dataset = CaptionDataset(items, eval_transform(16))
    image, caption = dataset[0]
    assert caption == "good" and image.shape == (3, 16, 16) and dataset.skipped == 1
    preloaded = CaptionDataset(items, eval_transform(16), preload=True, image_size=16)
    assert len(preloaded) == 1 and preloaded.captions == ["good"] and preloaded.skipped == 1
    assert np.allclose(preloaded[0][0].numpy(), image.numpy(), atol=1e-5)


def test_preload_resizes_and_crops_to_square(tmp_path):
    Image.new("RGB", (40, 20), (10, 20, 30)).save(tmp_path / "wide.png")
    images, kept = preload_images([tmp_path / "wide.png"], 16)
    assert images.shape == (1, 3, 16, 16) and kept == [0]
    assert images[0, :, 8, 8].tolist() == [10, 20, 30]
