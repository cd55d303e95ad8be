"""Training from files: resolve the model config, read and prepare data, run, record.

``train_from_files`` is what ``vitrieve train`` calls; each step is a short function so tests
and benchmarks can reuse them (e.g. ``prepare_data`` with their own items).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from encoders.errors import VitrieveError
from encoders.model.clip import CLIP, create_model
from encoders.model.config import CLIPConfig, TextConfig, load_config
from encoders.model.hf_text import MINILM, HFTextTower
from encoders.model.tokenizer import Tokenizer, get_tokenizer
from encoders.runtime.capability import bf16_native
from encoders.training.captions import build_caption_table
from encoders.training.data import (
    CAPTION_COL,
    IMAGE_COL,
    LABEL_COL,
    CaptionedItem,
    preload_images,
    read_captioned,
)
from encoders.training.devices import device_defaults, train_device
from encoders.training.layout import RunLayout, plot_curves
from encoders.training.loop import Callback, TrainData, Trainer, TrainOptions
from encoders.training.state import TrainState, saved_options
from encoders.training.stream import PRELOAD_LIMIT_BYTES, StreamedImages, preload_bytes
from encoders.training.validate import ZeroShotValidator
from encoders.weights.checkpoint import load_checkpoint

log = logging.getLogger(__name__)

TEXT_TOWERS = ("minilm", "own")  # pretrained MiniLM (the default), or one from scratch
MINILM_CONTEXT = 32  # captions of a few words; MiniLM itself allows 512 tokens
SIGLIP_INIT_SCALE, SIGLIP_INIT_BIAS = math.log(10.0), -10.0  # SigLIP paper's initialisation


@dataclass(frozen=True)
class TrainRequest:
    """Everything ``vitrieve train`` was asked for, already validated by the CLI."""

    data: Path
    out: Path
    model: str = "tiny"
    val: Path | None = None
    image_size: int | None = None
    text_tower: str = "minilm"  # the default: pretrained, locked, cached (see docs/training.md)
    lock_text: bool = True
    resume: bool = False
    sep: str = "\t"
    image_col: str = IMAGE_COL
    caption_col: str = CAPTION_COL
    label_col: str = LABEL_COL
    options: TrainOptions = TrainOptions()


@dataclass(frozen=True)
class TrainResult:
    state: TrainState
    checkpoint: Path
    final: dict[str, float]
    samples_per_s: float


def build_config(request: TrainRequest) -> CLIPConfig:
    """The architecture: a named/JSON config, with image size, text tower and loss applied."""
    config = load_config(request.model)
    if request.image_size:
        config = config.with_image_size(request.image_size)
    if request.text_tower == "minilm":
        text = TextConfig(context_length=MINILM_CONTEXT, hf_model=MINILM, lock=request.lock_text)
        config = replace(config, text=text)
    elif request.text_tower != "own":
        raise VitrieveError(f"unknown text tower {request.text_tower!r}: use one of {TEXT_TOWERS}")
    if request.options.loss == "siglip" and config.init_logit_bias is None:
        config = replace(
            config, init_logit_scale=SIGLIP_INIT_SCALE, init_logit_bias=SIGLIP_INIT_BIAS
        )
    return config


def build_model(config: CLIPConfig, tokenizer: Tokenizer, seed: int) -> CLIP:
    """A fresh model; the seed makes every DDP rank start from the same weights."""
    torch.manual_seed(seed)
    return create_model(config, tokenizer)


@torch.inference_mode()
def cache_text_features(
    tower: HFTextTower,
    tokens: torch.Tensor,
    batch: int = 256,
    device: torch.device | None = None,
) -> torch.Tensor:
    """A locked pretrained tower's pooled output for every caption, computed once (U, H).

    Captions are sorted by length so a batch pays for no padding, and a bf16 copy of the tower
    runs in place of autocast (faster on CPUs with native bf16; the features only feed a
    trained projection, so bf16 rounding is harmless). The copy runs on ``device`` (default:
    the tokens' device); the features come back to the host.
    """
    device = device or tokens.device
    runner = copy.deepcopy(tower).eval().to(device)
    if bf16_native(device):
        runner = runner.to(torch.bfloat16)
    lengths = (tokens != tower.pad_id).sum(dim=1)
    order = lengths.argsort()
    features = torch.empty(len(tokens), tower.proj.in_features)
    for start in range(0, len(tokens), batch):
        index = order[start : start + batch]
        length = max(int(lengths[index].max()), 1)
        features[index] = runner.pool(tokens[index, :length].to(device)).float().cpu()
    return features


def prepare_data(
    items: list[CaptionedItem], model: CLIP, tokenizer: Tokenizer, options: TrainOptions
) -> TrainData:
    """Preload images, tabulate captions (+ hard negatives), cache a locked text tower.

    Everything is returned on the host; the trainer places it on its device.
    """
    device = train_device(options.device)
    images, captions = _images(items, model.config.vision.image_size, options, device)
    negatives = max(2, options.negatives_per_image) if options.hard_negatives else 0
    table = build_caption_table(
        captions, tokenizer, negatives, seed=options.seed, colourless=options.grey_fraction > 0
    )
    features = None
    text = model.text
    if isinstance(text, HFTextTower) and text.config.lock:
        pooled = cache_text_features(text, table.tokens, device=device)
        text.center.copy_(pooled.mean(dim=0))
        text.scale.copy_(pooled.std(dim=0).clamp(min=1e-4))
        features = text.standardize(pooled)
    log.info("training data: %d images, %d distinct texts", len(images), len(table.texts))
    return TrainData(images, captions, table, features)


def _images(
    items: list[CaptionedItem], size: int, options: TrainOptions, device: torch.device
) -> tuple[torch.Tensor | StreamedImages, list[str]]:
    """Preloaded uint8 images and their captions (unreadable images dropped), or — when
    asked, or when preloading would take more than ``PRELOAD_LIMIT_BYTES`` — a stream."""
    paths = [item.path for item in items]
    stream = options.stream
    if stream is None:
        stream = preload_bytes(len(paths), size) > PRELOAD_LIMIT_BYTES
    if stream:
        log.info("streaming %d images (decoded by loader workers at %d px)", len(paths), size)
        return StreamedImages(paths, size), [item.caption for item in items]
    images, kept = preload_images(paths, size, device_defaults(device).decode_workers)
    if not kept:
        raise VitrieveError("none of the training images could be read")
    return images, [items[i].caption for i in kept]


def _model_for(request: TrainRequest) -> tuple[CLIP, Tokenizer]:
    if request.resume:
        model, _ = load_checkpoint(RunLayout(request.out).checkpoint)
        return model, get_tokenizer(model.config.text)
    config = build_config(request)
    tokenizer = get_tokenizer(config.text)
    return build_model(config, tokenizer, request.options.seed), tokenizer


def _set_threads(model: CLIP, options: TrainOptions) -> None:
    """Intra-op threads: as asked, or measured for CPU budget runs (a GPU run's host threads
    only prepare batches: torch's default serves)."""
    if options.threads:
        torch.set_num_threads(options.threads)
    elif options.minutes and train_device(options.device).type == "cpu":
        pick_threads(model)


def pick_threads(model: CLIP, batch: int = 32, rounds: int = 3) -> int:
    """Time fwd+bwd with the default thread count and with 1 (interleaved); set the faster.

    On a machine whose cores are shared, torch's default (one thread per core) can be far
    slower than one thread: every parallel region waits for its slowest thread, and a thread
    that the scheduler has parked stalls all of them (2 threads measured at half the speed of
    1 while other jobs ran, and the opposite on an idle machine).
    """
    default = torch.get_num_threads()
    if default <= 1:
        return default
    size = model.config.vision.image_size
    images = torch.randn(batch, 3, size, size)
    best = {default: float("inf"), 1: float("inf")}
    for _ in range(rounds):
        for threads in (default, 1):
            torch.set_num_threads(threads)
            started = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = model.encode_image(images).float().square().mean()
            loss.backward()
            best[threads] = min(best[threads], time.perf_counter() - started)
    model.zero_grad(set_to_none=True)
    chosen = min(best, key=best.get)
    torch.set_num_threads(chosen)
    log.info("threads: %s s per probe pass -> using %d", best, chosen)
    return chosen


def _options_for(request: TrainRequest) -> TrainOptions:
    """The request's options; a resumed run without a batch size keeps the one it had."""
    options = request.options
    if request.resume and options.batch_size is None:
        saved = saved_options(RunLayout(request.out).checkpoint).get("batch_size")
        if isinstance(saved, int) and saved > 0:
            options = replace(options, batch_size=saved)
    return options


def train_from_files(request: TrainRequest, callback: Callback | None = None) -> TrainResult:
    """Read the data, build (or resume) the model, train, write checkpoint and curves."""
    started = time.perf_counter()
    request.out.mkdir(parents=True, exist_ok=True)
    options = _options_for(request)
    model, tokenizer = _model_for(request)
    _set_threads(model, options)
    items = read_captioned(request.data, request.sep, request.image_col, request.caption_col)
    data = prepare_data(items, model, tokenizer, options)
    validator = None
    if request.val is not None:
        val_items = read_captioned(
            request.val, request.sep, request.image_col, request.caption_col, request.label_col
        )
        validator = ZeroShotValidator(val_items, tokenizer, model.config.vision.image_size)
    trainer = Trainer(model, data, options, request.out, callback, validator, started)
    state = trainer.run(resume=request.resume)
    layout = RunLayout(request.out)
    if trainer.rank == 0:
        plot_curves(layout.read_metrics(), layout.curves)
    final = {k[4:]: v for k, v in trainer.history[-1].items() if k.startswith("val_")}
    rates = [r["samples_per_s"] for r in trainer.history if r.get("samples_per_s")]
    return TrainResult(state, layout.checkpoint, final, rates[-1] if rates else 0.0)
