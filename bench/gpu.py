"""GPU figures (docs/gpu.md): vitrieve vs open_clip on one CUDA device, same weights, one process.

1. ViT image encoding, img/s at one batch size (images already on the device): ours eager and
   compiled (bf16 if it holds) vs open_clip fp32 and bf16 autocast; the fraction of the
   device's measured bf16 matmul peak; cosine to fp32.
2. One text query's latency: ours eager and compiled (CUDA graphs per length bucket) vs open_clip.
3. Indexing a generated folder of photo-like JPEGs: end to end (``index_library`` on the device:
   scan, read, hash, decode, resize, thumbnails, encode, store) against Pillow full decode on all
   cores, Pillow draft decode on all cores (vitrieve's CPU path), nvJPEG with and without reading
   the files, and pure encoding. Each row's name says what its clock includes.
4. Exact search over N stored vectors (fp16 on the device, matmul + top-k): one query, batched.

Each section is printed as soon as it is measured. The compiled variants need what Triton
needs to build (a C compiler and Python's headers); without them they are skipped with one line
(``--toolchain`` prints only that line).

Random-init weights (open_clip ``create_model`` without download, converted into ours): speed
and agreement do not depend on training. ``--smoke`` runs every step small on the CPU (the
CUDA-only comparisons skipped) to check the script itself on a machine without a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from encode import vit_gflops_per_image
from PIL import Image

from encoders.model.clip import create_model
from encoders.model.config import load_config
from encoders.runtime.encoder import Encoder
from encoders.weights.checkpoint import from_openclip_state_dict
from indexer.decode.decoded import Decoded
from indexer.decode.gpu_decode import GpuJpegDecoder
from indexer.decode.images import decode_image
from indexer.decode.jpeg_plan import file_stamp, plan_jpeg
from indexer.pipeline.local import IndexOptions, IndexProgress, index_library

CACHE = Path.home() / ".cache" / "vitrieve-bench"
QUERY = "a red bicycle by the sea"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--batch", type=int, default=512, help="images per encoding call")
    parser.add_argument("--files", type=int, default=2000, help="JPEGs in the indexing folder")
    parser.add_argument("--megapixels", type=float, default=6.0)
    parser.add_argument("--vectors", type=int, default=1_000_000, help="stored vectors searched")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=CACHE, help="where generated JPEGs stay")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--toolchain", action="store_true", help="only say if compiling can run")
    args = parser.parse_args(argv)
    if args.smoke:
        args.batch, args.files, args.megapixels, args.vectors, args.repeats = 4, 12, 0.3, 20_000, 1
    return args


def compile_toolchain() -> str | None:
    """Why ``torch.compile`` cannot build its CUDA kernels here, or None: Triton compiles a
    small C launcher with the system's C compiler against Python's headers."""
    if not (os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
            or shutil.which("clang")):  # fmt: skip
        return "no C compiler (cc, gcc or clang)"
    header = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not header.exists():
        return f"no Python headers ({header}: e.g. apt-get install python3-dev)"
    return None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    fn()  # warm-up (kernel selection, compilation, CUDA-graph capture)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bf16_matmul_peak_gflops(device: torch.device, size: int, repeats: int) -> float:
    """The best rate (GFLOP/s) of a bf16 ``size``² matmul on ``device``: the practical peak
    the encoder's fraction is measured against."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    best = min(median_seconds(lambda: a @ b, device, 1) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


# --- 1 and 2: the encoder against open_clip -------------------------------------------------


def models(name: str, device: torch.device, compile: bool) -> tuple[dict, torch.nn.Module]:
    """Our encoders (default precision, compiled) and open_clip's model, same weights."""
    torch.manual_seed(0)
    reference = open_clip.create_model(name, pretrained=None).eval().to(device)
    state = from_openclip_state_dict({k: v.cpu() for k, v in reference.state_dict().items()})
    ours = {}
    for label, compiled in (("ours", False), ("ours compiled", True)):
        if compiled and not compile:
            continue
        model = create_model(load_config(name))
        model.load_state_dict(state)
        ours[label] = Encoder(model, device=device, compile=compiled)
    return ours, reference


def encoding(ours: dict, reference, device: torch.device, args) -> dict[str, float]:
    encoder = ours["ours"]
    size = encoder.image_size
    images = torch.randn(args.batch, 3, size, size, device=device)

    def oc_autocast() -> None:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
            reference.encode_image(images)

    with torch.inference_mode():
        runs = {
            "open_clip fp32 img/s": lambda: reference.encode_image(images),
            "open_clip bf16 autocast img/s": oc_autocast,
            "ours img/s": lambda: encoder.encode_image_tensors(images),
        }
        if "ours compiled" in ours:  # the first call compiles (the warm-up, untimed)
            compiled = ours["ours compiled"]
            runs["ours compiled img/s"] = lambda: compiled.encode_image_tensors(images)
        out = {k: args.batch / median_seconds(fn, device, args.repeats) for k, fn in runs.items()}
        expected = F.normalize(reference.encode_image(images[:64]).float(), dim=-1).cpu()
    out["ours cosine to open_clip fp32"] = float(
        (expected * torch.from_numpy(encoder.encode_image_tensors(images[:64]))).sum(1).min()
    )
    peak = bf16_matmul_peak_gflops(device, 8192 if device.type == "cuda" else 1024, 10)
    cost = vit_gflops_per_image(encoder.config)
    out["bf16 matmul peak TFLOP/s"] = peak / 1000
    out["ours fraction of bf16 peak"] = out["ours img/s"] * cost / peak
    out["ours / open_clip bf16 autocast"] = out["ours img/s"] / out["open_clip bf16 autocast img/s"]
    if "ours compiled img/s" in out:
        best = out["ours compiled img/s"] / out["open_clip bf16 autocast img/s"]
        out["ours compiled / open_clip bf16 autocast"] = best
    out["ours precision"] = str(encoder.dtype).removeprefix("torch.")
    return out


