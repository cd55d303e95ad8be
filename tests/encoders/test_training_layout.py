"""A run directory's names, written down once (``encoders.training.layout``): what
``vitrieve train`` and ``finetune`` leave on disk is a format users and the UI rely on."""

from __future__ import annotations

import json
from pathlib import Path

from encoders.training.layout import RunLayout, plot_curves, read_metrics


def test_the_run_directory_layout_is_pinned(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path)
    assert layout.checkpoint == tmp_path / "checkpoint"
    assert layout.metrics == tmp_path / "metrics.jsonl"
    assert layout.curves == tmp_path / "curves.png"
    assert (layout.head, layout.classifier) == (
        tmp_path / "head.safetensors", tmp_path / "classifier.json",
    )  # fmt: skip


def test_metrics_append_and_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path)
    assert layout.read_metrics() == []
    for step in (1, 2):
        layout.append_metrics({"step": step, "loss": 1.0 / step, "elapsed_s": step})
    with layout.metrics.open("a", encoding="utf-8") as handle:
        handle.write('{"step": 3, "lo')  # a run killed mid-write
    assert [r["step"] for r in read_metrics(layout.metrics)] == [1, 2]
    assert json.loads(layout.metrics.read_text().splitlines()[0])["step"] == 1


def test_curves_replace_the_plot_whole(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path)
    records = [{"step": s, "loss": 1.0 / s, "elapsed_s": 6.0 * s} for s in (1, 2, 3)]
    records[-1]["val_top1"] = 0.5
    plot_curves(records, layout.curves)
    assert layout.curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]  # no temporary left
