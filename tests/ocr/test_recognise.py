"""Recognition on generated photos: words and numbers read, sideways and upside-down text,
no text where there is none, bad input refused with OcrError, budgets enforced."""

from __future__ import annotations

import numpy as np
import pytest
from textimages import KINDS, make_scene, text_free, upside_down_scene

pytest.importorskip("rapidocr_onnxruntime")

from indexer.ocr import OcrBudgetExceeded, OcrError, OcrOptions, recognise  # noqa: E402
from indexer.store.text_index import fold  # noqa: E402

OPTIONS = OcrOptions(threads=2, device="cpu")


def found(words, lines) -> list[str]:
    """The words whose folded form appears in the folded text (spaces ignored: PP-OCR's
    Chinese-English model sometimes drops a space, and search matches substrings)."""
    text = fold("".join(line.text for line in lines)).replace(" ", "")
    return [w for w in words if fold(w).replace(" ", "") in text]


@pytest.fixture(scope="module")
def readings():
    scenes = [make_scene(kind, 3) for kind in KINDS] + [upside_down_scene(4), text_free(5)]
    return [(scene, recognise(scene.image, OPTIONS)) for scene in scenes]


def test_reads_words_and_numbers(readings) -> None:
    words = [w for scene, _ in readings for w in scene.words]
    hits = [w for scene, lines in readings for w in found(scene.words, lines)]
    missed = sorted(set(words) - set(hits))
    assert len(hits) / len(words) >= 0.9, missed
    by_name = {scene.name: (scene, lines) for scene, lines in readings}
    for name in ("sideways-3", "upside-down-4", "receipt-3"):  # turned, flipped, small print
        scene, lines = by_name[name]
        assert len(found(scene.words, lines)) >= len(scene.words) - 1, (name, lines)


def test_no_text_and_boxes(readings) -> None:
    scene, lines = readings[-1]
    assert scene.words == () and lines == []
    for _, lines in readings[:-1]:
        for line in lines:
            assert 0 <= line.confidence <= 1 and len(line.polygon) == 4
            assert all(0 <= x <= 1 and 0 <= y <= 1 for x, y in line.polygon)


def test_bad_input_and_budgets() -> None:
    with pytest.raises(OcrError):
        recognise(np.zeros((10, 10, 3), np.float32), OPTIONS)
    with pytest.raises(OcrError):
        recognise(np.zeros((10, 10, 2), np.uint8), OPTIONS)
    assert recognise(np.zeros((1, 1, 3), np.uint8), OPTIONS) == []
    with pytest.raises(OcrError, match="device"):
        recognise(np.zeros((8, 8, 3), np.uint8), OcrOptions(device="tpu"))
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(OcrError, match="onnxruntime-gpu"):
            recognise(np.zeros((8, 8, 3), np.uint8), OcrOptions(device="cuda"))
    scene = make_scene("sign", 7, (640, 480))
    with pytest.raises(OcrBudgetExceeded):
        recognise(scene.image, OcrOptions(threads=2, device="cpu", time_limit_s=0.0))
    small = recognise(scene.image, OcrOptions(threads=2, device="cpu", max_pixels=160_000))
    assert found(scene.words, small)  # a huge scan is downscaled, not refused


@pytest.mark.slow
def test_receipt_in_a_12_megapixel_photo() -> None:
    scene = make_scene("receipt", 1, (4000, 3000))  # print ~21 px tall in 3000 rows
    lines = recognise(scene.image, OPTIONS)
    assert len(found(scene.words, lines)) >= len(scene.words) - 1, lines
    coarse = recognise(scene.image, OcrOptions(threads=2, device="cpu", fine_side=0))
    assert len(found(scene.words, coarse)) < len(scene.words) - 1  # the fine pass is why
