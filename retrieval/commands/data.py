"""Data commands: render the synthetic shapes set, export scikit-learn's handwritten digits."""

from __future__ import annotations

import inspect
import json
from dataclasses import asdict
from pathlib import Path

import typer

from encoders.data.datasets import STYLES, WrittenDataset, write_synthetic
from encoders.data.digits import write_digits

SYNTH = {n: p.default for n, p in inspect.signature(write_synthetic).parameters.items()}
DIGITS = {n: p.default for n, p in inspect.signature(write_digits).parameters.items()}

data_app = typer.Typer(
    help="Make captioned data sets (open_clip TSV): synthetic shapes, handwritten digits.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


def _report(written: WrittenDataset, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({**asdict(written), "out": str(written.out)}))
        return
    splits = " + ".join(f"{n} {split}" for split, n in written.counts.items())
    held = f", {written.held_out} held out of training" if written.held_out else ""
    typer.echo(f"wrote {splits} images ({written.classes} classes{held}) to {written.out}")


@data_app.command("synth")
def synth(
    out: Path = typer.Argument(..., help="Output folder (train.tsv, test.tsv, images/, ...)."),
    train: int = typer.Option(20000, "--train", min=0, help="Training images."),
    test: int = typer.Option(2000, "--test", min=0, help="Test images."),
    size: int = typer.Option(64, "--size", min=16, max=1024, help="Image side in pixels."),
    seed: int = typer.Option(0, "--seed", help="Seed: images and held-out pairs follow from it."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Render processes."),
    style: str = typer.Option(
        SYNTH["style"],
        "--style",
        help=f"Family ({'/'.join(STYLES)}). A: 8 colours x 8 shapes in plain scenes; B: an "
        "independent one (other colours and shapes, rotated and outlined, busy backgrounds, "
        "other sentence forms) to confirm a recipe on.",
    ),  # fmt: skip
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Render coloured shapes with captions; some colour-shape pairs appear only in test."""
    _report(write_synthetic(out, train, test, size, seed, workers, style.upper()), as_json)


@data_app.command("digits")
def digits(
    out: Path = typer.Argument(..., help="Output folder (train.tsv, test.tsv, images/, ...)."),
    size: int = typer.Option(
        DIGITS["size_px"], "--size", min=8, max=1024, help="Image side in pixels."
    ),
    test_fraction: float = typer.Option(
        DIGITS["test_fraction"], "--test-fraction", min=0.01, max=0.99
    ),
    seed: int = typer.Option(
        DIGITS["seed"], "--seed", help="Seed of the train/test split and captions."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Export scikit-learn's 1,797 handwritten digit scans as captioned images (no download)."""
    _report(write_digits(out, size, test_fraction, seed), as_json)
