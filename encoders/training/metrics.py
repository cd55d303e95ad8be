"""Run records: ``metrics.jsonl`` (one JSON object per step) and ``curves.png``."""

from __future__ import annotations

import json
from pathlib import Path


def read_metrics(path: Path) -> list[dict]:
    """The records of a ``metrics.jsonl`` (a resumed run appends to the same file)."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def plot_curves(records: list[dict], out: Path) -> Path:
    """Training loss and validation zero-shot top-1 against training time (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    steps = [r for r in records if "loss" in r and r["loss"] == r["loss"]]  # drop NaN
    left.plot([r["elapsed_s"] / 60 for r in steps], [r["loss"] for r in steps], lw=1)
    left.set(xlabel="minutes", ylabel="training loss", title="loss", yscale="log")
    for key, label in (("val_top1", "all"), ("val_top1_seen", "seen"),
                       ("val_top1_held_out", "held-out")):  # fmt: skip
        points = [r for r in records if key in r]
        if points:
            right.plot([r["elapsed_s"] / 60 for r in points], [r[key] for r in points],
                       marker="o", label=label)  # fmt: skip
    right.set(xlabel="minutes", ylabel="zero-shot top-1", title="validation", ylim=(0, 1))
    if right.lines:
        right.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
