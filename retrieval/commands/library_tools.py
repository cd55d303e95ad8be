"""``vitrieve duplicates`` and ``vitrieve eval search``: a library's near-identical photos,
and how well its search finds what a ground-truth file says it should."""

from __future__ import annotations

from pathlib import Path

import typer

from encoders.runtime.device import describe
from retrieval.commands.common import (
    DEVICE_OPTION,
    JSON_OPTION,
    LIBRARY_OPTION,
    ModelChoice,
    device_name,
    emit_json,
    library_model_choice,
    open_library,
    takes,
)
from retrieval.search.duplicates import DEFAULT_THRESHOLD


def register(app: typer.Typer) -> None:
    app.command("duplicates")(duplicates)
    from retrieval.commands.evaluate import eval_app  # the `vitrieve eval` group

    eval_app.command("search")(eval_search)


def duplicates(
    library: Path | None = LIBRARY_OPTION,
    cosine_threshold: float = typer.Option(
        DEFAULT_THRESHOLD,
        "--cosine-threshold",
        help="Cosine similarity at or above which two photos count as near-identical.",
    ),  # fmt: skip
    device: str = DEVICE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Groups of near-identical photos (copies, re-encodes, resizes), largest first."""
    if not 0.0 < cosine_threshold <= 1.0:
        raise typer.BadParameter("--cosine-threshold is a cosine similarity in (0, 1]")
    with open_library(library, ModelChoice(None, device=device)) as lib:
        groups = lib.duplicates(cosine_threshold)
    if as_json:
        emit_json({"threshold": cosine_threshold, "groups": [g.to_dict() for g in groups],
                   "device": device_name(device)})  # fmt: skip
        return
    if not groups:
        typer.echo("no near-duplicates")
    for number, group in enumerate(groups, start=1):
        typer.echo(f"group {number}: {len(group.ids)} photos (similarity ≥ "
                   f"{group.min_similarity:.3f})")  # fmt: skip
        for path in group.paths:
            typer.echo(f"  {path}")


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