def text_latency(ours: dict, reference, device: torch.device, args) -> dict[str, float]:
    tokenizer, repeats = open_clip.get_tokenizer(args.model), 20 * args.repeats

    def oc() -> np.ndarray:
        with torch.inference_mode():
            return reference.encode_text(tokenizer([QUERY]).to(device)).cpu().numpy()

    runs = {f"{label} text query ms": enc for label, enc in ours.items()}
    out = {k: 1000 * median_seconds(lambda e=e: e.encode_texts([QUERY]), device, repeats)
           for k, e in runs.items()}  # fmt: skip
    out["open_clip text query ms"] = 1000 * median_seconds(oc, device, repeats)
    return out


# --- 3: indexing ----------------------------------------------------------------------------


def make_photo(job: tuple[Path, int, int, int]) -> None:
    """A photo-like JPEG: smooth random structure upscaled, fine texture, sensor noise."""
    path, width, height, seed = job
    if path.exists():
        return
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (9, 12, 3), dtype=np.uint8))
    base = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), np.int16)
    texture = Image.fromarray(rng.integers(0, 256, (height // 16, width // 16), dtype=np.uint8))
    fine = np.asarray(texture.resize((width, height), Image.Resampling.BILINEAR), np.int16)
    noise = rng.integers(-5, 6, (height, width, 1), dtype=np.int16)
    pixels = np.clip(base + (fine[..., None] - 128) // 4 + noise, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path.with_suffix(".tmp"), format="JPEG", quality=90)
    path.with_suffix(".tmp").rename(path)


def photo_folder(args) -> Path:
    """``args.files`` JPEGs of ``args.megapixels`` (3:2), generated once on all cores."""
    width = int((args.megapixels * 1e6 * 1.5) ** 0.5)
    height = int(width / 1.5)
    folder = args.cache / f"gpu-photos-{args.files}-{width}x{height}"
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(folder / f"{n:05d}.jpg", width, height, n) for n in range(args.files)]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(make_photo, jobs, chunksize=8))
    return folder


def pillow_full(path: Path, size: int = 224) -> tuple[int, ...]:
    """clip-retrieval's reader: a full decode, then resize and centre crop."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    scale = size / min(rgb.size)
    resized = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.BICUBIC)
    return resized.size


def pillow_draft(path: Path, size: int = 224) -> tuple[int, ...]:
    """vitrieve's CPU path: DCT-scaled decode (``indexer.decode.images``)."""
    return decode_image(path, target_size=size, thumb_size=256).image.size


def files_per_second(fn: Callable, paths: list[Path]) -> float:
    """Files/s of ``fn`` over ``paths`` on a process per core (started before the clock)."""
    cores = os.cpu_count() or 1
    with ProcessPoolExecutor(cores) as pool:
        list(pool.map(abs, range(cores)))
        start = time.perf_counter()
        list(pool.map(fn, paths, chunksize=4))
        return len(paths) / (time.perf_counter() - start)


def nvjpeg_in_memory(paths: list[Path], device: torch.device, size: int) -> float:
    """Files/s of batched nvJPEG decoding + the GPU resizes (model input and thumbnail pixels),
    from bytes already in memory: no file reading, no WebP encoding."""
    datas = [p.read_bytes() for p in paths]
    decoder = GpuJpegDecoder(device, size, 256, fallback=lambda item: item)
    try:
        decoder.decode_and_prepare(
            datas[:8], [1] * len(datas[:8])
        )  # warm-up: nvJPEG's handles, kernels
        sync(device)
        start = time.perf_counter()
        for at in range(0, len(datas), 64):
            batch = datas[at : at + 64]
            decoder.decode_and_prepare(batch, [1] * len(batch))
        sync(device)
    finally:
        decoder.close()
    return len(datas) / (time.perf_counter() - start)


def nvjpeg_with_reading(paths: list[Path], device: torch.device, size: int) -> float:
    """Files/s of ``GpuJpegDecoder.complete``, what the indexer's main thread does per batch:
    read each file again (threads, page cache warm, checked unchanged), nvJPEG, the GPU
    resizes, thumbnails copied back and WebP-encoded (headers planned beforehand, untimed)."""
    items = []
    for n, path in enumerate(paths):
        job = plan_jpeg(path.read_bytes(), 200_000_000, str(path), file_stamp(path))
        items.append(Decoded(n, facts=dict(job.facts) if job else {}, jpeg=job))
    decoder = GpuJpegDecoder(device, size, 256, fallback=lambda item: item)
    try:
        decoder.complete(items[:8])  # warm-up
        sync(device)
        start = time.perf_counter()
        for at in range(0, len(items), 256):  # the indexer's GPU batch
            decoder.complete(items[at : at + 256])
        sync(device)
    finally:
        decoder.close()
    return len(items) / (time.perf_counter() - start)


def indexing(encoder: Encoder, device: torch.device, args) -> dict[str, float]:
    folder = photo_folder(args)
    paths = sorted(folder.glob("*.jpg"))
    out = {
        "Pillow full decode, all cores files/s": files_per_second(pillow_full, paths),
        "Pillow draft decode, all cores files/s": files_per_second(pillow_draft, paths),
        "nvJPEG decode + GPU resizes, bytes in memory files/s": nvjpeg_in_memory(
            paths, device, encoder.image_size
        ),
        "nvJPEG read files + decode + resizes + WebP thumbnails files/s": nvjpeg_with_reading(
            paths, device, encoder.image_size
        ),
    }
    batch = min(256, max(args.files // 8, 2))  # several batches even in --smoke
    options = IndexOptions(workers=os.cpu_count() or 1, batch_size=batch, device=str(device))
    seen: list[tuple[int, float]] = []  # (files done, seconds into the embed phase)

    def progress(state: IndexProgress) -> None:
        if state.phase == "embed" and state.elapsed > 0:
            seen.append((state.done + state.failed, state.elapsed))

    with tempfile.TemporaryDirectory() as library:
        report = index_library(folder, encoder, model_ref="bench", library=Path(library),
                               options=options, progress=progress)  # fmt: skip
    assert report.embedded == len(paths) and not report.failures, report.failures[:3]
    out["end to end files/s (whole run: start-up, scan, hash, decode, encode, store)"] = (
        report.embedded / report.seconds
    )
    if len(seen) >= 2:  # after the first batch: workers started, the pipeline full
        (done0, at0), (done1, at1) = seen[0], seen[-1]
        out["end to end files/s (steady state)"] = (done1 - done0) / max(at1 - at0, 1e-9)
    size = encoder.image_size
    pixels = torch.randn(options.batch_size, 3, size, size, device=device)
    seconds = median_seconds(lambda: encoder.encode_image_tensors(pixels), device, args.repeats)
    out["pure encoding (same batch) img/s"] = options.batch_size / seconds
    return out


# --- 4: exact search --------------------------------------------------------------------------


def search(count: int, device: torch.device, repeats: int) -> dict[str, float]:
    """Exact top-10 over ``count`` 512-d vectors held in fp16 on the device."""
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    generator = torch.Generator(device).manual_seed(0)
    vectors = F.normalize(torch.randn(count, 512, device=device, generator=generator), dim=-1)
    vectors = vectors.to(dtype)
    queries = F.normalize(torch.randn(1000, 512, device=device, generator=generator), dim=-1)
    queries = queries.to(dtype)
    one = median_seconds(lambda: (queries[:1] @ vectors.T).topk(10), device, 10 * repeats)
    many = median_seconds(lambda: (queries @ vectors.T).topk(10), device, repeats)
    return {"one query ms": 1000 * one, "batched queries/s": len(queries) / many}


def show(section: str, values: dict | str) -> None:
    """Print one section as soon as it is measured (a run stopped later keeps it)."""
    if not isinstance(values, dict):
        print(f"{section}: {values}", flush=True)
        return
    print(section)
    for key, value in values.items():
        shown = f"{value:.4g}" if isinstance(value, float) else value
        print(f"  {key:<66} {shown}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = compile_toolchain()
    toolchain = (
        f"compiled variants skipped: {missing}" if missing
        else "compiled variants run (C compiler and Python headers found)"
    )  # fmt: skip
    if args.toolchain:
        print(toolchain)
        return 0
    if not args.smoke and not torch.cuda.is_available():
        print("bench/gpu.py needs a CUDA device and torch sees none (use --smoke to check the "
              "script on the CPU)", file=sys.stderr)  # fmt: skip
        return 2
    device = torch.device("cuda" if not args.smoke else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (smoke)"
    if not args.smoke:
        print(toolchain, flush=True)
    ours, reference = models(args.model, device, compile=not args.smoke and missing is None)
    figures: dict = {"device": name, "torch": torch.__version__}
    show("device", name)
    steps = [
        (f"encoding, batch {args.batch}", lambda: encoding(ours, reference, device, args)),
        ("text query", lambda: text_latency(ours, reference, device, args)),
        (f"indexing {args.files} JPEGs of {args.megapixels} MP",
         lambda: indexing(ours["ours"], device, args)),
        (f"exact search, {args.vectors} vectors",
         lambda: search(args.vectors, device, args.repeats)),
    ]  # fmt: skip
    for section, measure in steps:
        figures[section] = measure()
        show(section, figures[section])
        if args.json:  # rewritten after each section: a run stopped later keeps what it had
            args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
