"""Text in photos: PP-OCR (detection, angle classification, recognition) through ONNX Runtime,
from the pixels the indexer has already decoded. See ``recognise``."""

from indexer.ocr.recognise import recognise
from indexer.ocr.types import OcrBudgetExceeded, OcrError, OcrOptions, TextLine

__all__ = ["OcrBudgetExceeded", "OcrError", "OcrOptions", "TextLine", "recognise"]
