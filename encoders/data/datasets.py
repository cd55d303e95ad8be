"""Write captioned data sets to disk in open_clip's CSV format (tab-separated).

Columns: ``filepath`` (relative to the TSV's folder), ``title`` (the caption), ``label``
(class name, "" when an image has none) and data-set specific extras. The synthetic set is
rendered in worker processes; each image depends only on (seed, split, index), so the output
is identical for any number of workers.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from encoders.atomic import atomic_write, atomic_write_text
from encoders.data import synthetic, synthetic_b
from encoders.errors import VitrieveError

log = logging.getLogger(__name__)

SYNTH_COLUMNS = ("filepath", "title", "label", "held_out", "objects", "bbox")
CHUNK = 500  # images per worker task: big enough to amortise process overhead
# Independent families of synthetic data: recipes are chosen on one, confirmed on the other.
STYLES = {"A": synthetic, "B": synthetic_b}


@dataclass(frozen=True)
class WrittenDataset:
    """What a writer produced, for the CLI to report."""

    out: Path
    counts: dict[str, int]  # split -> rows
    classes: int
    held_out: int


def write_tsv(path: Path, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    """Write a tab-separated file with a header atomically; returns the number of rows."""
    count = 0

    def write(tmp: Path) -> None:
        nonlocal count
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
            writer.writerow(columns)
            for row in rows:
                writer.writerow(row)
                count += 1

    atomic_write(path, write)  # readers never see a half-written file
    return count


def write_lines(path: Path, lines: Iterable[str]) -> None:
    """Write one line per item atomically (a class list, a label file)."""
    atomic_write_text(path, "".join(f"{line}\n" for line in lines))


def _format_box(box: tuple[int, int, int, int]) -> str:
    return ",".join(str(v) for v in box)


def _render_chunk(args: tuple[Path, int, str, int, int, int, str]) -> list[tuple[object, ...]]:
    """Render and save scenes [start, stop) of a split; return their TSV rows."""
    out, seed, split, start, stop, size_px, style = args
    family = STYLES[style]
    allowed = family.allowed_classes(seed, split)
    held = set(family.held_out_pairs(seed))
    rows = []
    for index in range(start, stop):
        scene = family.scene_for(seed, split, index, size_px, allowed)
        relative = f"images/{split}/{index:06d}.png"
        scene.image.save(out / relative, compress_level=1)
        names = [o.name for o in scene.objects]
        rows.append(
            (
                relative,
                scene.caption,
                scene.label,
                int(any(n in held for n in names)),
                ";".join(names),
                ";".join(_format_box(b) for b in scene.boxes),
            )
        )
    return rows


def _render_split(
    out: Path, seed: int, split: str, count: int, size_px: int, workers: int, style: str
):
    (out / "images" / split).mkdir(parents=True, exist_ok=True)
    tasks = [
        (out, seed, split, start, min(start + CHUNK, count), size_px, style)
        for start in range(0, count, CHUNK)
    ]
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield from _render_chunk(task)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for rows in pool.map(_render_chunk, tasks):
            yield from rows


def write_synthetic(
    out: Path,
    n_train: int,
    n_test: int,
    size_px: int = 64,
    seed: int = 0,
    workers: int | None = None,
    style: str = "A",
) -> WrittenDataset:
    """Render the synthetic set into ``out``: train.tsv, test.tsv, classes.txt, held_out.txt.

    ``style`` picks the family (``STYLES``): "A" (``encoders.data.synthetic``) or "B", an
    independent generator (``encoders.data.synthetic_b``). Images go to
    ``out/images/{train,test}/NNNNNN.png``. ``bbox`` holds one ``x0,y0,x1,y1`` box per object
    (exclusive ends, visible pixels), ';'-separated in ``objects`` order.
    """
    if n_train < 0 or n_test < 0 or (n_train + n_test) == 0:
        raise VitrieveError("give a positive number of training and/or test images")
    if not 16 <= size_px <= 1024:
        raise VitrieveError(f"image size must be between 16 and 1024 px, got {size_px}")
    if style not in STYLES:
        raise VitrieveError(f"unknown style {style!r}; choose from {', '.join(STYLES)}")
    family = STYLES[style]
    out.mkdir(parents=True, exist_ok=True)
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    counts = {}
    for split, count in (("train", n_train), ("test", n_test)):
        rows = _render_split(out, seed, split, count, size_px, workers, style)
        counts[split] = write_tsv(out / f"{split}.tsv", SYNTH_COLUMNS, rows)
        log.info("wrote %d %s images to %s", counts[split], split, out)
    write_lines(out / "classes.txt", family.class_names())
    held = family.held_out_pairs(seed)
    write_lines(out / "held_out.txt", held)
    return WrittenDataset(out, counts, len(family.class_names()), len(held))
