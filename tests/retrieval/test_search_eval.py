"""Search metrics against hand-computed values, and the ground-truth reader."""

from __future__ import annotations

import math

import numpy as np
import pytest

from encoders.errors import VitrieveError
from retrieval.evaluation.search_eval import ndcg_at_k, read_ground_truth, recall_at_k
from retrieval.search.calibration import Calibration, Null, QueryStats


def test_recall_and_ndcg_by_hand() -> None:
    ranked = ["a", "x", "b", "y"]
    assert recall_at_k(ranked, {"a", "b"}, 1) == 0.5
    assert recall_at_k(ranked, {"a", "b"}, 3) == 1.0
    dcg = 1 + 1 / math.log2(4)
    ideal = 1 + 1 / math.log2(3)
    assert ndcg_at_k(ranked, {"a", "b"}) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(["a", "b"], {"a", "b"}) == 1.0
    assert ndcg_at_k(["x"], {"a"}) == 0.0


def test_read_ground_truth(tmp_path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("# comment\nred\ta.jpg\tb.jpg\nred\tc.jpg\nnothing\n\n")
    assert read_ground_truth(path) == {"red": {"a.jpg", "b.jpg", "c.jpg"}, "nothing": set()}
    (tmp_path / "empty.tsv").write_text("# nothing\n")
    with pytest.raises(VitrieveError):
        read_ground_truth(tmp_path / "empty.tsv")


def test_calibration_maths() -> None:
    null = Null.of(np.linspace(0.0, 1.0, 101), 0.95, 0.5)
    assert null.cutoff == pytest.approx(0.95) and null.width == pytest.approx(0.45)
    stats = QueryStats(centre=0.2, cutoff=0.3, width=0.1)
    calibration = Calibration("m", 0, np.zeros((0, 4)), np.zeros(0), np.zeros(0), np.zeros((0, 4)))
    values = calibration.calibrate(np.array([0.5, 0.9, 0.1]), stats)
    assert values[0] == pytest.approx(0.5) and values[1] > 0.95 and values[2] < 0.05
    assert calibration.is_stale("other", 0) and not calibration.is_stale("m", 0)


def test_calibration_round_trips_and_detects_staleness(library, tmp_path) -> None:
    calibration = library.calibration
    assert calibration.text.cutoff > 0 and calibration.image.cutoff > 0
    calibration.save(tmp_path / "c.npz")
    loaded = Calibration.load(tmp_path / "c.npz")
    assert loaded is not None and np.array_equal(loaded.text_null, calibration.text_null)
    assert loaded.is_stale(calibration.model_id, 2 * calibration.n_vectors)
    (tmp_path / "bad.npz").write_bytes(b"junk")
    assert Calibration.load(tmp_path / "bad.npz") is None
