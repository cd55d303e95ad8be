"""The Encoder's precisions on a CPU — fp32, whole-model bf16, int8 dynamic quantisation —
each checked for exactness against fp32 and timed on a held-out set (``choose_cpu``).

The held-out set is ``PROBE_BATCHES`` batches of synthetic scenes (coloured shapes on varied
backgrounds, ``encoders.data.synthetic``) with their captions: image-like inputs a real model
tells apart, made on the spot, so no data ships with the package. Each candidate encodes the
batches in turn with the others (the timing rounds *are* the held-out encodings), then:

* bf16 is exact when every image and caption embedding is within cosine ``MIN_BF16_COSINE``
  of fp32's (whole-model bf16: weights and activations, faster than autocast where bf16 is);
* int8 (``torch.ao.quantization.quantize_dynamic`` on every ``nn.Linear``: int8 weights,
  activations quantised per call) is exact when each image's and caption's top-10 image
  neighbours agree with fp32's on at least ``MIN_INT8_AGREEMENT`` of the set — int8 moves
  embeddings more than bf16 does, and what a search needs kept is the ranking.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from encoders.model.tokenizer import Tokenizer, trim_padding
from encoders.model.transforms import eval_transform
from encoders.runtime.capability import bf16_native, int8_hardware
from encoders.runtime.precision import (
    Choice,
    ChoiceCache,
    TimeRun,
    cache_key,
    perf_counter_time,
    pick,
    time_candidates,
)

log = logging.getLogger(__name__)

MIN_BF16_COSINE = 0.999  # bf16 is used only while it keeps embeddings this close to fp32
MIN_INT8_AGREEMENT = 0.98  # share of top-10 neighbours int8 must keep
TOP_K = 10
PROBE_BATCHES, PROBE_BATCH = 4, 8  # held-out images: 4 timed batches of 8
INPUT_DTYPE = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.float32}


def cpu_candidates(device: torch.device) -> list[str]:
    """The precisions worth measuring on this CPU: fp32, bf16 where oneDNN has native bf16
    kernels, int8 where there is int8 dot-product hardware (VNNI, AMX-int8)."""
    names = ["fp32"]
    if bf16_native(device):
        names.append("bf16")
    if int8_hardware():
        names.append("int8")
    return names


def convert(model: nn.Module, precision: str) -> nn.Module:
    """``model`` (fp32) in ``precision``: itself, a bf16 copy, or an int8-quantised copy."""
    if precision == "fp32":
        return model
    if precision == "bf16":
        return copy.deepcopy(model).to(torch.bfloat16)
    if precision == "int8":
        with warnings.catch_warnings():  # torch.ao.quantization is deprecated for torchao, but
            warnings.simplefilter("ignore")  # still ships (torch 2.14) and needs no extra package
            from torch.ao.quantization import quantize_dynamic

            return quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)
    raise ValueError(f"no CPU conversion to {precision!r}")


def held_out_set(image_size: int, tokenizer: Tokenizer) -> tuple[list[torch.Tensor], torch.Tensor]:
    """``PROBE_BATCHES`` image batches of synthetic scenes and their captions' tokens."""
    from encoders.data.synthetic import class_names, sample_scene

    rng = np.random.default_rng(0)
    transform = eval_transform(image_size)
    scenes = [
        sample_scene(image_size, class_names(), rng) for _ in range(PROBE_BATCHES * PROBE_BATCH)
    ]
    pixels = torch.stack([transform(scene.image) for scene in scenes])
    tokens = tokenizer([scene.caption for scene in scenes[: 2 * PROBE_BATCH]])
    return list(pixels.split(PROBE_BATCH)), trim_padding(tokens, tokenizer.pad_id)


def top_k_agreement(
    reference: torch.Tensor, other: torch.Tensor, images: int, k: int = TOP_K
) -> float:
    """Mean share of each query's top-``k`` image neighbours under ``reference`` that
    ``other`` keeps. Both are unit rows, the first ``images`` of them the gallery; every row
    is a query, and an image is never its own neighbour."""
    found = []
    for rows in (reference, other):
        scores = rows @ rows[:images].T
        scores[torch.arange(images), torch.arange(images)] = -torch.inf
        found.append(scores.topk(min(k, images - 1), dim=1).indices.tolist())
    shared = [len(set(a) & set(b)) / len(a) for a, b in zip(*found, strict=True)]
    return float(np.mean(shared))


