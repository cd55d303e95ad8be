"""Recognise the text in one decoded image: detect lines, straighten each crop (sideways lines
turned, upside-down ones flipped by the angle classifier), read them in batches of similar
width, keep the confident ones. Pixels come from the caller (the indexer's decode, EXIF
orientation applied): no second decode of the file."""

from __future__ import annotations

import math
import time

import cv2
import numpy as np

from indexer.ocr.detect import detect
from indexer.ocr.sessions import Sessions, load_sessions
from indexer.ocr.types import OcrBudgetExceeded, OcrError, OcrOptions, TextLine

REC_HEIGHT, CLS_SHAPE = 48, (48, 192)
MAX_REC_RATIO = 40.0  # a line wider than 40x its height is read squeezed (bounded cost)


def to_bgr(image) -> np.ndarray:
    """A contiguous uint8 BGR array from a PIL image or an RGB / grey ndarray."""
    if hasattr(image, "convert"):
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise OcrError(f"expected 8-bit pixels, got {array.dtype}")
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or min(array.shape[:2]) < 1:
        raise OcrError(f"expected an RGB image, got an array of shape {array.shape}")
    return np.ascontiguousarray(array[:, :, 2::-1])


def crop(bgr: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The quadrilateral ``box`` warped to an upright rectangle; tall ones turned sideways."""
    w = int(max(np.linalg.norm(box[0] - box[1]), np.linalg.norm(box[2] - box[3])))
    h = int(max(np.linalg.norm(box[0] - box[3]), np.linalg.norm(box[1] - box[2])))
    target = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    matrix = cv2.getPerspectiveTransform(box.astype(np.float32), target)
    out = cv2.warpPerspective(bgr, matrix, (max(w, 1), max(h, 1)),
                              borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)  # fmt: skip
    return np.rot90(out) if out.shape[0] >= 1.5 * out.shape[1] else out


def _normalised(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """``img`` resized to ``height`` (width kept in proportion, at most ``width``), scaled to
    -1..1, CHW, right-padded with zeros to ``width``."""
    h, w = img.shape[:2]
    resized_w = min(width, max(1, math.ceil(height * w / h)))
    x = cv2.resize(img, (resized_w, height)).astype(np.float32) * (2 / 255.0) - 1.0
    out = np.zeros((3, height, width), np.float32)
    out[:, :, :resized_w] = x.transpose(2, 0, 1)
    return out


def _batches(crops: list[np.ndarray], size: int):
    """Indices of crops in batches of similar aspect ratio (little padding per batch)."""
    order = np.argsort([c.shape[1] / c.shape[0] for c in crops])
    return [order[i : i + size] for i in range(0, len(order), size)]


def upright(sessions: Sessions, crops: list[np.ndarray], batch: int, check) -> None:
    """Flip in place the crops the angle classifier finds upside down (p > 0.9)."""
    h, w = CLS_SHAPE
    for idx in _batches(crops, batch):
        check()
        x = np.stack([_normalised(crops[i], h, w) for i in idx])
        probs = sessions.cls.run(None, {sessions.cls.get_inputs()[0].name: x})[0]
        for i, p in zip(idx, probs, strict=True):
            if p.argmax() == 1 and p[1] > 0.9:
                crops[i] = cv2.rotate(crops[i], cv2.ROTATE_180)


def read(sessions: Sessions, crops: list[np.ndarray], batch: int, check):
    """(text, confidence) per crop: CTC greedy decoding of the recogniser's output."""
    out: list[tuple[str, float]] = [("", 0.0)] * len(crops)
    chars = sessions.characters
    for idx in _batches(crops, batch):
        check()
        ratio = min(MAX_REC_RATIO, max(320 / REC_HEIGHT,
                    *(crops[i].shape[1] / crops[i].shape[0] for i in idx)))  # fmt: skip
        width = int(REC_HEIGHT * ratio)
        x = np.stack([_normalised(crops[i], REC_HEIGHT, width) for i in idx])
        preds = sessions.rec.run(None, {sessions.rec.get_inputs()[0].name: x})[0]
        best, prob = preds.argmax(axis=2), preds.max(axis=2)
        for row, i in enumerate(idx):
            keep = np.ones(best.shape[1], bool)
            keep[1:] = best[row, 1:] != best[row, :-1]
            keep &= best[row] != 0
            text = "".join(chars[c] for c in best[row][keep] if c < len(chars))
            out[i] = (text, float(prob[row][keep].mean()) if keep.any() else 0.0)
    return out


def _reading_order(boxes: np.ndarray) -> np.ndarray:
    """Top to bottom, then left to right within a line (boxes whose tops are close)."""
    if len(boxes) == 0:
        return np.zeros(0, int)
    tops, lefts = boxes[:, :, 1].min(axis=1), boxes[:, :, 0].min(axis=1)
    heights = boxes[:, :, 1].max(axis=1) - tops
    row = np.round(tops / max(4.0, float(np.median(heights)) / 2))
    return np.lexsort((lefts, row))


def recognise(image, options: OcrOptions | None = None) -> list[TextLine]:
    """The text lines in ``image`` (a PIL image or an RGB ndarray, as the user sees it), in
    reading order. Raises ``OcrError`` (``OcrBudgetExceeded`` past the time limit)."""
    options = options or OcrOptions()
    started = time.perf_counter()

    def check() -> None:
        if time.perf_counter() - started > options.time_limit_s:
            raise OcrBudgetExceeded(f"text recognition gave up after {options.time_limit_s:g} s")

    try:
        bgr = to_bgr(image)
        full_h, full_w = bgr.shape[:2]
        if full_h * full_w > options.max_pixels:
            s = math.sqrt(options.max_pixels / (full_h * full_w))
            bgr = cv2.resize(bgr, (max(1, int(full_w * s)), max(1, int(full_h * s))),
                             interpolation=cv2.INTER_AREA)  # fmt: skip
        sessions = load_sessions(options.threads, options.device)
        boxes, scores = detect(
            sessions.det, bgr, options.det_side, options.fine_side, options.box_threshold
        )
        check()
        if len(boxes) > options.max_lines:
            keep = np.argsort(-scores)[: options.max_lines]
            boxes = boxes[keep]
        boxes = boxes[_reading_order(boxes)]
        crops = [crop(bgr, _clockwise(b)) for b in boxes]
        upright(sessions, crops, options.rec_batch, check)
        texts = read(sessions, crops, options.rec_batch, check)
    except OcrError:
        raise
    except Exception as error:  # onnxruntime, cv2: a clear reason for the caller to record
        raise OcrError(f"text recognition failed: {type(error).__name__}: {error}") from error
    h, w = bgr.shape[:2]
    lines = []
    for box, (text, confidence) in zip(boxes, texts, strict=True):
        if text.strip() and confidence >= options.min_confidence:
            poly = tuple(
                (round(float(x) / w, 5), round(float(y) / h, 5)) for x, y in _clockwise(box)
            )
            lines.append(TextLine(text.strip(), round(confidence, 4), poly))
    return lines


def _clockwise(box: np.ndarray) -> np.ndarray:
    """The four corners clockwise from the one nearest the top-left (top-left, top-right,
    bottom-right, bottom-left of a level box)."""
    by_x = box[np.argsort(box[:, 0])]
    left, right = by_x[:2], by_x[2:]
    tl, bl = left[np.argsort(left[:, 1])]
    tr, br = right[np.argsort(right[:, 1])]
    return np.array([tl, tr, br, bl], np.float32)
