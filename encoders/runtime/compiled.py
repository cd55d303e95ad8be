"""Compiled towers for the Encoder: inductor with frozen weights, a short list of shapes, and
single text queries that any thread may ask for.

* **Shapes.** A compiled graph is specialised to its input shape, and after eight recompiles
  of one function torch falls back to eager. So image batches are padded to the next of a
  short list of batch sizes (powers of two from 8 up to the batch size, the batch size last:
  a 3-image batch runs as 8, not as 512), and a single query's tokens to the next length
  bucket, the context length last (a 65–77-token query compiles once, not per length).
  Padding after end-of-text changes no embedding (causal mask, end-of-text pooling), and
  padded images are sliced off.
* **Threads.** On CUDA single queries run as CUDA graphs (``mode="reduce-overhead"``: one
  graph launch instead of hundreds of kernel launches), and a CUDA graph captured in one
  thread asserts when replayed from another (pytorch/pytorch#123177) — while every server
  worker and Streamlit script is a thread of its own. So compiled queries all run on one
  owner thread per Encoder, which captures and replays every graph; callers hand it the
  tokens and wait (tens of microseconds). A graph's output is overwritten by its next
  replay, so the owner returns a copy. The same path serves the CPU (no graphs there): one
  way, and compiling never races between threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn

TEXT_BUCKETS = (8, 16, 32, 64)  # single-query lengths, before the context length
SMALLEST_IMAGE_BUCKET = 8
MAX_SHAPES = 7  # compiled shapes per tower, under torch's recompile limit of 8


def text_buckets(context_length: int) -> tuple[int, ...]:
    """Token lengths a single query is padded to: the buckets below the context, then it."""
    return (*(b for b in TEXT_BUCKETS if b < context_length), context_length)


def image_buckets(batch_size: int) -> tuple[int, ...]:
    """Batch sizes image batches are padded to: powers of two from ``SMALLEST_IMAGE_BUCKET``
    below ``batch_size``, then ``batch_size`` (at most ``MAX_SHAPES``, the largest kept)."""
    sizes, size = [], SMALLEST_IMAGE_BUCKET
    while size < batch_size:
        sizes.append(size)
        size *= 2
    return (*sizes[-(MAX_SHAPES - 1) :], batch_size)


def next_bucket(size: int, buckets: tuple[int, ...]) -> int:
    """The smallest bucket ≥ ``size`` (``size`` itself beyond the last)."""
    return next((b for b in buckets if b >= size), size)


def pad_batch(batch: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``batch`` with zero images appended up to its bucket (unchanged when it is one)."""
    target = next_bucket(batch.shape[0], image_buckets(batch_size))
    if target == batch.shape[0]:
        return batch
    return torch.cat([batch, batch.new_zeros((target - batch.shape[0], *batch.shape[1:]))])


def pad_tokens(tokens: torch.Tensor, pad_id: int, context_length: int) -> torch.Tensor:
    """``tokens`` padded with ``pad_id`` up to their length bucket."""
    length = tokens.shape[1]
    target = min(next_bucket(length, text_buckets(context_length)), context_length)
    if target <= length:
        return tokens
    return F.pad(tokens, (0, target - length), value=pad_id)


def compile_frozen(tower: nn.Module, mode: str = "default") -> nn.Module:
    """A tower compiled by inductor (frozen, pre-packed weights when called under
    ``frozen()``); ``mode="reduce-overhead"`` also captures each shape as a CUDA graph."""
    return torch.compile(tower, dynamic=False, mode=mode)


def frozen():
    """Inductor's weight freezing, around each compiled call."""
    import torch._inductor.config

    return torch._inductor.config.patch(freezing=True)


class CompiledTowers:
    """The compiled vision tower (padded batches) and text tower (single queries, run on the
    owner thread)."""

    def __init__(
        self,
        visual: nn.Module,
        text: nn.Module,
        device: torch.device,
        autocast: Callable[[], AbstractContextManager] = nullcontext,
    ) -> None:
        """``autocast``: the context each query runs in (entered on the owner thread, since
        autocast is per thread)."""
        self.autocast = autocast
        self.visual = compile_frozen(visual)
        self.graphs = device.type == "cuda"
        self.text = compile_frozen(text, mode="reduce-overhead" if self.graphs else "default")
        self._owner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vitrieve-query")
        self.owner_thread: int | None = None  # the thread that runs every compiled query

    def images(self, batch: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Embeddings of ``batch``, run padded to its bucket."""
        count = batch.shape[0]
        with frozen():
            return self.visual(pad_batch(batch, batch_size))[:count]

    def query(self, tokens: torch.Tensor, pad_id: int, context_length: int) -> torch.Tensor:
        """One query's embedding, computed on the owner thread whichever thread asks."""
        padded = pad_tokens(tokens, pad_id, context_length)
        return self._owner.submit(self._run_query, padded).result()

    def _run_query(self, tokens: torch.Tensor) -> torch.Tensor:
        self.owner_thread = threading.get_ident()
        with torch.inference_mode(), self.autocast(), frozen():
            features = self.text(tokens)
            # a CUDA graph's output is overwritten by its next replay
            return features.clone() if self.graphs else features
