"""ONNX Runtime sessions for the PP-OCRv4 models bundled in the ``rapidocr-onnxruntime`` wheel:
nothing is downloaded; threads are set explicitly; CUDA when it is there and asked for."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from indexer.ocr.types import OcrError

log = logging.getLogger(__name__)

MODEL_FILES = {
    "det": "ch_PP-OCRv4_det_infer.onnx",
    "cls": "ch_ppocr_mobile_v2.0_cls_infer.onnx",
    "rec": "ch_PP-OCRv4_rec_infer.onnx",
}


def model_dir() -> Path:
    """The folder of the bundled models (inside the installed rapidocr_onnxruntime package)."""
    try:
        import rapidocr_onnxruntime
    except ImportError as error:  # an optional dependency
        raise OcrError(
            "text recognition needs rapidocr-onnxruntime (pip install vitrieve[ocr])"
        ) from error
    return Path(rapidocr_onnxruntime.__file__).parent / "models"


def providers(device: str) -> list[str]:
    """The execution providers for ``device`` ("cpu", "cuda", "auto"); "cuda" without a
    CUDA-capable onnxruntime raises, "auto" falls back to the CPU."""
    import onnxruntime as ort

    if device not in ("cpu", "cuda", "auto"):
        raise OcrError(f"device must be cpu, cuda or auto, not {device!r}")
    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise OcrError(
            "device 'cuda' asked for, but onnxruntime has no CUDA provider "
            "(pip install onnxruntime-gpu)"
        )
    return ["CPUExecutionProvider"]


@dataclass(frozen=True)
class Sessions:
    """The three models, loaded once: detection, angle classification, recognition."""

    det: object
    cls: object
    rec: object
    characters: list[str]
    providers: tuple[str, ...]


def _session(path: Path, threads: int, chosen: list[str]):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=chosen)


_cache: dict[tuple[int, str], Sessions] = {}
_lock = threading.Lock()


def load_sessions(threads: int = 0, device: str = "auto") -> Sessions:
    """Sessions for (threads, device), cached per process (loading takes ~0.3 s)."""
    key = (threads, device)
    with _lock:
        if key not in _cache:
            chosen, folder = providers(device), model_dir()
            det, cls, rec = (_session(folder / MODEL_FILES[k], threads, chosen)
                             for k in ("det", "cls", "rec"))  # fmt: skip
            meta = rec.get_modelmeta().custom_metadata_map
            characters = ["blank", *meta["character"].splitlines(), " "]
            _cache[key] = Sessions(det, cls, rec, characters, tuple(rec.get_providers()))
            log.info("OCR models loaded on %s (%d threads)", _cache[key].providers[0], threads)
        return _cache[key]
