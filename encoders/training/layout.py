"""A training run's directory: the one place that names what ``vitrieve train`` writes there.

    RUN_DIR/
      checkpoint/       the model (config.json + model.safetensors) and the training state
      metrics.jsonl     one JSON record per step (a resumed run appends to the same file)
      curves.png        training loss and validation zero-shot top-1 against time
      head.safetensors  ``vitrieve finetune``: the classification head (beside checkpoint/)
      classifier.json   ``vitrieve finetune``: class names, held-out accuracy, options

The CLI, the demo and the UI find these through ``RunLayout`` instead of spelling the names.
``metrics.jsonl`` is an append-only log: a record is appended as one whole line per step
(rewriting the file atomically every step would cost the whole file each time), and a last
line torn by a killed run is skipped when read. The plot is replaced with the one atomic write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from encoders.atomic import atomic_write

CHECKPOINT_DIR = "checkpoint"
METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"
HEAD_FILE = "head.safetensors"
CLASSIFIER_FILE = "classifier.json"


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run directory."""

    root: Path

    @property
    def checkpoint(self) -> Path:
        return self.root / CHECKPOINT_DIR

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def curves(self) -> Path:
        return self.root / CURVES_FILE

    @property
    def head(self) -> Path:
        return self.root / HEAD_FILE

    @property
    def classifier(self) -> Path:
        return self.root / CLASSIFIER_FILE

    def append_metrics(self, record: dict) -> None:
        """One step's record as one line of ``metrics.jsonl``."""
        with self.metrics.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def read_metrics(self) -> list[dict]:
        """The records of ``metrics.jsonl`` ([] when there is none; a torn last line skipped)."""
        return read_metrics(self.metrics)


def read_metrics(path: Path) -> list[dict]:
    """The records of a ``metrics.jsonl`` file ([] when there is none)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:  # an empty line, or a killed run's half-written last one
            continue
    return records


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
    atomic_write(out, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return out
