"""``vitrieve search``, ``similar`` and ``explain``: find photos in words or by example, and
show which part of a photo matched."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import typer

from encoders.errors import VitrieveError
from encoders.runtime.device import describe
from retrieval.commands.common import (
    DATE_FORMATS,
    JSON_OPTION,
    LIBRARY_OPTION,
    ModelChoice,
    emit_json,
    library_model_choice,
    open_library,
    takes,
)
from retrieval.search.query import (
    DEFAULT_LIMIT,
    DEFAULT_WITHIN_KM,
    Filters,
    Query,
    country_codes,
    end_of_day,
    is_file,
    place_filter,
    resolve_place,
)
from retrieval.search.searcher import DEFAULT_THRESHOLD, SORTS, SearchResponse
from retrieval.service.serving import configure_serving

FILTER_HELP = "Filters"


def register(app: typer.Typer) -> None:
    app.command("search")(search)
    app.command("similar")(similar)


def _opt(*names: str, help: str, **kw):
    return typer.Option(None, *names, help=help, rich_help_panel=FILTER_HELP, **kw)


def filters(
    folder: str | None = _opt("--folder", help="Only photos under this folder (relative)."),
    taken_after: datetime | None = _opt(
        "--taken-after", help="Taken on or after this date.", formats=DATE_FORMATS
    ),
    taken_before: datetime | None = _opt(
        "--taken-before", help="Taken on or before this date.", formats=DATE_FORMATS
    ),
    modified_after: datetime | None = _opt(
        "--modified-after", help="File modified on/after.", formats=DATE_FORMATS
    ),
    modified_before: datetime | None = _opt(
        "--modified-before", help="File modified on/before.", formats=DATE_FORMATS
    ),
    types: list[str] | None = _opt("--type", help="File type (JPEG, PNG, …); repeatable."),
    label: str | None = _opt("--label", help="Zero-shot label, LABEL or SET:LABEL."),
    min_label_score: float | None = _opt("--min-label-score", help="With --label: at least."),
    min_width: int | None = _opt("--min-width", help="Image width at least this many pixels."),
    min_height: int | None = _opt("--min-height", help="Image height at least this many px."),
    min_bytes: int | None = _opt("--min-bytes", help="File size at least this many bytes."),
    near: str | None = _opt(
        "--near", help="Taken in or near a place: a city, US state, country, continent, or LAT,LON."
    ),
    within: float | None = _opt(
        "--within",
        metavar="KM",
        help=f"With --near a city or LAT,LON: within this many km (default {DEFAULT_WITHIN_KM:g}).",
    ),
    countries: list[str] | None = _opt(
        "--country", help="Taken in this country (ISO code or name); repeatable."
    ),
    camera: str | None = _opt("--camera", help="Camera make or model (every word, any case)."),
    has_location: bool | None = _opt(
        "--has-location/--no-location", help="Only photos with (or without) a GPS position."
    ),
) -> Filters:
    """The filter options of ``search`` and ``similar``, as a ``Filters``."""
    where = {}
    if near is not None:
        resolution = resolve_place(near)
        if resolution.ambiguous:  # the most populous place of that name; say which
            typer.echo(f"near {resolution.describe()}", err=True)
        where = place_filter(resolution.place, within)
    elif within is not None:
        raise VitrieveError("--within needs --near (a city or LAT,LON)")
    if countries:
        codes = country_codes(countries)
        if "countries" in where:  # --near a continent and --country: both must hold
            codes = tuple(c for c in where["countries"] if c in codes)
            if not codes:
                raise VitrieveError(f"--near {near} and --country {' '.join(countries)} exclude "
                                    "each other")  # fmt: skip
        where["countries"] = codes
    return Filters(
        folder=folder, taken_after=taken_after, taken_before=end_of_day(taken_before),
        modified_after=modified_after, modified_before=end_of_day(modified_before),
        formats=tuple(types or ()), label=label, min_label_score=min_label_score,
        min_width=min_width, min_height=min_height, min_bytes=min_bytes, camera=camera,
        has_location=has_location, **where,
    )  # fmt: skip


@dataclass(frozen=True)
class SearchRun:
    """What ``search`` and ``similar`` share: where, with which model, which page, filters."""

    library: Path | None
    model: ModelChoice
    negatives: tuple[str, ...]
    limit: int
    offset: int
    sort: str
    drop_weak: bool
    score_threshold: float
    filters: Filters
    as_json: bool


def search_run(
    library: Path | None = LIBRARY_OPTION,
    k: int = typer.Option(DEFAULT_LIMIT, "-k", "--limit", min=1, help="How many results."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip this many (pagination)."),
    negatives: list[str] = typer.Option(None, "--not", help="A term to push away; repeatable."),
    sort: str = typer.Option("score", "--sort", help="score, or date (relevant results only)."),
    drop_weak: bool = typer.Option(False, "--drop-weak", help="Leave out weak results."),
    score_threshold: float = typer.Option(
        DEFAULT_THRESHOLD,
        "--score-threshold",
        help="Calibrated relevance score under which a result counts as weak.",
    ),  # fmt: skip
    model: ModelChoice = None,  # type: ignore[assignment]  (filled by takes)
    where: Filters = None,  # type: ignore[assignment]  (filled by takes)
    as_json: bool = JSON_OPTION,
) -> SearchRun:
    """The options ``search`` and ``similar`` share, checked."""
    if sort not in SORTS:
        raise typer.BadParameter(f"--sort must be one of {', '.join(SORTS)}")
    return SearchRun(library, model, tuple(negatives or ()), k, offset, sort, drop_weak,
                     score_threshold, where, as_json)  # fmt: skip


search_run = takes(filters, "where")(takes(library_model_choice, "model")(search_run))


def _run(run: SearchRun, what: str, query_of) -> None:
    """Open the library, build the query (``query_of(library)``), search, print."""
    configure_serving()  # the threads bench/search.py measures
    with open_library(run.library, run.model) as lib:
        query = query_of(lib)
        response = lib.searcher.search(
            query, run.filters, offset=run.offset, limit=run.limit, sort=run.sort,
            drop_weak=run.drop_weak, threshold=run.score_threshold,
        )  # fmt: skip
        _print(response, run.as_json, what, describe(lib.encoder.device))


@takes(search_run, "run")
def search(
    query: str = typer.Argument("", help='What to find, e.g. "a red bicycle -people".'),
    image: Path | None = typer.Option(None, "--image", help="Also search by this image."),
    *,
    run: SearchRun,
) -> None:
    """Search a library in words (and/or by an image), best matches first."""
    if image is not None and not is_file(image):
        raise VitrieveError(f"image not found: {image}")
    _run(run, query, lambda _lib: Query.parse(query, run.negatives, image))


@takes(search_run, "run")
def similar(
    image: str = typer.Argument(..., help="An image file, or the id of an indexed image."),
    text: str = typer.Option("", "--text", help="Steer with words too (mixed query)."),
    *,
    run: SearchRun,
) -> None:
    """More like this: photos similar to an image file or an indexed image's id."""
    _run(run, image, lambda lib: Query.parse(text, run.negatives, image_or_id(lib, image)))


def image_or_id(lib, value: str) -> int | Path:
    """An indexed id (digits), an indexed file (its stored vector), or any image file."""
    path = Path(value).expanduser()
    if is_file(path):
        known = lib.id_for_path(path)
        return int(known) if known is not None else path
    if value.strip().isdigit():
        lib.record(int(value))  # unknown ids fail here, with one clear line
        return int(value)
    raise VitrieveError(f"not an image file nor an indexed id: {value}")


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
