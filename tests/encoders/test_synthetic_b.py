"""Style B, the second data family: its own vocabulary, held-out pairs held out, deterministic."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from encoders.data import synthetic, synthetic_b
from encoders.data.datasets import write_synthetic
from encoders.data.drawing import mask_bbox


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.fixture(scope="module")
def family_b(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth_b")
    write_synthetic(out, n_train=600, n_test=300, size_px=48, seed=4, workers=2, style="B")
    return out


def test_vocabulary_is_independent_of_style_a():
    assert not set(synthetic_b.COLOURS) & set(synthetic.COLOURS)
    assert not set(synthetic_b.SHAPES) & set(synthetic.SHAPES)
    assert len(synthetic_b.class_names()) == 48


def test_held_out_pairs_one_per_colour_and_shape_and_absent_from_training(family_b):
    held = synthetic_b.held_out_pairs(4)
    assert len(held) == 6 and held == synthetic_b.held_out_pairs(4) != synthetic_b.held_out_pairs(5)
    colours, shapes = zip(*(name.split(" ") for name in held), strict=True)
    assert len(set(colours)) == 6 and len(set(shapes)) == 6
    assert (family_b / "held_out.txt").read_text().split("\n")[:-1] == held
    train, test = _rows(family_b / "train.tsv"), _rows(family_b / "test.tsv")
    shown = {name for r in train for name in r["objects"].split(";")}
    assert not shown & set(held)
    assert shown == set(synthetic_b.class_names()) - set(held)  # everything else is seen
    assert any(r["held_out"] == "1" for r in test)


def test_captions_name_colour_and_shape_in_several_forms(family_b):
    rows = _rows(family_b / "train.tsv")
    for row in rows[:200]:
        for name in row["objects"].split(";"):
            colour, shape = name.split(" ")
            words = {"crescent", "moon"} if shape == "crescent" else {shape}
            assert colour in row["title"] and any(w in row["title"] for w in words), row
    assert any(" is " in r["title"] for r in rows)  # colour after the noun: "the ring is pink"
    assert any(" above " in r["title"] or " below " in r["title"] for r in rows)


def test_scenes_are_deterministic_and_boxes_cover_drawn_pixels():
    first = synthetic_b.scene_for(9, "test", 17, 64)
    again = synthetic_b.scene_for(9, "test", 17, 64)
    assert first.caption == again.caption
    assert np.array_equal(np.asarray(first.image), np.asarray(again.image))
    for index in range(30):
        scene = synthetic_b.scene_for(9, "train", index, 64)
        for obj, mask in zip(scene.objects, scene.masks, strict=True):
            assert mask.sum() >= 8, (index, obj)  # every object visible, outlines included
            x0, y0, x1, y1 = mask_bbox(mask)
            pixels = np.asarray(scene.image)[y0:y1, x0:x1][mask[y0:y1, x0:x1]].astype(float)
            target = np.array(synthetic_b.COLOURS[obj.colour], float)
            assert np.median(np.abs(pixels - target).max(axis=1)) < 60  # its colour, shaded
