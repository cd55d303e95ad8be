"""Encoder: the inference face of a model, used by the indexer and retrieval.

It batches inputs, runs under ``torch.inference_mode``, and where bf16 is native (AMX CPUs,
Ampere+ GPUs) runs the *whole network* in bf16 (weights and activations: faster than autocast,
which keeps casting back and forth) — but only after checking, on load and on the device
itself, that bf16 embeddings stay within cosine 0.999 of fp32. Outputs are L2-normalised
float32 numpy arrays.

On a CUDA device image batches are larger (``DEFAULT_BATCH``), host batches are pinned and
copied without blocking, attention runs PyTorch's fused SDPA kernels (``encoders.model.layers``),
and
a CUDA out-of-memory error halves the batch size and carries on (logged) instead of failing.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
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
from encoders.runtime.device import DEFAULT_DEVICE, is_out_of_memory, resolve_device
from encoders.runtime.packed import packed_copy
from encoders.weights.checkpoint import file_digest, load_checkpoint, load_openclip_weights

log = logging.getLogger(__name__)

MIN_BF16_COSINE = 0.999  # bf16 is used only while it keeps embeddings this close to fp32
PRECISIONS = ("auto", "fp32", "bf16")
# Images per model call, by device type: a GPU needs hundreds to be busy; on a CPU larger
# batches only cost memory.
DEFAULT_BATCH = {"cpu": 64, "cuda": 512}


def default_batch_size(device: torch.device) -> int:
    """Images per model call on ``device`` when the caller does not say."""
    return DEFAULT_BATCH.get(device.type, DEFAULT_BATCH["cpu"])


def bf16_supported(device: torch.device) -> bool:
    """True where bf16 matmuls are native (AVX-512-BF16/AMX CPUs, Ampere+ GPUs)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(
        torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


def _probe_inputs(model: CLIP, tokenizer: Tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth, image-like inputs and real captions for the bf16 accuracy check."""
    size = model.config.vision.image_size
    ramp = torch.linspace(-1.5, 1.5, size)
    across, down = ramp[None, :].expand(size, size), ramp[:, None].expand(size, size)
    waves = torch.sin(3 * ramp)[None, :].expand(size, size)
    images = torch.stack([torch.stack([across, down, across * down]), torch.stack([waves] * 3)])
    tokens = tokenizer(["a photo of a red bicycle by the sea", "an invoice"])
    return images, trim_padding(tokens, tokenizer.pad_id)


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
    ) -> None:
        if precision not in PRECISIONS:
            raise VitrieveError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.device = resolve_device(device)
        self.tokenizer = tokenizer or get_tokenizer(model.config.text)
        self.config = model.config
        self.model_id = model_id or model.config.name or "unnamed"
        self.batch_size = batch_size or default_batch_size(self.device)
        self.transform = eval_transform(model.config.vision.image_size)
        self.model = model.eval().to(self.device)
        self.dtype = torch.float32
        self._compiled_visual: torch.nn.Module | None = None
        self._compiled_text: torch.nn.Module | None = None
        self._packed_text: torch.nn.Module | None = (
            None  # for queries (see encoders.runtime.packed)
        )
        if precision == "bf16" or (precision == "auto" and bf16_supported(self.device)):
            self._switch_to_bf16(checked=precision == "auto")
        if self.dtype == torch.bfloat16 and self.device.type == "cpu":
            probe = trim_padding(
                self.tokenizer(["a red bicycle by the sea"]), self.tokenizer.pad_id
            )
            self._packed_text = packed_copy(self.model.text, probe)
        if compile:
            self._compiled_visual = _compile_frozen(self.model.visual)
            # on CUDA the single-query text graphs are also captured as CUDA graphs, one per
            # length bucket: a query is then one graph launch, not hundreds of kernel launches
            graphs = "reduce-overhead" if self.device.type == "cuda" else "default"
            self._compiled_text = _compile_frozen(self.model.text, mode=graphs)

    @classmethod
    def load(
        cls,
        reference: str | Path,
        weights: str | Path | None = None,
        precision: str = "auto",
        compile: bool = False,
        device: str | torch.device = DEFAULT_DEVICE,
        batch_size: int | None = None,
    ) -> Encoder:
        """A checkpoint directory, or a model name / config JSON (+ open_clip ``weights``).

        ``compile=True`` compiles both towers (inductor, frozen pre-packed weights): seconds
        to a minute once per process and shape, then faster image batches and ~1.7x faster
        single queries — worth it for indexing and for a long-running server, not for one
        CLI query.
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
            batch_size=batch_size,
        )  # fmt: skip

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    @property
    def image_size(self) -> int:
        return self.config.vision.image_size

    def _switch_to_bf16(self, checked: bool) -> None:
        """Cast the whole model to bf16; when ``checked``, keep it only if the embeddings of
        probe inputs stay within ``MIN_BF16_COSINE`` of fp32, both computed on the device."""
        if checked:
            images, tokens = _probe_inputs(self.model, self.tokenizer)
            with torch.inference_mode():
                img32 = self._image_features(images).float()
                txt32 = self._text_features(tokens).float()
            reference = copy.deepcopy(self.model)
        self.model = self.model.to(torch.bfloat16)
        self.dtype = torch.bfloat16
        if not checked:
            return
        with torch.inference_mode():
            cosine = min(
                float(F.cosine_similarity(img32, self._image_features(images).float()).min()),
                float(F.cosine_similarity(txt32, self._text_features(tokens).float()).min()),
            )
        if cosine < MIN_BF16_COSINE:
            log.warning("bf16 cosine %.5f < %.3f: encoding in fp32", cosine, MIN_BF16_COSINE)
            self.model, self.dtype = reference, torch.float32

    def _image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Un-normalised image embeddings of one batch, left on the device."""
        return self.model.visual(images.to(self.device, self.dtype))

    def _text_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Un-normalised text embeddings of one batch of tokens, left on the device."""
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
        if self._compiled_visual is None:
            return self.model.visual(batch)
        # A compiled graph is specialised to one batch shape: pad the last batch to it.
        count = batch.shape[0]
        if count < self.batch_size:
            pad = batch.new_zeros((self.batch_size - count, *batch.shape[1:]))
            batch = torch.cat([batch, pad])
        with torch._inductor.config.patch(freezing=True):
            return self._compiled_visual(batch)[:count]

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
        if self._compiled_text is not None and tokens.shape[0] == 1:
            # The latency-critical case, one query: pad to a length bucket so a handful of
            # compiled shapes serve every query (padding after end-of-text changes nothing).
            padded = _pad_to_bucket(tokens, self.tokenizer.pad_id, self.tokenizer.context_length)
            with torch._inductor.config.patch(freezing=True):
                features = self._compiled_text(padded)
        else:
            tower = self.model.text if self._packed_text is None else self._packed_text
            features = tower(tokens)
        return F.normalize(features.float(), dim=-1).cpu().numpy()

    @torch.inference_mode()
    def patch_similarity(self, text: str, image: Image.Image) -> np.ndarray:
        """Cosine similarity of the text to each projected patch token: a (g, g) grid."""
        pixels = self.preprocess(image)[None].to(self.device, self.dtype)
        patches = F.normalize(self.model.visual.patch_embeddings(pixels).float(), dim=-1)[0]
        query = torch.from_numpy(self.encode_texts([text])[0])
        grid = self.config.vision.grid_size
        return (patches.cpu() @ query).reshape(grid, grid).numpy()


def _compile_frozen(tower: torch.nn.Module, mode: str = "default") -> torch.nn.Module:
    """A tower compiled by inductor with frozen (pre-packed, constant) weights; ``mode``
    ``reduce-overhead`` also captures each shape as a CUDA graph."""
    import torch._inductor.config  # noqa: F401  (patched around each call)

    return torch.compile(tower, dynamic=False, mode=mode)


TEXT_BUCKETS = (8, 16, 32, 64)


def _pad_to_bucket(tokens: torch.Tensor, pad_id: int, context: int) -> torch.Tensor:
    length = tokens.shape[1]
    target = min(next((b for b in TEXT_BUCKETS if b >= length), length), context)
    if target == length:
        return tokens
    return F.pad(tokens, (0, target - length), value=pad_id)


def _as_numpy(chunks: list[torch.Tensor], dim: int) -> np.ndarray:
    if not chunks:
        return np.zeros((0, dim), dtype=np.float32)
    out = torch.cat([c.to(chunks[0].device) for c in chunks]).float()  # one copy back
    return F.normalize(out, dim=-1).cpu().numpy().astype(np.float32, copy=False)
