"""Side-by-side: our encoders vs open_clip on the same ViT-B-32 weights, in one process.

Prints images/s (fp32 and each side's fast precision), single-query text latency, their
ratios, the cosine of our default-precision embeddings to open_clip's fp32 ones, and the
fraction of this machine's bf16 ceiling (measured matmul peak / the model's FLOPs per image).
Timings alternate between the two implementations and report medians over repeats.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import open_clip
import torch

from encoders.model.clip import create_model
from encoders.model.config import load_config
from encoders.runtime.encoder import Encoder
from encoders.weights.checkpoint import from_openclip_state_dict


def matmul_peak_gflops(size: int = 2048, repeats: int = 5, device: str = "cpu") -> float:
    """The best bf16 matmul rate seen on ``device`` (GFLOP/s): the machine's practical peak."""
    a = torch.randn(size, size, dtype=torch.bfloat16, device=device)
    b = torch.randn(size, size, dtype=torch.bfloat16, device=device)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        if a.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 2 * size**3 / min(times) / 1e9


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
    args = parser.parse_args()

    torch.manual_seed(0)
    config = load_config(args.model)
    reference = open_clip.create_model(args.model, pretrained=None).eval()
    ours_model = create_model(config)
    ours_model.load_state_dict(from_openclip_state_dict(reference.state_dict()))
    ours_fp32 = Encoder(copy.deepcopy(ours_model), precision="fp32")
    ours_compiled = Encoder(copy.deepcopy(ours_model), precision="auto", compile=True)
    ours = Encoder(ours_model, precision="auto")
    tokenizer = open_clip.get_tokenizer(args.model)
    size = config.vision.image_size
    images = torch.randn(args.batch, 3, size, size, generator=torch.Generator().manual_seed(0))

    def oc_fp32():
        with torch.inference_mode():
            reference.encode_image(images)

    def oc_autocast():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            reference.encode_image(images)

    runs = {
        "open_clip fp32": oc_fp32,
        "open_clip bf16 autocast": oc_autocast,
        "ours fp32": lambda: ours_fp32.encode_image_tensors(images),
        "ours default (bf16 if exact)": lambda: ours.encode_image_tensors(images),
        "ours compiled (compile=True)": lambda: ours_compiled.encode_image_tensors(images),
    }
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

    text_runs = {
        "open_clip": oc_text,
        "ours default": lambda: ours.encode_texts([query]),
        "ours compiled": lambda: ours_compiled.encode_texts([query]),
    }
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
    cosines = {
        name: (
            (ref_img * torch.from_numpy(enc.encode_image_tensors(images[:16]))).sum(1).min(),
            (ref_txt * torch.from_numpy(enc.encode_texts([query]))).sum(1).min(),
        )
        for name, enc in (("default", ours), ("compiled", ours_compiled))
    }
    report(args, config, rate, latency, cosines)


def report(args, config, rate, latency, cosines) -> None:
    peak = matmul_peak_gflops()
    cost = vit_gflops_per_image(config)
    ceiling = peak / cost
    autocast = rate["open_clip bf16 autocast"]
    print(f"model {args.model}, batch {args.batch}, threads {torch.get_num_threads()}")
    for name, value in rate.items():
        print(f"  {name:<30} {value:7.1f} img/s")
    print(f"  bf16 matmul peak {peak:.0f} GFLOP/s, ViT cost {cost:.2f} GFLOP/img,")
    print(f"  so the bf16 ceiling is {ceiling:.0f} img/s")
    for name in ("ours default (bf16 if exact)", "ours compiled (compile=True)"):
        print(
            f"  {name}: {rate[name] / autocast:.2f}x open_clip bf16 autocast, "
            f"{rate[name] / ceiling:.0%} of the ceiling"
        )
    print(f"  ours fp32 / open_clip fp32: {rate['ours fp32'] / rate['open_clip fp32']:.2f}x")
    for name in ("ours default", "ours compiled"):
        ratio = latency[name] / latency["open_clip"]
        print(
            f"  single-query text: {name} {latency[name]:.1f} ms vs open_clip "
            f"{latency['open_clip']:.1f} ms (ratio {ratio:.2f})"
        )
    for name, (img, txt) in cosines.items():
        print(f"  cosine of ours {name} to open_clip fp32: images {img:.5f}, text {txt:.5f}")


if __name__ == "__main__":
    main()
