"""What text recognition takes and gives: options, recognised lines, and its one error type."""

from __future__ import annotations

from dataclasses import dataclass


class OcrError(RuntimeError):
    """Recognition of one image failed or gave up; ``str(error)`` is the reason to record for
    the file (the indexer stores it and goes on with the next one)."""


class OcrBudgetExceeded(OcrError):
    """The image went past its time budget (``OcrOptions.time_limit_s``)."""


@dataclass(frozen=True)
class TextLine:
    """One recognised line: its text, the recogniser's mean character confidence (0..1), and
    its box as four (x, y) corners normalised to 0..1 of the image as the user sees it,
    clockwise from the corner nearest the image's top-left."""

    text: str
    confidence: float
    polygon: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class OcrOptions:
    """How hard to look, and the budget per image.

    ``det_side``: the longer side detection runs at (text below ~8 px at that scale is lost);
    ``fine_side``: where the coarse pass found text regions, the longer side of the full
    image at which those regions alone are detected again (small print in big photos);
    ``max_pixels``: bigger images (scans) are downscaled to this many pixels first;
    ``max_lines``: the most boxes recognised per image (the highest-scoring ones);
    ``time_limit_s``: an image still running after this raises ``OcrBudgetExceeded``;
    ``threads``: ONNX Runtime intra-op threads per session (0: ONNX Runtime's default);
    ``device``: "cpu", "cuda" or "auto" (CUDA when onnxruntime-gpu sees a device)."""

    det_side: int = 1280
    fine_side: int = 3200
    min_confidence: float = 0.5
    box_threshold: float = 0.5
    max_pixels: int = 40_000_000
    max_lines: int = 400
    rec_batch: int = 16
    time_limit_s: float = 60.0
    threads: int = 0
    device: str = "auto"
