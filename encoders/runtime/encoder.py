"""Encoder: the inference face of a model, used by the indexer and retrieval.

It batches inputs, runs under ``torch.inference_mode`` and returns L2-normalised float32
numpy arrays. Its precision (``auto``, ``fp32``, ``bf16``, ``int8``):

* on a CPU, ``auto`` is the fastest *exact* one measured on this machine — fp32, whole-model
  bf16 (weights and activations: faster than autocast where bf16 is native) and int8 dynamic
  quantisation where there is int8 hardware, each checked against fp32 on a held-out set —
  cached per machine and model (``encoders.runtime.candidates``, ``...precision``);
* on a GPU, ``auto`` is bf16 where that device has it natively (Ampere+), fp16 autocast on
  Volta/Turing, fp32 before — a reduced precision kept only while embeddings stay within
  cosine 0.999 of fp32 on the device itself (``encoders.runtime.capability``).

On a CUDA device image batches are larger (``DEFAULT_BATCH``), host batches are pinned and
copied without blocking, attention runs PyTorch's fused SDPA kernels (``encoders.model.layers``),
and a CUDA out-of-memory error halves the batch size and carries on (logged) instead of failing.
``compile=True`` runs both towers compiled (``encoders.runtime.compiled``), from any thread.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from encoders.errors import VitrieveError, check_text
from encoders.model.clip import CLIP
from encoders.model.config import load_config
from encoders.model.tokenizer import Tokenizer, get_tokenizer, trim_padding
from encoders.model.transforms import eval_transform
from encoders.runtime import candidates
from encoders.runtime.compiled import CompiledTowers
from encoders.runtime.device import DEFAULT_DEVICE, is_out_of_memory, resolve_device
from encoders.runtime.packed import packed_copy
from encoders.runtime.precision import (
    Choice,
    TimeRun,
    cuda_precision,
    default_cache_dir,
    perf_counter_time,
)
from encoders.weights.checkpoint import file_digest, load_checkpoint, load_openclip_weights

log = logging.getLogger(__name__)

# fp16 (autocast) is what auto picks on Volta/Turing GPUs; named, it is accepted there too, so
# that ``encoder.precision`` can be handed to another process's Encoder
PRECISIONS = ("auto", "fp32", "bf16", "int8", "fp16")
REDUCED = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Images per model call, by device type: a GPU needs hundreds to be busy; on a CPU larger
# batches only cost memory.
DEFAULT_BATCH = {"cpu": 64, "cuda": 512}


def default_batch_size(device: torch.device) -> int:
    """Images per model call on ``device`` when the caller does not say."""
    return DEFAULT_BATCH.get(device.type, DEFAULT_BATCH["cpu"])


class Encoder:
    """Images and texts → L2-normalised embeddings (float32 numpy, one row per input)."""

    def __init__(
        self,
        model: CLIP,
        tokenizer: Tokenizer | None = None,
        model_id: str = "",
        precision: str = "auto",
        device: str | torch.device = DEFAULT_DEVICE,
        batch_size: int | None = None,
        compile: bool = False,
        cache_dir: Path | None = None,
        time_run: TimeRun = perf_counter_time,
    ) -> None:
        """``cache_dir``: where ``auto`` keeps its measured CPU choice (default
        ``~/.cache/vitrieve``); ``time_run``: how a candidate is timed (tests inject one)."""
        if precision not in PRECISIONS:
            raise VitrieveError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.device = resolve_device(device)
        self.tokenizer = tokenizer or get_tokenizer(model.config.text)
        self.config = model.config
        self.model_id = model_id or model.config.name or "unnamed"
        self.batch_size = batch_size or default_batch_size(self.device)
        self.transform = eval_transform(model.config.vision.image_size)
        self.model = model.eval().to(self.device)
        self.dtype = torch.float32  # of the activations (int8's are float32)
        self.autocast_dtype: torch.dtype | None = None  # fp16 on Volta/Turing GPUs
        self.precision = "fp32"
        self.precision_choice = Choice("fp32", "asked for")
        self._set_precision(precision, default_cache_dir() if cache_dir is None else cache_dir,
                            time_run)  # fmt: skip
        self._packed_text: torch.nn.Module | None = None  # for queries (encoders.runtime.packed)
        if self.dtype == torch.bfloat16 and self.device.type == "cpu":
            probe = trim_padding(
                self.tokenizer(["a red bicycle by the sea"]), self.tokenizer.pad_id
            )
            self._packed_text = packed_copy(self.model.text, probe)
        self._compiled = (
            CompiledTowers(self.model.visual, self.model.text, self.device, self._autocast)
            if compile
            else None
        )

    @classmethod
    def load(
        cls,
        reference: str | Path,
        weights: str | Path | None = None,
        precision: str = "auto",
        compile: bool = False,
        device: str | torch.device = DEFAULT_DEVICE,
        batch_size: int | None = None,
        cache_dir: Path | None = None,
    ) -> Encoder:
        """A checkpoint directory, or a model name / config JSON (+ open_clip ``weights``).

        ``precision``: ``auto`` (the fastest exact one, measured once per machine and model
        and cached in ``cache_dir``, default ``~/.cache/vitrieve``), ``fp32``, ``bf16`` or
        ``int8`` (CPU only; both unchecked when asked for). ``compile=True`` compiles both
        towers (inductor, frozen pre-packed weights): seconds to a minute once per process and
        shape, then faster image batches and ~1.7x faster single queries — worth it for
        indexing and for a long-running server, not for one CLI query.
        """
        path = Path(reference)
        if path.is_dir():
            model, meta = load_checkpoint(path)
            model_id = meta["model_id"]
        else:
            config = load_config(reference)
            if weights is None:
                raise VitrieveError(
                    f"{reference} is not a checkpoint directory; give an open_clip weights file "
                    "to load into it, or train/convert a checkpoint first"
                )
            model = load_openclip_weights(config, Path(weights))
            model_id = file_digest(Path(weights))
        return cls(
            model, model_id=model_id, precision=precision, compile=compile, device=device,
            batch_size=batch_size, cache_dir=cache_dir,
        )  # fmt: skip

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    @property
    def image_size(self) -> int:
        return self.config.vision.image_size

    def _set_precision(self, precision: str, cache_dir: Path, time_run: TimeRun) -> None:
        """Put the model in ``precision`` (``auto``: chosen as the module docstring says)."""
        if self.device.type == "cuda":
            if precision == "int8":
                raise VitrieveError("precision int8 runs on the CPU only: use auto, fp32 or bf16")
            chosen = cuda_precision(self.device) if precision == "auto" else precision
            if chosen != "fp32":
                self._reduce(chosen, checked=precision == "auto")
            reason = "by the device's compute capability" if precision == "auto" else "asked for"
            self.precision_choice = Choice(self.precision, reason)
            return
        if precision == "fp16":
            raise VitrieveError("precision fp16 runs on CUDA GPUs only: use auto, fp32 or bf16")
        self.model, self.precision_choice = candidates.on_cpu(
            self.model, self.tokenizer, self.model_id, precision, cache_dir, time_run
        )
        self.precision = self.precision_choice.precision
        self.dtype = candidates.INPUT_DTYPE[self.precision]

    def _reduce(self, precision: str, checked: bool) -> None:
        """Whole-model bf16 (weights and activations), or fp16 autocast; when ``checked``,
        kept only if the embeddings of probe inputs stay within ``MIN_BF16_COSINE`` of fp32,
        both computed on the device."""
        if checked:
            batches, tokens = candidates.held_out_set(self.image_size, self.tokenizer)
            images = torch.cat(batches)
            with torch.inference_mode():
                img32 = self._image_features(images).float()
                txt32 = self._text_features(tokens).float()
        if precision == "fp16":
            self.autocast_dtype, self.precision = torch.float16, "fp16"
        else:
            reference = copy.deepcopy(self.model) if checked else None
            self.model = self.model.to(REDUCED[precision])
            self.dtype, self.precision = REDUCED[precision], precision
        if not checked:
            return
        with torch.inference_mode():
            cosine = min(
                float(F.cosine_similarity(img32, self._image_features(images).float()).min()),
                float(F.cosine_similarity(txt32, self._text_features(tokens).float()).min()),
            )
        if cosine < candidates.MIN_BF16_COSINE:
            log.warning(
                "%s cosine %.5f < %.3f: encoding in fp32",
                precision, cosine, candidates.MIN_BF16_COSINE,
            )  # fmt: skip
            if precision != "fp16":
                self.model = reference
            self.dtype, self.autocast_dtype, self.precision = torch.float32, None, "fp32"

    def _autocast(self):
        """fp16 autocast where that is the precision (Volta/Turing GPUs), else nothing."""
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Un-normalised image embeddings of one batch, left on the device."""
        with self._autocast():
            return self.model.visual(images.to(self.device, self.dtype))

    def _text_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Un-normalised text embeddings of one batch of tokens, left on the device."""
        with self._autocast():
            return self.model.text(trim_padding(tokens, self.tokenizer.pad_id).to(self.device))

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """One decoded image → the model's input tensor (3, S, S)."""
        return self.transform(image)

    @torch.inference_mode()
    def encode_image_tensors(self, images: torch.Tensor) -> np.ndarray:
        """Preprocessed images (B, 3, S, S), on the host or the device → (B, embed_dim)."""
        outputs = self._in_batches(images.shape[0], lambda a, b: self._image_batch(images[a:b]))
        return _as_numpy(outputs, self.embed_dim)

    def _image_batch(self, batch: torch.Tensor) -> torch.Tensor:
        """One batch onto the device (pinned, non-blocking from the host) and through the
        vision tower; the embeddings stay on the device until the whole call is done."""
        if self.device.type == "cuda" and batch.device.type == "cpu":
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        return self._encode_image_batch(batch.to(self.device, self.dtype)).float()

    def _encode_image_batch(self, batch: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            if self._compiled is None:
                return self.model.visual(batch)
            return self._compiled.images(batch, self.batch_size)  # padded to its bucket

    def _in_batches(self, count: int, run: Callable[[int, int], torch.Tensor]) -> list:
        """``run(start, stop)`` over ``count`` inputs in ``batch_size`` slices; a device
        out-of-memory error halves ``batch_size`` (for later calls too) and retries the slice."""
        outputs, start = [], 0
        while start < count:
            stop = min(start + self.batch_size, count)
            try:
                outputs.append(run(start, stop))
                start = stop
                continue
            except Exception as exc:
                if not is_out_of_memory(exc) or self.batch_size <= 1:
                    raise
            self._halve_batch_size()  # out of the except: the failed batch's memory is freed
        return outputs

    def _halve_batch_size(self) -> None:
        before, self.batch_size = self.batch_size, max(self.batch_size // 2, 1)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        log.warning(
            "out of memory on %s at batch size %d: going on with %d",
            self.device, before, self.batch_size,
        )  # fmt: skip

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Decoded PIL images → (N, embed_dim)."""
        if not images:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        return self.encode_image_tensors(torch.stack([self.preprocess(im) for im in images]))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts → (N, embed_dim); each batch runs only as many positions as it needs."""
        if isinstance(texts, str):
            raise TypeError("encode_texts takes a list of strings")
        texts = [check_text(text, "a text to encode", nul_ok=True) for text in texts]
        outputs = self._in_batches(
            len(texts),
            lambda a, b: torch.from_numpy(self._encode_tokens(self.tokenizer(texts[a:b]))),
        )
        return _as_numpy(outputs, self.embed_dim)

    @torch.inference_mode()
    def _encode_tokens(self, tokens: torch.Tensor) -> np.ndarray:
        tokens = trim_padding(tokens, self.tokenizer.pad_id).to(self.device)
        if self._compiled is not None and tokens.shape[0] == 1:
            # the latency-critical case, one query: compiled, padded to a length bucket
            features = self._compiled.query(
                tokens, self.tokenizer.pad_id, self.tokenizer.context_length
            )
        else:
            tower = self.model.text if self._packed_text is None else self._packed_text
            with self._autocast():
                features = tower(tokens)
        return F.normalize(features.float(), dim=-1).cpu().numpy()

    @torch.inference_mode()
    def patch_similarity(self, text: str, image: Image.Image) -> np.ndarray:
        """Cosine similarity of the text to each projected patch token: a (g, g) grid."""
        pixels = self.preprocess(image)[None].to(self.device, self.dtype)
        with self._autocast():
            patches = self.model.visual.patch_embeddings(pixels).float()
        patches = F.normalize(patches, dim=-1)[0]
        query = torch.from_numpy(self.encode_texts([text])[0])
        grid = self.config.vision.grid_size
        return (patches.cpu() @ query).reshape(grid, grid).numpy()


def _as_numpy(chunks: list[torch.Tensor], dim: int) -> np.ndarray:
    if not chunks:
        return np.zeros((0, dim), dtype=np.float32)
    out = torch.cat([c.to(chunks[0].device) for c in chunks]).float()  # one copy back
    return F.normalize(out, dim=-1).cpu().numpy().astype(np.float32, copy=False)
