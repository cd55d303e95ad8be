"""End-to-end indexing throughput against the model's pure encoding rate, side by side.

A folder of camera-sized JPEGs (1–12 megapixels, generated once into a cache folder) is indexed
from scratch with ``index_library`` (scan → decode in worker processes → embed → store); the
same encoder is timed on pre-decoded tensors just before and just after. The ratio says how
well decoding hides behind compute (target ≥ 0.85). Timings on a shared machine are noisy;
the ratio, measured within one run, is the figure to read.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from encoders.checkpoint import save_checkpoint
from encoders.clip import create_model
from encoders.config import load_config
from encoders.encoder import Encoder
from indexer.images import decode_image
from indexer.pipeline import IndexOptions, index_library

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


def encode_rate(encoder: Encoder, tensors: torch.Tensor, batch: int, repeats: int) -> float:
    """Images/s of ``encode_image_tensors`` on pre-decoded tensors (median of repeats)."""
    encoder.encode_image_tensors(tensors[:batch])  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for begin in range(0, len(tensors), batch):
            encoder.encode_image_tensors(tensors[begin : begin + batch])
        rates.append(len(tensors) / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=2000, help="JPEGs to index (≥ 2000).")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--model", default="ViT-B-32", help="Architecture (random weights).")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--encode-images", type=int, default=128, help="Tensors for pure rate.")
    args = parser.parse_args()

    photos = args.cache.parent / f"{args.cache.name}-{args.count}"
    paths = ensure_photos(photos, args.count, max(args.workers, 1))
    megapixels = [Image.open(p).size for p in paths[: min(50, len(paths))]]
    mean_mp = statistics.mean(w * h for w, h in megapixels) / 1e6
    encoder = Encoder.load(ensure_checkpoint(args.cache.parent, args.model))
    sample = paths[: args.encode_images]
    tensors = torch.stack(
        [encoder.preprocess(decode_image(p, target_size=encoder.image_size).image) for p in sample]
    )
    before = encode_rate(encoder, tensors, args.batch_size, repeats=2)
    options = IndexOptions(workers=args.workers, batch_size=args.batch_size)
    with tempfile.TemporaryDirectory(prefix="vitrieve-bench-") as library:
        report = index_library(
            photos, encoder, model_ref=args.model, library=Path(library), options=options
        )
    after = encode_rate(encoder, tensors, args.batch_size, repeats=2)
    end_to_end = report.embedded / report.seconds
    pure = (before + after) / 2
    print(
        f"model            {args.model} (random weights, {encoder.dtype}), batch {args.batch_size}"
    )
    print(f"photos           {report.embedded} JPEGs, mean {mean_mp:.1f} MP ({photos})")
    print(f"pure encoding    {pure:.1f} img/s (before {before:.1f}, after {after:.1f})")
    print(f"end to end       {end_to_end:.1f} files/s ({report.seconds:.1f} s, {args.workers} "
          f"decode workers, {len(report.failures)} failures)")  # fmt: skip
    print(f"ratio            {end_to_end / pure:.2f} (target ≥ 0.85)")


if __name__ == "__main__":
    main()
