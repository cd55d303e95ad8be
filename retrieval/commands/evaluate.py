"""Evaluation commands: zero-shot accuracy and image-text retrieval recall of a model.

``eval_app`` is the ``vitrieve eval`` group; other evaluation commands join it here. The
columns of captioned data (``columns``) are shared with ``vitrieve train``; their defaults
are the reader's own (``encoders.training.data.read_captioned``).
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path

import typer

from encoders.errors import VitrieveError
from encoders.training.data import read_captioned
from retrieval.commands.common import JSON_OPTION, ModelChoice, model_choice, takes

eval_app = typer.Typer(
    help="Measure a model: zero-shot accuracy, retrieval recall.", no_args_is_help=True
)

DATA_HELP = "Captioned data: TSV/CSV (open_clip format) or a folder of images + .txt captions."
READER = inspect.signature(read_captioned).parameters  # the reader's defaults are the CLI's


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")


@dataclass(frozen=True)
class Columns:
    """Where a CSV/TSV of captioned images keeps what (``--sep``, ``--image-col``, …)."""

    sep: str
    image_col: str
    caption_col: str


def columns(
    sep: str = typer.Option(READER["sep"].default, "--sep", help="Column separator."),
    image_col: str = typer.Option(
        READER["image_col"].default, "--image-col", help="Column with the image path."
    ),
    caption_col: str = typer.Option(
        READER["caption_col"].default, "--caption-col", help="Column with the caption."
    ),
) -> Columns:
    """The column options of every command that reads captioned data."""
    return Columns(sep, image_col, caption_col)


def _read_classes(classes: Path | None, data: Path, items) -> list[str]:
    """--classes, else classes.txt beside the data, else the data's distinct labels."""
    path = classes or (data.parent if data.is_file() else data) / "classes.txt"
    if path.is_file():
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        return [n for n in names if n]
    if classes is not None:
        raise VitrieveError(f"classes file not found: {classes}")
    return sorted({item.label for item in items if item.label})


def _line(name: str, metrics: dict) -> str:
    if not metrics.get("n"):
        return f"{name:<9} (no images)"
    return (
        f"{name:<9} top-1 {metrics['top1']:.3f}  top-5 {metrics['top5']:.3f}  "
        f"mean per-class recall {metrics['mean_per_class_recall']:.3f}  (n={metrics['n']})"
    )


@eval_app.command("zeroshot")
@takes(columns, "cols")
@takes(model_choice, "model")
def zeroshot(
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    label_col: str = typer.Option("label", "--label-col", help="Column with the class name."),
    classes: Path | None = typer.Option(
        None, "--classes", help="Class names, one a line (default: classes.txt beside --data)."
    ),
    template: list[str] | None = typer.Option(
        None, "--template", help="Prompt template with {} for the class; repeat to ensemble."
    ),
    as_json: bool = JSON_OPTION,
    *,
    cols: Columns,
    model: ModelChoice,
) -> None:
    """Zero-shot top-1/top-5/mean per-class recall; seen vs held-out when data marks them."""
    from retrieval.evaluate import DEFAULT_TEMPLATES, evaluate_zeroshot

    items = read_captioned(data, cols.sep, cols.image_col, cols.caption_col, label_col)
    names = _read_classes(classes, data, items)
    result = evaluate_zeroshot(model.load(), items, names, template or DEFAULT_TEMPLATES)
    if as_json:
        typer.echo(json.dumps({**result, "device": model.device_name}))
        return
    typer.echo(f"{len(names)} classes, {result['templates']} templates")
    typer.echo(_line("all", result))
    for subset in ("seen", "held_out"):
        if subset in result:
            typer.echo(_line(subset.replace("_", "-"), result[subset]))


@eval_app.command("retrieval")
@takes(columns, "cols")
@takes(model_choice, "model")
def retrieval(
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    as_json: bool = JSON_OPTION,
    *,
    cols: Columns,
    model: ModelChoice,
) -> None:
    """Text→image and image→text recall@1/5/10 (a hit is an item with the query's caption)."""
    from retrieval.evaluate import RECALL_KS, evaluate_retrieval

    items = read_captioned(data, cols.sep, cols.image_col, cols.caption_col)
    result = evaluate_retrieval(model.load(), items)
    if as_json:
        typer.echo(json.dumps({**result, "device": model.device_name}))
        return
    typer.echo(f"{result['images']} images, {result['captions']} distinct captions")
    for direction in ("text_to_image", "image_to_text"):
        recalls = "  ".join(f"R@{k} {result[f'{direction}_R@{k}']:.3f}" for k in RECALL_KS)
        typer.echo(f"{direction.replace('_to_', '→'):<12} {recalls}")
