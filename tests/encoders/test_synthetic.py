"""The synthetic generator: deterministic, held-out pairs really held out, boxes where drawn."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from encoders.data.datasets import write_synthetic
from encoders.data.drawing import COLOURS, SHAPES, mask_bbox
from encoders.data.synthetic import (
    SceneObject,
    class_names,
    held_out_pairs,
    render_object,
    render_scene,
    scene_for,
)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(folder).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    write_synthetic(out, n_train=1200, n_test=600, size_px=48, seed=3, workers=2)
    return out


def test_writes_open_clip_tsv_and_class_lists(synth):
    train, test = _rows(synth / "train.tsv"), _rows(synth / "test.tsv")
    assert len(train) == 1200 and len(test) == 600
    assert {"filepath", "title", "label", "held_out", "bbox"} <= set(train[0])
    assert all((synth / r["filepath"]).is_file() for r in train + test)
    classes = (synth / "classes.txt").read_text().split("\n")[:-1]
    assert classes == class_names() and len(classes) == len(COLOURS) * len(SHAPES)
    held = (synth / "held_out.txt").read_text().split("\n")[:-1]
    assert held == held_out_pairs(3) and set(held) < set(classes)
    labelled = [r for r in train if r["label"]]
    assert 0.6 < len(labelled) / len(train) < 0.9  # mostly one object, sometimes two
    assert all(r["label"] in r["objects"] for r in labelled)


def test_held_out_pairs_absent_from_train_present_in_test(synth):
    held = set(held_out_pairs(3))
    train, test = _rows(synth / "train.tsv"), _rows(synth / "test.tsv")
    train_objects = {name for r in train for name in r["objects"].split(";")}
    assert not train_objects & held
    assert all(r["held_out"] == "0" for r in train)
    test_held = {r["label"] for r in test if r["label"] in held}
    assert test_held == held  # every unseen composition is measured
    flagged = [r for r in test if r["held_out"] == "1"]
    assert flagged and all(set(r["objects"].split(";")) & held for r in flagged)


def test_every_colour_and_shape_seen_in_training(synth):
    train_labels = {r["label"] for r in _rows(synth / "train.tsv") if r["label"]}
    assert {label.split()[0] for label in train_labels} == set(COLOURS)
    assert {label.split()[1] for label in train_labels} == set(SHAPES)


def test_held_out_choice_is_seeded_and_about_a_fifth():
    held = held_out_pairs(3)
    assert held == held_out_pairs(3) and held != held_out_pairs(4)
    assert abs(len(held) - 0.2 * len(class_names())) <= 1


def test_generation_is_deterministic_whatever_the_workers(tmp_path):
    write_synthetic(tmp_path / "a", 40, 20, size_px=32, seed=5, workers=1)
    write_synthetic(tmp_path / "b", 40, 20, size_px=32, seed=5, workers=2)
    write_synthetic(tmp_path / "c", 40, 20, size_px=32, seed=6, workers=1)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_bbox_column_matches_drawn_pixels(synth):
    """The recorded box is the re-rendered mask's box, encloses every pixel of the object's
    exact colour, and hugs them (only anti-aliased star tips may stick out by a pixel or two)."""
    rows = _rows(synth / "test.tsv")[:80]
    for index, row in enumerate(rows):
        scene = scene_for(seed=3, split="test", index=index, size_px=48)
        assert row["bbox"] == ";".join(",".join(map(str, b)) for b in scene.boxes)
        if not row["label"]:
            continue
        pixels = np.asarray(Image.open(synth / row["filepath"]).convert("RGB")).astype(int)
        colour = np.array(COLOURS[row["label"].split()[0]])
        ys, xs = np.nonzero(np.abs(pixels - colour).sum(axis=-1) <= 3)  # fully covered pixels
        x0, y0, x1, y1 = map(int, row["bbox"].split(","))
        assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1
        assert max(xs.min() - x0, x1 - 1 - xs.max(), ys.min() - y0, y1 - 1 - ys.max()) <= 2
        assert scene.masks[0][ys, xs].all()


def test_two_object_masks_are_disjoint_and_ordered():
    scene = render_scene(
        [
            SceneObject("red", "circle", "small", "left"),
            SceneObject("blue", "square", "small", "right"),
        ],
        size_px=64,
    )
    left, right = scene.masks
    assert not (left & right).any()
    assert mask_bbox(left)[2] <= 32 <= mask_bbox(right)[0]
    assert scene.caption == "a red circle and a blue square"


def test_render_object_is_deterministic_and_coloured():
    image = render_object("red", "star", 64, seed=1)
    assert image.size == (64, 64) and image.mode == "RGB"
    assert np.array_equal(np.asarray(image), np.asarray(render_object("red", "star", 64, 1)))
    pixels = np.asarray(image).astype(int)
    red = (np.abs(pixels - np.array(COLOURS["red"])).sum(-1) <= 3).mean()
    assert 0.05 < red < 0.5
    with pytest.raises(ValueError):
        render_object("teal", "star")


def test_captions_name_the_object():
    for index in range(50):
        scene = scene_for(seed=0, split="test", index=index, size_px=32)
        text = scene.caption.replace("round shape", "circle").replace("box", "square")
        for obj in scene.objects:
            assert obj.colour in text and obj.shape in text
