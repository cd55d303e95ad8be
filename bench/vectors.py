"""VectorIndex at scale: build time, memory, single-query latency p50/p99, recall@10 vs exact.

Data: ``--n`` random-but-clustered unit vectors (default 1M × 512): cluster centres, each
cluster spread along its own low-dimensional subspace plus isotropic noise, which is how
CLIP-style embeddings of a photo library look (near-duplicates, events, themes). ``--real``
adds a run on an ``.npy`` file of real embeddings (rows L2-normalised here).

Exact search (faiss brute force, the ``flat`` kind's algorithm) runs side by side on the same
queries: recall@10 is measured against it and its latency is reported as a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from indexer.vectors.index import VectorIndex


def clustered(n: int, dim: int, seed: int = 0, per_cluster: int = 1000, intrinsic: int = 24):
    """``n`` unit vectors in ~n/per_cluster clusters, each spread in its own subspace."""
    rng = np.random.default_rng(seed)
    clusters = max(n // per_cluster, 8)
    labels = rng.integers(0, clusters, n)
    out = np.empty((n, dim), np.float32)
    for cluster in range(clusters):
        rows = np.flatnonzero(labels == cluster)
        centre = rng.standard_normal(dim).astype(np.float32)
        centre /= np.linalg.norm(centre)
        basis = rng.standard_normal((intrinsic, dim)).astype(np.float32) / np.sqrt(dim)
        spread = rng.standard_normal((len(rows), intrinsic)).astype(np.float32) @ basis
        noise = rng.standard_normal((len(rows), dim)).astype(np.float32) * (0.2 / np.sqrt(dim))
        out[rows] = centre + 0.5 * spread + noise
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def rss_gb() -> float:
    """Resident memory now (Linux /proc), in GB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 1e9


def latencies(search, queries: np.ndarray) -> tuple[list[float], list[float], np.ndarray]:
    """Wall-clock and CPU seconds of each single-query search, and the ids found.

    CPU time is what the search itself consumed: on a shared, busy machine it stays close to
    the idle-machine latency while wall-clock time includes waiting for a core."""
    times, cpu, found = [], [], []
    for query in queries:
        start, start_cpu = time.perf_counter(), time.thread_time()
        _, ids = search(query[None])
        times.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - start_cpu)
        found.append(ids[0])
    return times, cpu, np.array(found)


def percentile_ms(times: list[float], q: float) -> float:
    return float(np.percentile(times, q) * 1000)


def recall_at_10(found: np.ndarray, truth: np.ndarray, base: np.ndarray, queries: np.ndarray):
    """Share of the exact top-10 recovered; a result tied with the exact 10th score counts
    (real embeddings of near-identical images have exact ties)."""
    hits = 0
    for ids, exact_ids, query in zip(found, truth, queries, strict=True):
        tenth = float(base[exact_ids[9]] @ query)
        valid = ids[ids >= 0][:10]
        hits += int(np.sum(base[valid] @ query >= tenth - 1e-5))
    return hits / (10 * len(found))


def synthetic_embeddings(checkpoint: Path, n: int) -> np.ndarray:
    """Real model embeddings of the project's synthetic scenes (``encoders.data.synthetic``)."""
    from encoders.data.synthetic import allowed_classes, scene_for
    from encoders.runtime.encoder import Encoder

    encoder = Encoder.load(checkpoint)
    allowed = allowed_classes(0, "test")
    out = []
    for start in range(0, n, 256):
        images = [
            scene_for(0, "test", i, encoder.image_size, allowed).image
            for i in range(start, min(start + 256, n))
        ]
        out.append(encoder.encode_images(images))
    return np.concatenate(out)


def build(base: np.ndarray, kind: str, keep: Path | None) -> tuple[VectorIndex, dict]:
    """Build (or load what ``--keep`` saved on an earlier run of the same data), then time
    save and load."""
    n, dim = base.shape
    facts: dict = {}
    if keep is not None and keep.exists():
        index = VectorIndex.load(keep)
        facts["build_s"] = "loaded from --keep"
    else:
        rss_before = rss_gb()
        start = time.perf_counter()
        index = VectorIndex.create(dim, kind, expected_size=n)
        index.add(np.arange(n, dtype=np.int64), base)
        facts["build_s"] = round(time.perf_counter() - start, 1)
        facts["rss_growth_gb"] = round(rss_gb() - rss_before, 2)
    with tempfile.TemporaryDirectory(dir=keep.parent if keep else ".") as folder:
        path = keep if keep is not None else Path(folder) / "vectors.faiss"
        start = time.perf_counter()
        index.save(path)
        facts["save_s"] = round(time.perf_counter() - start, 1)
        facts["file_gb"] = round(path.stat().st_size / 1e9, 2)
        start = time.perf_counter()
        index = VectorIndex.load(path)  # search what a library opens: the memory-mapped file
        facts["load_s"] = round(time.perf_counter() - start, 2)
    return index, facts


