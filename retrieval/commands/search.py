"""``vitrieve search``, ``similar`` and ``explain``: find photos in words or by example, and
show which part of a photo matched."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from encoders.device import describe
from encoders.errors import VitrieveError
from retrieval.commands.common import (
    DATE_FORMATS,
    DEVICE_OPTION,
    JSON_OPTION,
    LIBRARY_OPTION,
    MODEL_OPTION,
    emit_json,
    end_of_day,
    load_encoder,
    open_library,
)
from retrieval.query import Filters, Query, is_file
from retrieval.searcher import DEFAULT_THRESHOLD, SORTS, SearchResponse
from retrieval.serving import configure_serving

FILTER_HELP = "Filters"
FILTER_ARGS = (
    "folder", "taken_after", "taken_before", "modified_after", "modified_before", "types",
    "label", "min_label_score", "min_width", "min_height", "min_bytes",
)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("search")(search)
    app.command("similar")(similar)
    app.command("explain")(explain_command)


def _filters(
    folder: str | None, taken_after: datetime | None, taken_before: datetime | None,
    modified_after: datetime | None, modified_before: datetime | None, types: list[str] | None,
    label: str | None, min_label_score: float | None, min_width: int | None,
    min_height: int | None, min_bytes: int | None,
) -> Filters:  # fmt: skip
    return Filters(
        folder=folder, taken_after=taken_after, taken_before=end_of_day(taken_before),
        modified_after=modified_after, modified_before=end_of_day(modified_before),
        formats=tuple(types or ()), label=label, min_label_score=min_label_score,
        min_width=min_width, min_height=min_height, min_bytes=min_bytes,
    )  # fmt: skip


def _opt(*names: str, help: str, **kw):
    return typer.Option(None, *names, help=help, rich_help_panel=FILTER_HELP, **kw)


FOLDER = _opt("--folder", help="Only photos under this folder (relative to the photo root).")
TAKEN_AFTER = _opt("--taken-after", help="Taken on or after this date.", formats=DATE_FORMATS)
TAKEN_BEFORE = _opt("--taken-before", help="Taken on or before this date.", formats=DATE_FORMATS)
MOD_AFTER = _opt("--modified-after", help="File modified on/after.", formats=DATE_FORMATS)
MOD_BEFORE = _opt("--modified-before", help="File modified on/before.", formats=DATE_FORMATS)
TYPES = _opt("--type", help="File type (JPEG, PNG, WEBP, …); repeat for several.")
LABEL = _opt("--label", help="Zero-shot label, LABEL or SET:LABEL (see `vitrieve label`).")
LABEL_SCORE = _opt("--min-label-score", help="With --label: its score at least this.")
MIN_WIDTH = _opt("--min-width", help="Image width at least this many pixels.")
MIN_HEIGHT = _opt("--min-height", help="Image height at least this many pixels.")
MIN_BYTES = _opt("--min-bytes", help="File size at least this many bytes.")


def _print(response: SearchResponse, as_json: bool, what: str, device: str) -> None:
    if as_json:
        emit_json({"query": what, **response.to_dict(), "device": device})
        return
    if not response.results:
        typer.echo("no results")
        return
    if response.no_good_match:
        typer.echo("no good match; closest results:")
    for rank, r in enumerate(response.results, start=response.offset + 1):
        when = (r.taken_at or r.modified_at).strftime("%Y-%m-%d")
        mark = "~" if r.weak else " "
        typer.echo(
            f"{rank:>3}. {r.calibrated:.2f}{mark} {r.path}  "
            f"(id {r.id}, {when}, {r.width}×{r.height}, cos {r.score:.3f})"
        )
    if response.has_more:
        typer.echo(f"… more with --offset {response.offset + response.limit}")


def search(
    query: str = typer.Argument("", help='What to find, e.g. "a red bicycle -people".'),
    library: Path | None = LIBRARY_OPTION,
    k: int = typer.Option(20, "-k", "--limit", min=1, help="How many results."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip this many (pagination)."),
    negatives: list[str] = typer.Option(None, "--not", help="A term to push away; repeatable."),
    image: Path | None = typer.Option(None, "--image", help="Also search by this image."),
    sort: str = typer.Option("score", "--sort", help="score, or date (relevant results only)."),
    drop_weak: bool = typer.Option(False, "--drop-weak", help="Leave out weak results."),
    threshold: float = typer.Option(DEFAULT_THRESHOLD, help="Calibrated relevance cut-off."),
    model: Path | None = MODEL_OPTION,
    folder: str | None = FOLDER, taken_after: datetime | None = TAKEN_AFTER,
    taken_before: datetime | None = TAKEN_BEFORE, modified_after: datetime | None = MOD_AFTER,
    modified_before: datetime | None = MOD_BEFORE, types: list[str] | None = TYPES,
    label: str | None = LABEL, min_label_score: float | None = LABEL_SCORE,
    min_width: int | None = MIN_WIDTH, min_height: int | None = MIN_HEIGHT,
    min_bytes: int | None = MIN_BYTES,
    device: str = DEVICE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:  # fmt: skip
    """Search a library in words (and/or by an image), best matches first."""
    _search(locals())


def _search(args: dict) -> None:
    if args["sort"] not in SORTS:
        raise typer.BadParameter(f"--sort must be one of {', '.join(SORTS)}")
    image = args["image"]
    if image is not None and not is_file(image):
        raise VitrieveError(f"image not found: {image}")
    query = Query.parse(args["query"], args["negatives"] or (), image)
    configure_serving()  # the threads bench/search.py measures
    with open_library(args["library"], args["model"], args["device"]) as lib:
        response = lib.searcher.search(
            query, _filters_from(args), offset=args["offset"], limit=args["k"],
            sort=args["sort"], drop_weak=args["drop_weak"], threshold=args["threshold"],
        )  # fmt: skip
        _print(response, args["as_json"], args["query"], describe(lib.encoder.device))


def _filters_from(args: dict) -> Filters:
    return _filters(*(args[n] for n in FILTER_ARGS))


def similar(
    image: str = typer.Argument(..., help="An image file, or the id of an indexed image."),
    library: Path | None = LIBRARY_OPTION,
    k: int = typer.Option(20, "-k", "--limit", min=1, help="How many results."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip this many (pagination)."),
    text: str = typer.Option("", "--text", help="Steer with words too (mixed query)."),
    negatives: list[str] = typer.Option(None, "--not", help="A term to push away; repeatable."),
    sort: str = typer.Option("score", "--sort", help="score, or date (relevant results only)."),
    drop_weak: bool = typer.Option(False, "--drop-weak", help="Leave out weak results."),
    threshold: float = typer.Option(DEFAULT_THRESHOLD, help="Calibrated relevance cut-off."),
    model: Path | None = MODEL_OPTION,
    folder: str | None = FOLDER, taken_after: datetime | None = TAKEN_AFTER,
    taken_before: datetime | None = TAKEN_BEFORE, modified_after: datetime | None = MOD_AFTER,
    modified_before: datetime | None = MOD_BEFORE, types: list[str] | None = TYPES,
    label: str | None = LABEL, min_label_score: float | None = LABEL_SCORE,
    min_width: int | None = MIN_WIDTH, min_height: int | None = MIN_HEIGHT,
    min_bytes: int | None = MIN_BYTES,
    device: str = DEVICE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:  # fmt: skip
    """More like this: photos similar to an image file or an indexed image's id."""
    _similar(locals())


