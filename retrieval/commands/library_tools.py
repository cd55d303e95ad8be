"""``vitrieve duplicates`` and ``vitrieve eval search``: a library's near-identical photos,
and how well its search finds what a ground-truth file says it should."""

from __future__ import annotations

from pathlib import Path

import typer

from retrieval.commands.common import (
    DEVICE_OPTION,
    JSON_OPTION,
    LIBRARY_OPTION,
    device_name,
    emit_json,
    open_library,
)
from retrieval.duplicates import DEFAULT_THRESHOLD


def register(app: typer.Typer) -> None:
    app.command("duplicates")(duplicates)
    from retrieval.commands.evaluate import eval_app  # the `vitrieve eval` group

    eval_app.command("search")(eval_search)


def duplicates(
    library: Path | None = LIBRARY_OPTION,
    threshold: float = typer.Option(
        DEFAULT_THRESHOLD,
        "--threshold",
        help="Cosine similarity at or above which two photos count as near-identical.",
    ),  # fmt: skip
    device: str = DEVICE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Groups of near-identical photos (copies, re-encodes, resizes), largest first."""
    _duplicates(library, threshold, device, as_json)


def _duplicates(library, threshold: float, device: str, as_json: bool) -> None:
    if not 0.0 < threshold <= 1.0:
        raise typer.BadParameter("--threshold is a cosine similarity in (0, 1]")
    with open_library(library, device=device) as lib:
        groups = lib.duplicates(threshold)
    if as_json:
        emit_json({"threshold": threshold, "groups": [g.to_dict() for g in groups],
                   "device": device_name(device)})  # fmt: skip
        return
    if not groups:
        typer.echo("no near-duplicates")
    for number, group in enumerate(groups, start=1):
        typer.echo(f"group {number}: {len(group.ids)} photos (similarity ≥ "
                   f"{group.min_similarity:.3f})")  # fmt: skip
        for path in group.paths:
            typer.echo(f"  {path}")


def eval_search(
    truth: Path = typer.Argument(..., help="TSV: query<TAB>relevant path<TAB>…"),
    library: Path | None = LIBRARY_OPTION,
    device: str = DEVICE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Recall@k and nDCG@10 of a library's full search pipeline (index, cut-off, filters)."""
    _eval_search(truth, library, device, as_json)


def _eval_search(truth: Path, library, device: str, as_json: bool) -> None:
    from retrieval.search_eval import evaluate_search, read_ground_truth

    queries = read_ground_truth(truth)
    with open_library(library, device=device) as lib:
        report = evaluate_search(lib.searcher, queries)
    if as_json:
        emit_json({**report.to_dict(), "device": device_name(device)})
        return
    typer.echo(f"{report.positives} queries with relevant photos, {report.negatives} without")
    for name, value in report.metrics.items():
        typer.echo(f"  {name:<28} {value:.3f}")
