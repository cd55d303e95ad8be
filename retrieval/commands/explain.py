"""``vitrieve explain``: heatmaps of which part of each photo matched a text."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import typer

from encoders.errors import VitrieveError
from encoders.runtime.device import describe
from retrieval.commands.common import (
    JSON_OPTION,
    LIBRARY_OPTION,
    ModelChoice,
    emit_json,
    library_model_choice,
    open_library,
    takes,
)
from retrieval.search.query import is_file


def register(app: typer.Typer) -> None:
    app.command("explain")(explain)


FULL_RESOLUTION = 1 << 14  # the heatmap goes over the photo as it is, not the model's input


@takes(library_model_choice, "model")
def explain(
    query: str = typer.Argument(..., help="The text whose match to show."),
    images: list[str] = typer.Argument(
        ..., help="Image files (or indexed ids, with the library); shell globs work."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="The heatmap PNG (several images: a folder of them)."
    ),
    method: str = typer.Option(
        "window",
        "--method",
        help="window (what each part matches on its own) or patches (text vs each patch token).",
    ),  # fmt: skip
    library: Path | None = LIBRARY_OPTION,
    as_json: bool = JSON_OPTION,
    *,
    model: ModelChoice,
) -> None:
    """Heatmap of which part of a photo matched the text, one PNG per image."""
    from retrieval.search.explain import METHODS

    if method not in METHODS:
        raise typer.BadParameter(f"--method must be one of {', '.join(METHODS)}")
    if not query.strip():
        raise VitrieveError("empty query: nothing to explain")
    with ExitStack() as stack:
        lib = None
        if model.reference is None or not all(is_file(Path(i).expanduser()) for i in images):
            lib = stack.enter_context(open_library(library, model))
        encoder = lib.encoder if lib is not None else model.load()
        paths = [_image_path(lib, value) for value in images]
        outputs = _outputs(out, paths)
        reports = [
            _explain_one(encoder, query, path, target, method)
            for path, target in zip(paths, outputs, strict=True)
        ]
    if as_json:
        device = describe(encoder.device)
        shown = [{"query": query, **r, "method": method, "device": device} for r in reports]
        emit_json(shown[0] if len(shown) == 1 else shown)
        return
    for report in reports:
        typer.echo(f"wrote {report['out']} (hottest area {report['hot_box']})")


def _image_path(lib, value: str) -> Path:
    """An image file, or with a library an indexed id's file."""
    path = Path(value).expanduser()
    if is_file(path):
        return path
    if lib is not None and value.strip().isdigit():
        return lib.file_path(value)
    raise VitrieveError(f"image not found: {value}")


def _outputs(out: Path, paths: list[Path]) -> list[Path]:
    """``out`` for one image; ``out/<name>.png`` for several (numbered when names repeat)."""
    if len(paths) == 1:
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    seen: dict[str, int] = {}
    outputs = []
    for path in paths:
        count = seen[path.stem] = seen.get(path.stem, 0) + 1
        outputs.append(out / (path.stem + (f"-{count}" if count > 1 else "") + ".png"))
    return outputs


def _explain_one(encoder, query: str, path: Path, out: Path, method: str) -> dict:
    """Write one heatmap; its facts for the output (image, out, hottest box, grid)."""
    from indexer.decode.images import decode_image
    from retrieval.search.explain import write_heatmap

    with open(path, "rb") as handle:
        picture = decode_image(handle, target_size=FULL_RESOLUTION).image
    explanation = write_heatmap(encoder, query, picture, out, method)
    ys, xs = explanation.hot_mask().nonzero()
    box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1] if len(xs) else []
    grid = explanation.grid.round(4).tolist()
    return {"image": str(path), "out": str(out), "hot_box": box, "grid": grid}