def run(name: str, base: np.ndarray, queries: np.ndarray, args: argparse.Namespace) -> dict:
    n, dim = base.shape
    ids = np.arange(n, dtype=np.int64)
    _, truth = faiss.knn(queries, base, 10, metric=faiss.METRIC_INNER_PRODUCT)
    keep = args.keep if name == "clustered" else None
    kind = args.kind if name == "clustered" or args.kind != "auto" else "ivfpq"  # small sets
    index, facts = build(base, kind, keep)
    index.tune(**{k: v for k, v in (("nprobe", args.nprobe), ("rerank", args.rerank)) if v})
    index.search(queries[:50], 10)  # warm-up: page in, allocate
    times, cpu, found = latencies(lambda q: index.search(q, 10), queries)
    allowed = ids[np.random.default_rng(1).random(n) < 0.1]  # a 10 % filter (e.g. one year)
    filtered_times, _, filtered = latencies(lambda q: index.search(q, 10, allowed), queries[:200])
    exact_times, exact_cpu, _ = latencies(
        lambda q: faiss.knn(q, base, 10, metric=faiss.METRIC_INNER_PRODUCT), queries[: args.exact]
    )
    p50 = percentile_ms(times, 50)
    return {
        "data": name,
        "n": n,
        "dim": dim,
        "index": index.describe(),
        **facts,
        "p50_ms": round(p50, 2),
        "p99_ms": round(percentile_ms(times, 99), 2),
        "cpu_p50_ms": round(percentile_ms(cpu, 50), 2),
        "cpu_p99_ms": round(percentile_ms(cpu, 99), 2),
        "recall_at_10": round(recall_at_10(found, truth, base, queries), 4),
        "filtered_p50_ms": round(percentile_ms(filtered_times, 50), 2),
        "filtered_only_allowed": bool(np.isin(filtered, allowed).all()),
        "exact_p50_ms": round(percentile_ms(exact_times, 50), 2),
        "exact_cpu_p50_ms": round(percentile_ms(exact_cpu, 50), 2),
        "load_average": round(os.getloadavg()[0], 1),
        "speedup_vs_exact": round(percentile_ms(exact_times, 50) / p50, 1),
    }


def report(result: dict) -> str:
    index = result["index"]
    return "\n".join(
        [
            f"{result['data']}: {result['n']:,} x {result['dim']} -> {index['kind']} "
            f"({index.get('factory', 'IDMap2,Flat')}, {json.dumps(index.get('params', {}))})",
            f"  build {result['build_s']} s, RSS +{result.get('rss_growth_gb', '?')} GB, "
            f"file {result['file_gb']} GB (save {result['save_s']} s, load {result['load_s']} s)",
            f"  search k=10, one query: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms "
            f"(CPU p50 {result['cpu_p50_ms']} ms, p99 {result['cpu_p99_ms']} ms), "
            f"recall@10 {result['recall_at_10']} vs exact",
            f"  10% filter: p50 {result['filtered_p50_ms']} ms, "
            f"only allowed ids: {result['filtered_only_allowed']}",
            f"  exact brute force p50 {result['exact_p50_ms']} ms "
            f"(approximate is {result['speedup_vs_exact']}x faster); "
            f"load average {result['load_average']}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors in the index")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--exact", type=int, default=30, help="exact-search latency samples")
    parser.add_argument("--kind", default="auto", help="auto, flat, ivfpq or hnsw")
    parser.add_argument("--nprobe", type=int, help="override the IVF lists probed")
    parser.add_argument("--rerank", type=int, help="override the candidates re-ranked")
    parser.add_argument("--threads", type=int, help="FAISS OpenMP threads (default: all)")
    parser.add_argument("--keep", type=Path, help="save the index here; load it if present")
    parser.add_argument("--real", type=Path, help=".npy of real embeddings (N, D)")
    parser.add_argument("--real-model", type=Path, help="checkpoint: embed synthetic scenes")
    parser.add_argument("--real-n", type=int, default=20_000, help="scenes for --real-model")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    datasets = []
    vectors = clustered(args.n + args.queries, args.dim)
    datasets.append(("clustered", vectors[: args.n], vectors[args.n :]))
    reals = []
    if args.real:
        reals.append((args.real.name, np.load(args.real).astype(np.float32)))
    if args.real_model:
        embedded = synthetic_embeddings(args.real_model, args.real_n + args.queries)
        reals.append((f"synthetic scenes ({args.real_model.name})", embedded))
    for name, real in reals:
        real /= np.linalg.norm(real, axis=1, keepdims=True)
        cut = max(len(real) - args.queries, len(real) * 9 // 10)
        datasets.append((name, real[:cut], real[cut:]))
    results = []
    for name, base, queries in datasets:
        result = run(name, base, queries, args)
        results.append(result)
        if not args.json:
            print(report(result), flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"threads: {faiss.omp_get_max_threads()}, faiss {faiss.__version__}")


if __name__ == "__main__":
    main()