def _similar(args: dict) -> None:
    if args["sort"] not in SORTS:
        raise typer.BadParameter(f"--sort must be one of {', '.join(SORTS)}")
    configure_serving()
    with open_library(args["library"], args["model"], args["device"]) as lib:
        target = _image_or_id(lib, args["image"])
        query = Query.parse(args["text"], args["negatives"] or (), target)
        response = lib.searcher.search(
            query, _filters_from(args), offset=args["offset"], limit=args["k"],
            sort=args["sort"], drop_weak=args["drop_weak"], threshold=args["threshold"],
        )  # fmt: skip
        _print(response, args["as_json"], args["image"], describe(lib.encoder.device))


def _image_or_id(lib, value: str) -> int | Path:
    """An indexed id (digits), an indexed file (its stored vector), or any image file."""
    path = Path(value).expanduser()
    if is_file(path):
        known = lib.id_for_path(path)
        return int(known) if known is not None else path
    if value.strip().isdigit():
        lib.record(int(value))  # unknown ids fail here, with one clear line
        return int(value)
    raise VitrieveError(f"not an image file nor an indexed id: {value}")


def explain_command(
    query: str = typer.Argument(..., help="The text whose match to show."),
    image: str = typer.Argument(..., help="An image file (or an indexed id with --library)."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the heatmap PNG."),
    method: str = typer.Option(
        "window",
        "--method",
        help="window (what each part matches on its own) or patches (text vs each patch token).",
    ),  # fmt: skip
    model: Path | None = MODEL_OPTION,
    library: Path | None = LIBRARY_OPTION,
    device: str = DEVICE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Heatmap of which part of a photo matched the text."""
    _explain(query, image, out, method, model, library, device, as_json)


def _explain(query: str, image: str, out: Path, method: str, model, library, device: str,
             as_json) -> None:  # fmt: skip
    from indexer.images import decode_image
    from retrieval.explain import METHODS, write_heatmap

    if method not in METHODS:
        raise typer.BadParameter(f"--method must be one of {', '.join(METHODS)}")
    if not query.strip():
        raise VitrieveError("empty query: nothing to explain")
    path = Path(image).expanduser()
    if model is not None and not is_file(path) and not image.isdigit():
        raise VitrieveError(f"image not found: {image}")
    if model is not None and is_file(path):
        encoder = load_encoder(model, device)
    else:
        lib = open_library(library, model, device)
        encoder = lib.encoder
        if not is_file(path):
            path = lib.file_path(image) if image.strip().isdigit() else path
    if not is_file(path):
        raise VitrieveError(f"image not found: {image}")
    with open(path, "rb") as handle:  # full resolution: the heatmap goes over the photo
        picture = decode_image(handle, target_size=1 << 14).image
    explanation = write_heatmap(encoder, query, picture, out, method)
    hot = explanation.hot_mask()
    ys, xs = hot.nonzero()
    box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1] if len(xs) else []
    if as_json:
        emit_json({"query": query, "image": str(path), "out": str(out), "method": method,
                   "hot_box": box, "grid": explanation.grid.round(4).tolist(),
                   "device": describe(encoder.device)})  # fmt: skip
    else:
        typer.echo(f"wrote {out} (hottest area {box})")
