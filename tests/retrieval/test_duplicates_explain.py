"""Near-duplicates (planted copies found, no false groups) and explain heatmaps."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from encoders.data.synthetic import SceneObject, render_scene
from encoders.errors import VitrieveError
from retrieval.search.duplicates import find_duplicates
from retrieval.search.explain import explain, write_heatmap


def test_duplicates_finds_planted_copies_and_nothing_else(library, synth_library) -> None:
    groups = find_duplicates(library.index, library.store, thumbnail_of=library.thumbnail_path)
    assert sorted(sorted(g.paths) for g in groups) == sorted(
        sorted(pair) for pair in synth_library.copies
    )
    assert all(g.min_similarity >= 0.95 for g in groups)


def test_duplicates_rejects_a_bad_threshold(library) -> None:
    with pytest.raises(VitrieveError):
        find_duplicates(library.index, library.store, threshold=1.5)


def _overlap(mask: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Fraction of the hot pixels inside the box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    return float(mask[y0:y1, x0:x1].sum() / max(mask.sum(), 1))


@pytest.mark.parametrize("position", ["left", "right", "top", "bottom"])
def test_explain_hot_area_overlaps_the_object(library, position: str) -> None:
    scene = render_scene([SceneObject("red", "square", "large", position)], 192, seed=3)
    explanation = explain(library.encoder, "a red square", scene.image)
    assert explanation.heat.shape == (192, 192)
    box = scene.boxes[0]
    box_share = (box[2] - box[0]) * (box[3] - box[1]) / 192**2
    inside = _overlap(explanation.hot_mask(), box)
    assert inside > max(0.5, 2 * box_share), (inside, box_share)


def test_write_heatmap_png(library, tmp_path) -> None:
    image = render_scene([SceneObject("blue", "circle", "large", "left")], 120, seed=1).image
    image = image.resize((160, 120))  # not square: the heat covers the centre crop only
    out = tmp_path / "heat.png"
    explanation = write_heatmap(library.encoder, "a blue circle", image, out)
    with Image.open(out) as written:
        assert written.size == (160, 120) and written.format == "PNG"
    assert explanation.crop == (20, 0, 140, 120)
    assert explanation.heat[:, :20].max() == 0.0
    with pytest.raises(VitrieveError, match="empty"):
        explain(library.encoder, " ", image)
