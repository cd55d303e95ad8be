"""bench/gpu.py's CPU-side pieces: arguments, the generated photos, the no-CUDA exit."""

from __future__ import annotations

from pathlib import Path

import gpu as bench  # bench/ is on the test import path (pyproject)
import torch
from PIL import Image


def test_smoke_shrinks_every_size() -> None:
    full, smoke = bench.parse_args([]), bench.parse_args(["--smoke"])
    assert (full.batch, full.files, full.megapixels, full.vectors) == (512, 2000, 6.0, 1_000_000)
    assert smoke.files < 100 and smoke.vectors < 100_000 and smoke.batch < full.batch


def test_generated_photos_are_jpegs_of_the_asked_size(tmp_path: Path) -> None:
    args = bench.parse_args(["--smoke", "--cache", str(tmp_path)])
    args.files = 3
    folder = bench.photo_folder(args)
    paths = sorted(folder.glob("*.jpg"))
    assert len(paths) == 3 and not list(folder.glob("*.tmp"))
    with Image.open(paths[0]) as image:
        width, height = image.size
        assert image.format == "JPEG" and abs(width * height - 0.3e6) < 0.01e6
    first = paths[0].read_bytes()
    bench.photo_folder(args)  # generated once: kept as they are
    assert paths[0].read_bytes() == first


def test_without_cuda_it_says_so_and_exits_2(monkeypatch, capsys) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.main([]) == 2
    assert "needs a CUDA device" in capsys.readouterr().err


def test_nvjpeg_rows_run_with_the_cpu_twin(tmp_path: Path) -> None:
    """Both nvJPEG rows (bytes in memory; files read, thumbnails encoded) on the CPU decoder."""
    args = bench.parse_args(["--smoke", "--cache", str(tmp_path)])
    args.files = 3
    paths = sorted(bench.photo_folder(args).glob("*.jpg"))
    device = torch.device("cpu")
    assert bench.nvjpeg_in_memory(paths, device, 32) > 0
    assert bench.nvjpeg_with_reading(paths, device, 32) > 0


def test_toolchain_flag_prints_one_line(capsys) -> None:
    assert bench.main(["--toolchain"]) == 0
    assert capsys.readouterr().out.startswith("compiled variants")
