"""Tokenizers: open_clip's BPE (vocabulary shipped in the package) and Hugging Face ones.

Every tokenizer returns (B, context_length) int64 ids padded with ``pad_id`` after the text,
so callers may drop all-padding trailing columns (see ``trim_padding``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from encoders.model.config import TextConfig
from encoders.model.hf_text import resolve_hf_path


class Tokenizer(Protocol):
    """Texts → (B, context_length) token ids."""

    name: str
    context_length: int
    eot_id: int
    pad_id: int

    def __call__(self, texts: Sequence[str]) -> torch.Tensor: ...


class BPETokenizer:
    """CLIP's byte-pair encoding (open_clip's SimpleTokenizer, lower-cased, cleaned)."""

    name = "clip-bpe"
    pad_id = 0

    def __init__(self, context_length: int = 77) -> None:
        from open_clip.tokenizer import SimpleTokenizer

        self.context_length = context_length
        self._bpe = SimpleTokenizer(context_length=context_length)
        self.eot_id = self._bpe.eot_token_id
        self.vocab_size = len(self._bpe.encoder)

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        return self._bpe(list(texts), context_length=self.context_length)


class HFTokenizer:
    """A Hugging Face tokenizer loaded from a local folder (no hub access needed)."""

    def __init__(self, path: str, context_length: int) -> None:
        from transformers import AutoTokenizer

        self.name = path
        self.context_length = context_length
        self._tok = AutoTokenizer.from_pretrained(path)
        self.pad_id = int(self._tok.pad_token_id or 0)
        self.eot_id = int(self._tok.sep_token_id or self._tok.eos_token_id or 0)
        self.vocab_size = len(self._tok)

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        batch = self._tok(
            list(texts),
            padding="max_length",
            truncation=True,
            max_length=self.context_length,
            return_tensors="pt",
        )
        return batch["input_ids"].long()


def get_tokenizer(config: TextConfig) -> Tokenizer:
    """The tokenizer that belongs to a text tower config."""
    if config.hf_model:
        return HFTokenizer(resolve_hf_path(config.hf_model), config.context_length)
    return BPETokenizer(config.context_length)


def trim_padding(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Drop trailing columns that are padding in every row.

    With a causal mask (or a padding mask) and end-of-text pooling, those positions cannot
    change any row's embedding, so a short query need not pay for the full context.
    """
    used = (tokens != pad_id).any(dim=0).nonzero()
    length = int(used.max()) + 1 if used.numel() else 1
    return tokens[:, :length]
