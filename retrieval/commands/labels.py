"""``vitrieve classify``, ``label`` and ``export``: zero-shot labels for images and libraries."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from encoders.device import describe
from encoders.errors import VitrieveError
from retrieval.commands.common import (
    DEVICE_OPTION,
    JSON_OPTION,
    LIBRARY_OPTION,
    MODEL_OPTION,
    emit_json,
    load_encoder,
    open_library,
)
from retrieval.export import FORMATS, export_string, label_rows
from retrieval.query import is_file
from retrieval.zeroshot import (
    ABSTAIN,
    DEFAULT_NULL_Z,
    DEFAULT_SET,
    DEFAULT_TEMPLATES,
    ZeroShotClassifier,
    label_library,
    parse_labels,
)

LABELS = typer.Option(None, "--labels", help='Comma-separated labels, e.g. "cat,dog,car".')
LABELS_FILE = typer.Option(None, "--labels-file", help="A file with one label per line.")
TEMPLATES = typer.Option(
    None, "--template", help='Prompt template with {} for the label (repeatable; default: a '
    'CLIP-like set), e.g. "a photo of a {}."',
)  # fmt: skip
THRESHOLD = typer.Option(0.0, "--threshold", help="Abstain when the best probability is lower.")
NULL_Z = typer.Option(
    DEFAULT_NULL_Z, "--null-z", help="Abstain unless the best label beats unrelated text by "
    "this many standard deviations (negative: never).",
)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("classify")(classify)
    app.command("label")(label)
    app.command("export")(export)


def _labels(labels: str | None, labels_file: Path | None) -> list[str]:
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


def _classifier(encoder, labels, templates, threshold: float, null_z: float):
    return ZeroShotClassifier(
        encoder, labels, templates or DEFAULT_TEMPLATES, abstain_threshold=threshold,
        null_z=None if null_z < 0 else null_z,
    )  # fmt: skip


def classify(
    images: list[Path] = typer.Argument(..., help="Image files to classify."),
    labels: str | None = LABELS,
    labels_file: Path | None = LABELS_FILE,
    templates: list[str] | None = TEMPLATES,
    threshold: float = THRESHOLD,
    null_z: float = NULL_Z,
    model: Path | None = MODEL_OPTION,
    library: Path | None = LIBRARY_OPTION,
    device: str = DEVICE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Probabilities over your labels for each image (or "none of these")."""
    _classify(images, labels, labels_file, templates, threshold, null_z, model, library, device,
              as_json)  # fmt: skip


def _classify(images, labels, labels_file, templates, threshold, null_z, model, library,
              device, as_json) -> None:  # fmt: skip
    names = _labels(labels, labels_file)
    missing = [str(p) for p in images if not is_file(p)]
    if missing:
        raise VitrieveError(f"image not found: {missing[0]}")
    if model is not None:
        encoder = load_encoder(model, device)
    else:
        with open_library(library, device=device) as lib:
            encoder = lib.encoder
    classifier = _classifier(encoder, names, templates, threshold, null_z)
    verdicts = classifier.classify_images(images)
    if as_json:
        emit_json([{"image": str(p), **v.to_dict()} for p, v in zip(images, verdicts, strict=True)])
        return
    for path, verdict in zip(images, verdicts, strict=True):
        best = verdict.label or "none of these"
        top = sorted(verdict.probabilities.items(), key=lambda kv: -kv[1])[:3]
        shown = ", ".join(f"{name} {p:.2f}" for name, p in top)
        typer.echo(f"{path}: {best}  ({shown})")


def label(
    library: Path | None = LIBRARY_OPTION,
    labels: str | None = LABELS,
    labels_file: Path | None = LABELS_FILE,
    name: str = typer.Option(DEFAULT_SET, "--name", help="Name of the label set."),
    templates: list[str] | None = TEMPLATES,
    threshold: float = THRESHOLD,
    null_z: float = NULL_Z,
    device: str = DEVICE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Label every image of a library (from stored vectors; nothing is decoded again)."""
    _label(library, labels, labels_file, name, templates, threshold, null_z, device, as_json)


def _label(library, labels, labels_file, name, templates, threshold, null_z, device,
           as_json) -> None:  # fmt: skip
    names = _labels(labels, labels_file)
    with open_library(library, device=device) as lib:
        classifier = _classifier(lib.encoder, names, templates, threshold, null_z)
        report = label_library(lib.index, lib.store, classifier, name, progress=_progress(as_json))
    if as_json:
        device_used = describe(classifier.encoder.device)
        emit_json({"label_set": report.label_set, "images": report.images,
                   "counts": report.counts, "device": device_used})  # fmt: skip
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
    _export(library, "json" if as_json else fmt, label_set, out)


def _export(library, fmt: str, label_set, out) -> None:
    if fmt not in FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}")
    with open_library(library) as lib:
        text = export_string(label_rows(lib.store, label_set), fmt)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
