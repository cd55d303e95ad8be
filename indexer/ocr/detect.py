"""Text detection, coarse to fine: the whole image at ``det_side``, then only the regions whose
text was too small at that scale again, magnified, so receipt print in a 12 MP photo is read
without detecting 12 MP (RapidOCR's default detects at <= 2000 px and loses it).

PP-OCR's DB detector outputs a text probability map; its post-processing (boxes from the
binarised map) is rapidocr-onnxruntime's own ``DBPostProcess``."""

from __future__ import annotations

import cv2
import numpy as np

MIN_KERNEL_PX = 7  # a DB text kernel thinner than this at the coarse scale: look closer
TARGET_KERNEL_PX = 12  # ...magnified until the kernel is about this thick (text ~25 px)
MAX_ZOOM = 3.0  # at most this many times the native resolution
FINE_BUDGET_PX = 6_000_000  # pixels detected again per image, all regions together


def _postprocess(box_threshold: float):
    from rapidocr_onnxruntime.ch_ppocr_det.utils import DBPostProcess

    return DBPostProcess(thresh=0.3, box_thresh=box_threshold, max_candidates=1000,
                         unclip_ratio=1.6, score_mode="fast", use_dilation=True)  # fmt: skip


def probability_map(session, bgr: np.ndarray, scale: float) -> np.ndarray:
    """The DB text probability of ``bgr`` resized by ``scale`` (sides rounded to 32)."""
    h, w = bgr.shape[:2]
    nh, nw = max(32, round(h * scale / 32) * 32), max(32, round(w * scale / 32) * 32)
    interp = cv2.INTER_AREA if nh < h else cv2.INTER_LINEAR
    x = cv2.resize(bgr, (nw, nh), interpolation=interp).astype(np.float32)
    x = (x * (2 / 255.0) - 1.0).transpose(2, 0, 1)[None]
    return session.run(None, {session.get_inputs()[0].name: x})[0][0, 0]


def boxes_of(prob: np.ndarray, shape: tuple[int, int], box_threshold: float):
    """Quadrilaterals (N, 4, 2) in pixels of an image of ``shape`` (h, w), and their scores."""
    boxes, scores = _postprocess(box_threshold)(prob[None, None], shape)
    return np.asarray(boxes, np.float32).reshape(-1, 4, 2), np.asarray(scores, np.float32)


def small_text_regions(prob: np.ndarray, coarse_scale: float, fine_zoom: float):
    """Rectangles (x0, y0, x1, y1, zoom) in full-image pixels around text worth a closer look,
    and the scale (relative to the full image) to detect them at. When the coarse pass was
    much below ``fine_zoom`` every text region is looked at again (lines of small print merge
    into one blob at the coarse scale); otherwise only text seen too thin, magnified."""
    mask = (prob > 0.3).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    everything = fine_zoom > 1.1 * coarse_scale
    chosen, thickness = np.zeros_like(mask), []
    for i in range(1, n):
        x, y, w, h, area = stats[i]
        if area < 4:
            continue
        points = np.argwhere(labels[y : y + h, x : x + w] == i)[:, ::-1].astype(np.float32)
        side = min(cv2.minAreaRect(points)[1])
        if everything or side < MIN_KERNEL_PX:
            chosen[y : y + h, x : x + w] |= (labels[y : y + h, x : x + w] == i).astype(np.uint8)
            thickness.append(max(side, 1.0))
    if not thickness:
        return []
    if everything:
        zoom = fine_zoom
    else:
        zoom = min(MAX_ZOOM, coarse_scale * TARGET_KERNEL_PX / float(np.median(thickness)))
    pad = 4 * TARGET_KERNEL_PX
    grouped = cv2.dilate(chosen, np.ones((pad // 2, pad), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(grouped, connectivity=8)
    regions = []
    for x, y, w, h, _ in stats[1:]:
        x0, y0 = max(0, x - pad // 2) / coarse_scale, max(0, y - pad // 2) / coarse_scale
        x1 = min(prob.shape[1], x + w + pad // 2) / coarse_scale
        y1 = min(prob.shape[0], y + h + pad // 2) / coarse_scale
        regions.append((int(x0), int(y0), int(x1), int(y1), zoom))
    regions.sort(key=lambda r: (r[2] - r[0]) * (r[3] - r[1]))
    return regions


def detect(session, bgr: np.ndarray, det_side: int, fine_side: int, box_threshold: float):
    """Text boxes (N, 4, 2) in pixels of ``bgr`` and their scores, coarse then fine
    (``fine_side`` 0: coarse only)."""
    h, w = bgr.shape[:2]
    scale = min(1.0, det_side / max(h, w)) if max(h, w) > 64 else 2.0
    prob = probability_map(session, bgr, scale)
    boxes, scores = boxes_of(prob, (h, w), box_threshold)
    if fine_side <= 0:
        return boxes, scores
    fine_zoom = min(1.0, fine_side / max(h, w))
    budget, found = FINE_BUDGET_PX, [(boxes, scores)]
    for x0, y0, x1, y1, zoom in small_text_regions(prob, prob.shape[1] / w, fine_zoom):
        cost = (x1 - x0) * (y1 - y0) * zoom * zoom
        if cost > budget or x1 - x0 < 4 or y1 - y0 < 4:
            continue
        budget -= cost
        inner = bgr[y0:y1, x0:x1]
        b, s = boxes_of(probability_map(session, inner, zoom), inner.shape[:2], box_threshold)
        inside = _centres_inside(found[0][0], (x0, y0, x1, y1))
        found[0] = (found[0][0][~inside], found[0][1][~inside])  # the fine pass replaces them
        found.append((b + np.array([x0, y0], np.float32), s))
    return np.concatenate([b for b, _ in found]), np.concatenate([s for _, s in found])


def _centres_inside(boxes: np.ndarray, rect) -> np.ndarray:
    if len(boxes) == 0:
        return np.zeros(0, bool)
    c = boxes.mean(axis=1)
    x0, y0, x1, y1 = rect
    return (c[:, 0] >= x0) & (c[:, 0] <= x1) & (c[:, 1] >= y0) & (c[:, 1] <= y1)
