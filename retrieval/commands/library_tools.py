"""``vitrieve duplicates``: a library's near-identical photos."""

from __future__ import annotations

from pathlib import Path

import typer

from retrieval.commands.common import (
    DEVICE_OPTION,
    JSON_OPTION,
    LIBRARY_OPTION,
    ModelChoice,
    device_name,
    emit_json,
    open_library,
)
from retrieval.search.duplicates import DEFAULT_THRESHOLD


def register(app: typer.Typer) -> None:
    app.command("duplicates")(duplicates)


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
