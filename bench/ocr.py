"""vitrieve's OCR stage vs RapidOCR's default pipeline (what Immich runs), image by image.

Both read the same generated photo-like images (tests/ocr/textimages.py: signs, receipts,
plates, posters, screens, a sideways photo, and ``--free`` of them without text), from the
same decoded pixels (the decode is not timed: the indexer has already decoded the file for
the embedding), with the same number of ONNX Runtime threads. RapidOCR gets BGR pixels, as
it reads them; vitrieve gets RGB. Reported per pipeline: files/s, recall of the shown words
(folded, spaces ignored: what ``text:`` search matches), lines read on text-free photos, and
the extra indexing time per 1,000 photos. ``--streams`` runs vitrieve on that many images at
once, the threads split between them.

    python bench/ocr.py --count 12 --size 4000x3000 --threads 2
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from textimages import scene_set  # tests/ocr: on PYTHONPATH (make bench sets BENCH_PATH)

from indexer.ocr import OcrOptions, recognise
from indexer.store.text_index import fold


def recall(scenes, texts: list[str]) -> tuple[float, int]:
    """(share of shown words found, lines read on photos without text)."""
    shown = found = spurious = 0
    for scene, text in zip(scenes, texts, strict=True):
        flat = fold(text).replace(" ", "")
        shown += len(scene.words)
        found += sum(fold(w).replace(" ", "") in flat for w in scene.words)
        spurious += 0 if scene.words else len([t for t in text.split("\n") if t.strip()])
    return found / max(shown, 1), spurious


def run_rapidocr(pixels: list[np.ndarray], threads: int) -> tuple[float, list[str]]:
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1)
    engine(pixels[0][:64, :64, ::-1].copy())  # load, warm up
    texts, started = [], time.perf_counter()
    for rgb in pixels:
        result, _ = engine(np.ascontiguousarray(rgb[:, :, ::-1]))
        texts.append("\n".join(r[1] for r in result or []))
    return time.perf_counter() - started, texts


def run_vitrieve(pixels, threads: int, streams: int, options: OcrOptions):
    per = OcrOptions(**{**options.__dict__, "threads": max(1, threads // streams)})
    recognise(pixels[0][:64, :64], per)  # load, warm up

    def one(rgb):
        return "\n".join(line.text for line in recognise(rgb, per))

    started = time.perf_counter()
    with ThreadPoolExecutor(streams) as pool:
        texts = list(pool.map(one, pixels))
    return time.perf_counter() - started, texts


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=12, help="images (default 12)")
    parser.add_argument("--size", default="4000x3000", help="WxH (default 12 MP)")
    parser.add_argument("--free", type=float, default=0.25, help="share without text")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    scenes = scene_set(args.count, size, text_share=1 - args.free)
    pixels = [np.asarray(s.image) for s in scenes]
    rows = {}
    seconds, texts = run_rapidocr(pixels, args.threads)
    rows["rapidocr-default"] = (seconds, texts)
    for streams in args.streams:
        seconds, texts = run_vitrieve(pixels, args.threads, streams, OcrOptions())
        rows[f"vitrieve x{streams}"] = (seconds, texts)
    base = args.count / rows["rapidocr-default"][0]
    report = {"count": args.count, "size": args.size, "threads": args.threads, "rows": {}}
    print(f"{args.count} images {args.size}, {args.threads} threads, {args.free:.0%} without text")
    print(
        f"{'pipeline':<18}{'files/s':>9}{'speed-up':>10}{'recall':>8}{'spurious':>10}{'s/1000':>8}"
    )
    for name, (seconds, texts) in rows.items():
        rate = args.count / seconds
        got, spurious = recall(scenes, texts)
        report["rows"][name] = {"files_per_s": round(rate, 3), "speedup": round(rate / base, 2),
                                "recall": round(got, 3), "spurious_lines": spurious,
                                "extra_s_per_1000": round(1000 / rate, 1)}  # fmt: skip
        print(f"{name:<18}{rate:>9.3f}{rate / base:>9.2f}x{got:>8.3f}{spurious:>10}"
              f"{1000 / rate:>8.0f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
