"""``vitrieve classify``, ``label`` and ``export``: zero-shot labels for images and libraries."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import typer

from encoders.atomic import atomic_write_text
from encoders.errors import VitrieveError
from encoders.runtime.device import describe
from encoders.runtime.zeroshot import DEFAULT_TEMPLATES
from retrieval.commands.common import (
    JSON_OPTION,
    LIBRARY_OPTION,
    ModelChoice,
    emit_json,
    library_model_choice,
    open_library,
    takes,
)
from retrieval.labels.export import FORMATS, export_string
from retrieval.labels.zeroshot import (
    ABSTAIN,
    DEFAULT_NULL_Z,
    DEFAULT_PROBABILITY_THRESHOLD,
    DEFAULT_SET,
    ZeroShotClassifier,
    parse_labels,
)
from retrieval.search.query import is_file


@dataclass(frozen=True)
class LabelChoice:
    """The labels, prompt templates and abstain rules of a zero-shot classification."""

    labels: list[str]
    templates: list[str]
    probability_threshold: float
    null_z: float | None

    def classifier(self, encoder) -> ZeroShotClassifier:
        return ZeroShotClassifier(
            encoder, self.labels, self.templates,
            abstain_threshold=self.probability_threshold, null_z=self.null_z,
        )  # fmt: skip


def label_choice(
    labels: str | None = typer.Option(
        None, "--labels", help='Comma-separated labels, e.g. "cat,dog,car".'
    ),
    labels_file: Path | None = typer.Option(
        None, "--labels-file", help="A file with one label per line."
    ),
    templates: list[str] | None = typer.Option(
        None,
        "--template",
        help="Prompt template with {} for the label (repeatable; default: a "
        'CLIP-like set), e.g. "a photo of a {}."',
    ),  # fmt: skip
    probability_threshold: float = typer.Option(
        DEFAULT_PROBABILITY_THRESHOLD,
        "--probability-threshold",
        min=0.0,
        max=1.0,
        help="Abstain when the best label's probability is lower.",
    ),  # fmt: skip
    null_z: float = typer.Option(
        DEFAULT_NULL_Z,
        "--null-z",
        help="Abstain unless the best label beats unrelated text by "
        "this many standard deviations (negative: never).",
    ),  # fmt: skip
) -> LabelChoice:
    """The options ``classify`` and ``label`` share, read and checked."""
    return LabelChoice(
        _read_labels(labels, labels_file), list(templates or DEFAULT_TEMPLATES),
        probability_threshold, None if null_z < 0 else null_z,
    )  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("classify")(classify)
    app.command("label")(label)
    app.command("export")(export)


def _read_labels(labels: str | None, labels_file: Path | None) -> list[str]:
    if labels and labels_file:
        raise typer.BadParameter("give --labels or --labels-file, not both")
    if labels_file is not None:
        try:
            return parse_labels(labels_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise VitrieveError(f"cannot read {labels_file}: {exc}") from exc
    if not labels:
        raise VitrieveError("no labels: give --labels 'a,b,c' or --labels-file FILE")
    return parse_labels(labels)


@takes(label_choice, "choice")
@takes(library_model_choice, "model")
def classify(
    images: list[Path] = typer.Argument(..., help="Image files to classify; shell globs work."),
    library: Path | None = LIBRARY_OPTION,
    as_json: bool = JSON_OPTION,
    *,
    choice: LabelChoice,
    model: ModelChoice,
) -> None:
    """Probabilities over your labels for each image (or "none of these")."""
    missing = [str(p) for p in images if not is_file(p)]
    if missing:
        raise VitrieveError(f"image not found: {missing[0]}")
    if model.reference is not None:
        encoder = model.load()
    else:
        with open_library(library, model) as lib:
            encoder = lib.encoder
    verdicts = choice.classifier(encoder).classify_images(images)
    if as_json:
        emit_json([{"image": str(p), **v.to_dict()} for p, v in zip(images, verdicts, strict=True)])
        return
    for path, verdict in zip(images, verdicts, strict=True):
        best = verdict.label or "none of these"
        top = sorted(verdict.probabilities.items(), key=lambda kv: -kv[1])[:3]
        shown = ", ".join(f"{name} {p:.2f}" for name, p in top)
        typer.echo(f"{path}: {best}  ({shown})")


@takes(label_choice, "choice")
@takes(library_model_choice, "model")
def label(
    library: Path | None = LIBRARY_OPTION,
    name: str = typer.Option(DEFAULT_SET, "--name", help="Name of the label set."),
    as_json: bool = JSON_OPTION,
    *,
    choice: LabelChoice,
    model: ModelChoice,
) -> None:
    """Label every image of a library (from stored vectors; nothing is decoded again)."""
    with open_library(library, model) as lib:
        classifier = choice.classifier(lib.encoder)
        report = lib.label(classifier, name, progress=_progress(as_json))
    if as_json:
        device = describe(classifier.encoder.device)
        emit_json({"label_set": report.label_set, "images": report.images,
                   "counts": report.counts, "device": device})  # fmt: skip
        return
    typer.echo(f"labelled {report.images} images into set {report.label_set!r}:")
    for label_name, count in report.counts.items():
        shown = "none of these" if label_name == ABSTAIN else label_name
        typer.echo(f"  {count:>6}  {shown}")


def _progress(quiet: bool):
    if quiet or not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        typer.echo(f"\rlabelled {done}/{total}", err=True, nl=done >= total)

    return show


def export(
    library: Path | None = LIBRARY_OPTION,
    fmt: str = typer.Option("csv", "--format", help="csv or json."),
    label_set: str | None = typer.Option(None, "--set", help="Only this label set."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write here (default: stdout)."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
) -> None:
    """Write path, label set, label and score of every labelled image."""
    fmt = "json" if as_json else fmt
    if fmt not in FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}")
    with open_library(library) as lib:
        text = export_string(lib.label_rows(label_set), fmt)
    if out is None:
        typer.echo(text, nl=False)
    else:
        atomic_write_text(out, text)
