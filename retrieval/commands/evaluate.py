"""``vitrieve eval``: zero-shot accuracy and image-text retrieval recall of a model, and
recall/nDCG of a library's whole search pipeline against a ground-truth file.

``eval_app`` is the ``vitrieve eval`` group, defined and filled here only. The
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
from encoders.runtime.device import describe
from encoders.training.data import LABEL_COL, read_captioned
from retrieval.commands.common import (
    JSON_OPTION,
    LIBRARY_OPTION,
    ModelChoice,
    emit_json,
    library_model_choice,
    model_choice,
    open_library,
    takes,
)

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


def _attribute_lines(result: dict) -> list[str]:
    """Per-word accuracy: one line per subset, with what the wrong predictions got wrong."""
    from retrieval.evaluation.diagnostics import error_label

    attributes = result["attributes"]
    if attributes is None:
        return [f"per-word accuracy: none ({result['attributes_skipped']})"]
    words = attributes["words"]
    lines = [f"per-word accuracy — {', '.join(words)}:"]
    for subset in ("all", "seen", "held_out"):
        metrics = attributes.get(subset)
        if metrics is None or not metrics["n"]:
            continue
        right = "  ".join(f"word {i + 1} {share:.3f}" for i, share in enumerate(metrics["right"]))
        errors = ", ".join(
            f"{error_label(e['wrong_words'], len(words))} {e['share']:.0%}"
            for e in metrics["errors"]
        )
        wrong = f"   {metrics['wrong']} wrong: {errors}" if metrics["wrong"] else ""
        lines.append(f"  {subset.replace('_', '-'):<9} {right}{wrong}")
    return lines


def _confusion_lines(pairs: list[dict]) -> list[str]:
    """The most confused pairs: count, share of the true class's images, true → predicted."""
    if not pairs:
        return ["most confused: none (every image classified right)"]
    lines = ["most confused (count, share of the true class's images, true → predicted):"]
    lines += [
        f"  {p['count']:>5}  {p['share']:>4.0%}  {p['true']} → {p['predicted']}" for p in pairs
    ]
    return lines


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
    label_col: str = typer.Option(LABEL_COL, "--label-col", help="Column with the class name."),
    classes: Path | None = typer.Option(
        None, "--classes", help="Class names, one a line (default: classes.txt beside --data)."
    ),
    template: list[str] | None = typer.Option(
        None, "--template", help="Prompt template with {} for the class; repeat to ensemble."
    ),
    confusion: int = typer.Option(
        0,
        "--confusion",
        min=0,
        metavar="N",
        help="Also list the N most confused class pairs (true → predicted); 0: none.",
    ),
    as_json: bool = JSON_OPTION,
    *,
    cols: Columns,
    model: ModelChoice,
) -> None:
    """Zero-shot top-1/top-5/mean per-class recall; seen vs held-out when data marks them.

    Also per-word accuracy when every class name has the same number of words ("red circle":
    word 1 right, word 2 right, which one the errors got wrong), and with --confusion N the N
    most confused class pairs.
    """
    from encoders.runtime.zeroshot import CAPTION_TEMPLATES
    from retrieval.evaluation.evaluate import evaluate_zeroshot

    items = read_captioned(data, cols.sep, cols.image_col, cols.caption_col, label_col)
    names = _read_classes(classes, data, items)
    templates = template or CAPTION_TEMPLATES
    result = evaluate_zeroshot(model.load(), items, names, templates, confusion)
    if as_json:
        typer.echo(json.dumps({**result, "device": model.device_name}))
        return
    typer.echo(f"{len(names)} classes, {result['templates']} templates")
    typer.echo(_line("all", result))
    for subset in ("seen", "held_out"):
        if subset in result:
            typer.echo(_line(subset.replace("_", "-"), result[subset]))
    lines = _attribute_lines(result)
    if "confusion" in result:
        lines += _confusion_lines(result["confusion"])
    typer.echo("\n".join(lines))


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
    from retrieval.evaluation.evaluate import RECALL_KS, evaluate_retrieval

    items = read_captioned(data, cols.sep, cols.image_col, cols.caption_col)
    result = evaluate_retrieval(model.load(), items)
    if as_json:
        typer.echo(json.dumps({**result, "device": model.device_name}))
        return
    typer.echo(f"{result['images']} images, {result['captions']} distinct captions")
    for direction in ("text_to_image", "image_to_text"):
        recalls = "  ".join(f"R@{k} {result[f'{direction}_R@{k}']:.3f}" for k in RECALL_KS)
        typer.echo(f"{direction.replace('_to_', '→'):<12} {recalls}")


@eval_app.command("search")
@takes(library_model_choice, "model")
def eval_search(
    truth: Path = typer.Argument(..., help="TSV: query<TAB>relevant path<TAB>…"),
    library: Path | None = LIBRARY_OPTION,
    as_json: bool = JSON_OPTION,
    *,
    model: ModelChoice,
) -> None:
    """Recall@k and nDCG@10 of a library's full search pipeline (index, cut-off, filters)."""
    from retrieval.evaluation.search_eval import evaluate_search, read_ground_truth

    queries = read_ground_truth(truth)
    with open_library(library, model) as lib:
        report = evaluate_search(lib.searcher, queries)
        device = describe(lib.encoder.device)
    if as_json:
        emit_json({**report.to_dict(), "device": device})
        return
    typer.echo(f"{report.positives} queries with relevant photos, {report.negatives} without")
    for name, value in report.metrics.items():
        typer.echo(f"  {name:<28} {value:.3f}")
