"""End-to-end indexing throughput against the model's pure encoding rate, side by side.

A folder of camera-sized JPEGs (1–12 megapixels, generated once into a cache folder) is indexed
from scratch with ``index_library`` (scan → decode in worker processes → embed → store); the
same encoder is timed on pre-decoded tensors just before and just after. The ratio says how
well decoding hides behind compute (target ≥ 0.85). Timings on a shared machine are noisy;
the ratio, measured within one run, is the figure to read.

Decoder processes and encoder threads are the indexer's own defaults
(``IndexOptions.schedule``: a decoder per core at a lower priority, every core for the encoder)
unless ``--workers`` or ``--threads`` say otherwise; the CPU utilisation line says how busy the
run kept its cores (its own CPU time over wall time × cores) and how busy the whole machine was
meanwhile (on a shared machine, other users' work shows there). The run's CPU time is broken
down per stage and per image (CPU ms, not wall time: workers and the encoder share the same
cores), and the arithmetic of the ceiling is printed: on shared cores, end to end can reach at
most encode / (encode + everything else) of pure encoding.
``--compare-model`` adds, for information only, the ceiling a larger model would have with the
same decoding cost (its pure encoding rate measured, its end to end not run).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from encoders.model.clip import create_model
from encoders.model.config import load_config
from encoders.runtime.encoder import Encoder
from encoders.weights.checkpoint import save_checkpoint
from indexer.decode.images import decode_image
from indexer.pipeline.local import IndexOptions, IndexReport, index_library
from indexer.pipeline.reports import available_cores

# Common sensor sizes (width, height): 1.2, 3, 5, 8 and 12 megapixels.
SIZES = [(1280, 960), (2048, 1536), (2592, 1944), (3264, 2448), (4000, 3000)]
DEFAULT_CACHE = Path.home() / ".cache" / "vitrieve-bench" / "photos"


def make_photo(args: tuple[Path, int]) -> None:
    """A photo-like JPEG: smooth random structure upscaled, plus sensor-like noise."""
    path, seed = args
    if path.exists():
        return
    rng = np.random.default_rng(seed)
    width, height = SIZES[seed % len(SIZES)]
    if seed % 3 == 0:
        width, height = height, width  # some portraits
    small = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    image = np.asarray(small.resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16)
    noise = rng.integers(-6, 7, (height, width, 1), dtype=np.int16)
    pixels = np.clip(image + noise, 0, 255).astype(np.uint8)
    tmp = path.with_suffix(".tmp")
    Image.fromarray(pixels).save(tmp, format="JPEG", quality=90)
    tmp.rename(path)


def ensure_photos(folder: Path, count: int, workers: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"IMG_{n:05d}.jpg" for n in range(count)]
    missing = [(p, n) for n, p in enumerate(paths) if not p.exists()]
    if missing:
        print(f"generating {len(missing)} JPEGs of 1–12 MP into {folder} (once) …", flush=True)
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(make_photo, missing, chunksize=8))
    return paths


def ensure_checkpoint(cache: Path, model: str) -> Path:
    directory = cache / f"ckpt-{model}-random"
    if not (directory / "model.safetensors").exists():
        torch.manual_seed(0)
        save_checkpoint(create_model(load_config(model)), directory)
    return directory


def encode_rate(
    encoder: Encoder, tensors: torch.Tensor, batch: int, repeats: int
) -> tuple[float, float]:
    """Images/s of ``encode_image_tensors`` on pre-decoded tensors (median of repeats), and
    the process CPU ms per image it took (all of torch's threads)."""
    encoder.encode_image_tensors(tensors[:batch])  # warm-up
    rates, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        for begin in range(0, len(tensors), batch):
            encoder.encode_image_tensors(tensors[begin : begin + batch])
        rates.append(len(tensors) / (time.perf_counter() - start))
        cpu.append(1000 * (time.process_time() - start_cpu) / len(tensors))
    return statistics.median(rates), statistics.median(cpu)


def single_thread_ms(encoder: Encoder, tensors: torch.Tensor, batch: int) -> float:
    """CPU ms per image of encoding with one torch thread: no spinning at parallel barriers,
    so it stays close to the quiet machine's figure when other work preempts the threads."""
    cores = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return encode_rate(encoder, tensors[: 2 * batch], batch, repeats=1)[1]
    finally:
        torch.set_num_threads(cores)


def cpu_ms(run: float, fn) -> float:
    start = time.process_time()
    fn()
    return run + 1000 * (time.process_time() - start)


def decode_detail(paths: list[Path], size: int, thumb: int) -> dict[str, float]:
    """CPU ms per photo of the parts of ``decode`` and of the hash candidates (one thread)."""
    out = dict.fromkeys(["header+EXIF", "draft decode", "blake2b", "sha256", "sha1", "md5"], 0.0)
    for path in paths:
        data = path.read_bytes()
        for name in ("blake2b", "sha256", "sha1", "md5"):
            out[name] = cpu_ms(out[name], lambda n=name, d=data: hashlib.new(n, d).digest())
        image = Image.open(io.BytesIO(data))
        out["header+EXIF"] = cpu_ms(out["header+EXIF"], image.getexif)
        box = (max(size, thumb), size) if image.width >= image.height else (size, max(size, thumb))
        out["draft decode"] = cpu_ms(
            out["draft decode"], lambda im=image, b=box: (im.draft("RGB", b), im.load())
        )
    return {k: v / len(paths) for k, v in out.items()}


def print_stages(cpu: dict[str, float], files: int, encode_ms: float) -> float:
    """The run's CPU ms per image by stage; returns everything but the encoder, per image."""
    per_image = {k: 1000 * v / files for k, v in cpu.items()}
    workers = {k: v for k, v in per_image.items() if not k.startswith("main ")}
    main = {k: v for k, v in per_image.items() if k.startswith("main ")}
    print("CPU per image    (ms, this run; workers send uint8 pixels)")
    for title, part in (("  decode workers", workers), ("  main process", main)):
        print(
            f"{title}   " + ", ".join(f"{k.removeprefix('main ')} {v:.2f}" for k, v in part.items())
        )
    other = sum(v for k, v in per_image.items() if k != "main encode")
    total = sum(per_image.values())
    print(f"  total {total:.1f} ms: encoder {per_image.get('main encode', 0):.1f} (pure encoding "
          f"{encode_ms:.1f}), everything else {other:.1f}")  # fmt: skip
    return other


def print_ceiling(encode_ms: float, other_ms: float, label: str = "ceiling") -> None:
    """The best ratio on shared cores: every core-ms spent off the encoder is lost to it."""
    ceiling = encode_ms / (encode_ms + other_ms)
    print(f"{label:16s} encode / (encode + rest) = {encode_ms:.1f} / ({encode_ms:.1f} + "
          f"{other_ms:.1f}) = {ceiling:.2f} of pure encoding at best on these cores")  # fmt: skip


def pure_encoding(
    encoder: Encoder, tensors: torch.Tensor, batch: int, thread_counts: list[int]
) -> dict[int, tuple[float, float]]:
    """torch threads → (img/s, CPU ms/img) of pure encoding."""
    cores = torch.get_num_threads()
    out = {}
    for threads in thread_counts:
        torch.set_num_threads(threads)
        out[threads] = encode_rate(encoder, tensors, batch, repeats=2)
    torch.set_num_threads(cores)
    return out


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat (every process,
    other users' included); (0, 0) where there is none."""
    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    ticks = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


def print_utilisation(report: IndexReport, cores: int, machine: tuple[float, float]) -> None:
    """How busy the run kept the cores it had: its own CPU time (this process and the decode
    workers) over wall time × cores, and the whole machine's share meanwhile."""
    own = sum(report.cpu.values()) / max(report.seconds * cores, 1e-9)
    busy, total = machine
    whole = f", whole machine {busy / total:.0%} busy" if total > 0 else ""
    print(f"CPU utilisation  this run {own:.0%} of {cores} core(s){whole}")


def index_once(args: argparse.Namespace, photos: Path, encoder: Encoder) -> IndexReport:
    """Index ``photos`` from scratch with the run's worker and encoder-thread settings."""
    options = IndexOptions(
        workers=args.workers, batch_size=args.batch_size, encoder_threads=args.threads
    )
    with tempfile.TemporaryDirectory(prefix="vitrieve-bench-") as library:
        return index_library(
            photos, encoder, model_ref=args.model, library=Path(library), options=options
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=2000, help="JPEGs to index (≥ 2000).")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--model", default="ViT-B-32", help="Architecture (random weights).")
    parser.add_argument(
        "--workers", type=int, default=None, help="Decoder processes (default: the indexer's)."
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--encode-images", type=int, default=128, help="Tensors for pure rate.")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads while indexing (0: the indexer's)."
    )
    parser.add_argument("--detail", type=int, default=100, help="Photos for the decode detail.")
    parser.add_argument("--compare-model", default="", help="e.g. ViT-B-16: information line.")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    photos = args.cache.parent / f"{args.cache.name}-{args.count}"
    cores = available_cores()
    workers, threads = IndexOptions(args.workers, encoder_threads=args.threads).schedule()
    paths = ensure_photos(photos, args.count, max(workers, 1))
    megapixels = [Image.open(p).size for p in paths[: min(50, len(paths))]]
    mean_mp = statistics.mean(w * h for w, h in megapixels) / 1e6
    encoder = Encoder.load(ensure_checkpoint(args.cache.parent, args.model))
    tensors = torch.stack(
        [
            encoder.preprocess(decode_image(p, target_size=encoder.image_size).image)
            for p in paths[: args.encode_images]
        ]
    )
    counts = sorted({torch.get_num_threads(), 1})
    load = os.getloadavg()[0]
    before = pure_encoding(encoder, tensors, args.batch_size, counts)
    busy_before = machine_busy()
    report = index_once(args, photos, encoder)
    busy_after = machine_busy()
    machine = (busy_after[0] - busy_before[0], busy_after[1] - busy_before[1])
    after = pure_encoding(encoder, tensors, args.batch_size, counts)
    rates = {
        n: ((before[n][0] + after[n][0]) / 2, (before[n][1] + after[n][1]) / 2) for n in counts
    }
    best = max(rates, key=lambda n: rates[n][0])  # the denominator: the model's best rate here
    pure, encode_ms = rates[best]
    end_to_end = report.embedded / report.seconds
    print(
        f"model            {args.model} (random weights, {encoder.dtype}), batch {args.batch_size}"
    )
    print(f"photos           {report.embedded} JPEGs, mean {mean_mp:.1f} MP ({photos})")
    print(
        f"load average     {load:.2f} before, {os.getloadavg()[0]:.2f} after, {os.cpu_count()} CPUs"
    )
    for n in counts:
        rate, ms = rates[n]
        print(f"pure encoding    {n} torch thread(s): {rate:.1f} img/s (before {before[n][0]:.1f}, "
              f"after {after[n][0]:.1f}), {ms:.1f} CPU ms/img")  # fmt: skip
    print(f"end to end       {end_to_end:.1f} files/s ({report.seconds:.1f} s, {workers} "
          f"decode workers, torch threads {threads}, {len(report.failures)} failures)")  # fmt: skip
    print_utilisation(report, cores, machine)
    print(f"ratio            {end_to_end / pure:.2f} of the best pure rate (target ≥ 0.85)")
    other_ms = print_stages(report.cpu, max(report.embedded, 1), encode_ms)
    detail = decode_detail(paths[: args.detail], encoder.image_size, IndexOptions().thumb_size)
    print(
        "decode detail    (ms, one thread) " + ", ".join(f"{k} {v:.2f}" for k, v in detail.items())
    )
    print_ceiling(encode_ms, other_ms)
    if best != 1:
        print_ceiling(rates[1][1], other_ms, "  1-thread enc.")
    if args.compare_model:
        compare(args, photos, tensors.shape[0], other_ms)


def compare(args: argparse.Namespace, photos: Path, count: int, other_ms: float) -> None:
    """For information: a larger model's pure rate and the ceiling it would have here."""
    encoder = Encoder.load(ensure_checkpoint(args.cache.parent, args.compare_model))
    paths = sorted(photos.glob("*.jpg"))[:count]
    tensors = torch.stack(
        [encoder.preprocess(decode_image(p, target_size=encoder.image_size).image) for p in paths]
    )
    rate, encode_ms = encode_rate(encoder, tensors, args.batch_size, repeats=1)
    print(f"(information)    {args.compare_model}: pure encoding {rate:.1f} img/s, "
          f"{encode_ms:.1f} CPU ms/img; end to end not run")  # fmt: skip
    print_ceiling(encode_ms, other_ms, label=f"  {args.compare_model}")
    one = single_thread_ms(encoder, tensors, args.batch_size)
    print_ceiling(one, other_ms, label="  1-thread enc.")


if __name__ == "__main__":
    main()
