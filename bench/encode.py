"""Side-by-side: our encoders vs open_clip on the same ViT-B-32 weights, in one process.

Prints images/s (open_clip fp32 and bf16 autocast; ours in every precision and in ``auto``'s
choice, with which precision ``auto`` chose and why), single-query text latency, their ratios,
the cosine of our embeddings to open_clip's fp32 ones, and the fraction of this machine's
ceiling: the best matmul peak measured over the precisions (fp32, bf16, int8 dynamic) divided
by the model's FLOPs per image — the fastest precision's peak, whichever it is here.
Timings alternate between the implementations and report medians over repeats. ``auto``
measures afresh (a temporary cache), so the choice printed is this run's.

``--quick``: a small batch, few repeats, no compiled rows (a shared machine, an emulated ISA).
Emulating smaller x86 CPUs: ``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2
MKL_ENABLE_INSTRUCTIONS=AVX2`` (or ``AVX512_CORE`` with ``avx512``: AVX-512 without bf16).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import open_clip
import torch

from encoders.model.clip import create_model
from encoders.model.config import load_config
from encoders.runtime.candidates import convert
from encoders.runtime.capability import machine_key
from encoders.runtime.encoder import Encoder
from encoders.weights.checkpoint import from_openclip_state_dict

EXPLICIT = ("fp32", "bf16", "int8")


def matmul_peak_gflops(precision: str, size: int = 2048, repeats: int = 5) -> float:
    """The best rate (GFLOP/s) of a ``size``² matmul on the CPU in ``precision`` (int8: the
    dynamically quantised linear layer our int8 path runs): the practical peak."""
    a = torch.randn(size, size)
    if precision == "int8":
        layer = convert(torch.nn.Sequential(torch.nn.Linear(size, size)), "int8")
        run = lambda: layer(a)  # noqa: E731
    else:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
        x, w = a.to(dtype), torch.randn(size, size, dtype=dtype)
        run = lambda: x @ w  # noqa: E731
    with torch.inference_mode():
        run()
        best = min(timed(run, repeats))
    return 2 * size**3 / best / 1e9


def vit_gflops_per_image(config) -> float:
    """Matmul FLOPs of the vision tower for one image (2·MACs)."""
    v = config.vision
    tokens, width = 1 + v.grid_size**2, v.width
    per_block = 2 * tokens * (4 * width * width + 2 * width * int(width * v.mlp_ratio))
    attention = 2 * 2 * tokens * tokens * width
    patch = 2 * v.grid_size**2 * 3 * v.patch_size**2 * width
    return (v.layers * (per_block + attention) + patch + 2 * width * config.embed_dim) / 1e9


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--text-repeats", type=int, default=60)
    parser.add_argument("--quick", action="store_true", help="batch 16, 3 repeats, no compile")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.repeats, args.text_repeats = 16, 3, 20

    torch.manual_seed(0)
    config = load_config(args.model)
    reference = open_clip.create_model(args.model, pretrained=None).eval()
    ours_model = create_model(config)
    ours_model.load_state_dict(from_openclip_state_dict(reference.state_dict()))
    with tempfile.TemporaryDirectory() as cache:  # auto measures afresh: this run's choice
        ours = Encoder(copy.deepcopy(ours_model), precision="auto", cache_dir=Path(cache))
        compiled = None
        if not args.quick:
            compiled = Encoder(copy.deepcopy(ours_model), precision="auto", compile=True,
                               cache_dir=Path(cache))  # fmt: skip
    explicit = {p: Encoder(copy.deepcopy(ours_model), precision=p) for p in EXPLICIT}
    tokenizer = open_clip.get_tokenizer(args.model)
    size = config.vision.image_size
    images = torch.randn(args.batch, 3, size, size, generator=torch.Generator().manual_seed(0))

    def oc_fp32():
        with torch.inference_mode():
            reference.encode_image(images)

    def oc_autocast():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            reference.encode_image(images)

    def encode(encoder):
        return lambda: encoder.encode_image_tensors(images)

    runs = {"open_clip fp32": oc_fp32, "open_clip bf16 autocast": oc_autocast}
    runs.update({f"ours {p}": encode(e) for p, e in explicit.items()})
    runs[f"ours default (auto: {ours.precision})"] = encode(ours)
    if compiled is not None:
        runs[f"ours compiled ({compiled.precision})"] = encode(compiled)
    for fn in runs.values():  # warm-up (and compilation)
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):  # alternate so load changes hit every side alike
        for name, fn in runs.items():
            times[name] += timed(fn, 1)
    rate = {name: args.batch / statistics.median(t) for name, t in times.items()}

    query = "a red bicycle by the sea"

    def oc_text():
        with torch.inference_mode():
            reference.encode_text(tokenizer([query]))

    text_runs = {"open_clip": oc_text, "ours default": lambda: ours.encode_texts([query])}
    if compiled is not None:
        text_runs["ours compiled"] = lambda: compiled.encode_texts([query])
    for fn in text_runs.values():
        fn()
    text_times: dict[str, list[float]] = {name: [] for name in text_runs}
    for _ in range(args.text_repeats):
        for name, fn in text_runs.items():
            text_times[name] += timed(fn, 1)
    latency = {k: 1000 * statistics.median(v) for k, v in text_times.items()}

    with torch.inference_mode():
        ref_img = torch.nn.functional.normalize(reference.encode_image(images[:16]), dim=-1)
        ref_txt = torch.nn.functional.normalize(reference.encode_text(tokenizer([query])), dim=-1)
    encoders = {**{p: e for p, e in explicit.items()}, f"default ({ours.precision})": ours}
    cosines = {
        name: (
            (ref_img * torch.from_numpy(enc.encode_image_tensors(images[:16]))).sum(1).min(),
            (ref_txt * torch.from_numpy(enc.encode_texts([query]))).sum(1).min(),
        )
        for name, enc in encoders.items()
    }
    report(args, config, rate, latency, cosines, ours)


def report(args, config, rate, latency, cosines, ours) -> None:
    peaks = {p: matmul_peak_gflops(p) for p in EXPLICIT}
    best_peak = max(peaks, key=lambda p: peaks[p])
    cost = vit_gflops_per_image(config)
    ceiling = peaks[best_peak] / cost
    choice = ours.precision_choice
    key = machine_key()
    print(f"model {args.model}, batch {args.batch}, threads {torch.get_num_threads()}, "
          f"CPU {key['cpu']} ({key['cores']} cores, torch kernels {key['isa']})")  # fmt: skip
    print(f"  auto chose {choice.describe()}")
    for name, value in rate.items():
        print(f"  {name:<34} {value:7.1f} img/s")
    print("  matmul peaks: " + ", ".join(f"{p} {g:.0f}" for p, g in peaks.items()) + " GFLOP/s;")
    print(f"  ViT cost {cost:.2f} GFLOP/img, so the ceiling ({best_peak}) is {ceiling:.0f} img/s")
    best_oc = max(rate["open_clip fp32"], rate["open_clip bf16 autocast"])
    exact = [f"ours {p}" for p in EXPLICIT if choice.exact.get(p, p == "fp32")]
    fastest_exact = max(exact, key=lambda name: rate[name])
    for name in [n for n in rate if n.startswith(("ours default", "ours compiled"))]:
        print(
            f"  {name}: {rate[name] / best_oc:.2f}x open_clip's best, "
            f"{rate[name] / rate[fastest_exact]:.2f}x the fastest exact here ({fastest_exact}), "
            f"{rate[name] / ceiling:.0%} of the ceiling"
        )
    print(f"  ours fp32 / open_clip fp32: {rate['ours fp32'] / rate['open_clip fp32']:.2f}x")
    for name in [n for n in latency if n != "open_clip"]:
        ratio = latency[name] / latency["open_clip"]
        print(
            f"  single-query text: {name} {latency[name]:.1f} ms vs open_clip "
            f"{latency['open_clip']:.1f} ms (ratio {ratio:.2f})"
        )
    for name, (img, txt) in cosines.items():
        print(f"  cosine of ours {name} to open_clip fp32: images {img:.5f}, text {txt:.5f}")


if __name__ == "__main__":
    main()