def weights_fingerprint(model: nn.Module) -> str:
    """A cheap digest of the weights (per-tensor sums, no copy): a cached choice is for
    these weights, whatever name they were loaded under."""
    sums = [float(p.detach().sum(dtype=torch.float64)) for p in model.parameters()]
    return hashlib.sha256(np.asarray(sums, dtype=np.float64).tobytes()).hexdigest()[:16]


def on_cpu(
    model: nn.Module,
    tokenizer: Tokenizer,
    model_id: str,
    precision: str,
    cache_dir: Path | None,
    time_run: TimeRun = perf_counter_time,
) -> tuple[nn.Module, Choice]:
    """The fp32 CPU ``model`` in ``precision`` (``auto``: the fastest exact candidate,
    measured or cached; a named one: as asked, unchecked) and the choice."""
    if precision != "auto":
        return convert(model, precision), Choice(precision, "asked for")
    names = cpu_candidates(torch.device("cpu"))
    if len(names) == 1:
        return model, Choice("fp32", "no bf16 kernels or int8 hardware to measure")
    return choose_cpu(
        model, tokenizer, model_id, candidates=names, cache_dir=cache_dir, time_run=time_run
    )


def choose_cpu(
    model: nn.Module,
    tokenizer: Tokenizer,
    model_id: str,
    *,
    candidates: Sequence[str],
    cache_dir: Path | None,
    time_run: TimeRun = perf_counter_time,
) -> tuple[nn.Module, Choice]:
    """The fp32 CPU ``model`` in its fastest exact precision among ``candidates``, and the
    measured (or cached) choice."""
    cache = ChoiceCache(cache_dir)
    extra = {"weights": weights_fingerprint(model), "candidates": list(candidates)}
    key = cache_key(model_id, extra)
    choice = cache.load(model_id, key)
    if choice is None:
        choice = _measure(model, tokenizer, list(candidates), time_run)
        cache.store(model_id, key, choice)
    log.info("precision for %s: %s", model_id, choice.describe())
    return convert(model, choice.precision), choice


@torch.inference_mode()
def _measure(model: nn.Module, tokenizer: Tokenizer, names: list[str], time_run: TimeRun) -> Choice:
    batches, tokens = held_out_set(model.config.vision.image_size, tokenizer)
    modules, embeddings, failed = {}, {}, {}
    for name in names:
        try:
            modules[name] = convert(model, name)
        except (RuntimeError, NotImplementedError, AssertionError) as exc:
            failed[name] = str(exc)[:200]
            log.info("precision %s unavailable here (%s)", name, exc)
    runs = {name: _batch_runner(modules[name], name, batches, embeddings) for name in modules}
    seconds = time_candidates(runs, len(batches), time_run)
    rates = {name: PROBE_BATCH / max(s, 1e-12) for name, s in seconds.items()}
    rows = {}
    for name, module in modules.items():
        images = torch.cat(embeddings[name][-len(batches) :])
        texts = module.text(tokens).float()
        rows[name] = F.normalize(torch.cat([images.float(), texts]), dim=-1)
    checks, exact = _exactness(rows)
    best, reason = pick(rates, exact)
    bounds = {
        "bf16": ("least cosine", MIN_BF16_COSINE),
        "int8": ("top-10 agreement", MIN_INT8_AGREEMENT),
    }
    reason += "".join(
        f"; {name} {bounds[name][0]} {value:.4f} (needs {bounds[name][1]})"
        for name, value in checks.items()
    )
    if failed:
        reason += "; " + "; ".join(f"{name} failed: {why}" for name, why in failed.items())
    return Choice(best, reason, rates=rates, checks=checks, exact=exact)


def _batch_runner(module: nn.Module, name: str, batches: list, out: dict[str, list]):
    """A call that encodes the next held-out batch with ``module`` (warm-up, then each)."""
    out[name], dtype = [], INPUT_DTYPE[name]

    def run() -> None:
        batch = batches[max(len(out[name]) - 1, 0) % len(batches)]
        out[name].append(module.visual(batch.to(dtype)))

    return run


def _exactness(rows: dict[str, torch.Tensor]) -> tuple[dict[str, float], dict[str, bool]]:
    """Each candidate's check value (bf16: least cosine; int8: top-10 agreement) and verdict."""
    reference, checks, exact = rows["fp32"], {}, {"fp32": True}
    for name, got in rows.items():
        if name == "bf16":
            checks[name] = float((reference * got).sum(1).min())
            exact[name] = checks[name] >= MIN_BF16_COSINE
        elif name == "int8":
            checks[name] = top_k_agreement(reference, got, PROBE_BATCHES * PROBE_BATCH)
            exact[name] = checks[name] >= MIN_INT8_AGREEMENT
    return checks, exact
