"""``vitrieve index`` (turn a photo folder into a library) and ``vitrieve status``."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from encoders.errors import VitrieveError
from indexer.layout import locate_library, read_manifest, vectors_path
from indexer.pipeline.local import IndexOptions, IndexProgress, IndexReport, index_library
from indexer.pipeline.reports import DEFAULT_INDEX_BATCH as BATCH
from retrieval.commands.common import (
    DEVICE_OPTION,
    JSON_OPTION,
    LIBRARY_OPTION,
    MODEL_REQUIRED,
    ModelChoice,
    device_name,
    emit_json,
    library_option,
)

MAX_LISTED_FAILURES = 50
DEFAULTS = IndexOptions()  # the indexer's own defaults are the command's


def register(app: typer.Typer) -> None:
    app.command("index")(index)
    app.command("status")(status)


def index(
    photos: Path = typer.Argument(..., help="Photo folder to index (searched recursively)."),
    model: str = MODEL_REQUIRED,
    library: Path | None = library_option("PHOTOS/.vitrieve"),
    db: str | None = typer.Option(
        None, "--db", help="Metadata database URL, e.g. postgresql+psycopg://user@host/db."
    ),
    workers: int = typer.Option(
        DEFAULTS.workers, min=0, help="Decoder processes (0: decode in-process)."
    ),
    batch_size: int | None = typer.Option(
        DEFAULTS.batch_size,
        min=1,
        help="Images per model call and per commit "
        f"(default: {BATCH['cpu']} on the CPU, {BATCH['cuda']} on a GPU).",
    ),
    threads: int = typer.Option(
        DEFAULTS.encoder_threads,
        min=0,
        help="Torch threads of the encoder (0: torch's default, every core).",
    ),  # fmt: skip
    engine: str = typer.Option("local", help="local, or ray (Ray Data; the distributed extra)."),
    ray_address: str | None = typer.Option(None, help="Ray cluster address for --engine ray."),
    max_pixels: int = typer.Option(DEFAULTS.max_pixels, min=1, help="Reject larger images."),
    timeout: float = typer.Option(DEFAULTS.timeout, min=0.1, help="Seconds per file to decode."),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Try files that failed before again (else: only if changed)."
    ),
    report: bool = typer.Option(False, "--report", help="List every failed file at the end."),
    device: str = DEVICE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Index a photo folder: only new or changed files are embedded; resumable after a kill."""
    if engine not in ("local", "ray"):
        raise typer.BadParameter("--engine must be local or ray")
    checkpoint = Path(model).expanduser()
    if not checkpoint.is_dir():  # the library reopens its model from what it records
        raise VitrieveError(
            f"model checkpoint not found: {model} (indexing needs a checkpoint directory; "
            "vitrieve convert --arch NAME --weights FILE --out DIR makes one)"
        )
    encoder = ModelChoice(str(checkpoint), device=device).load()
    options = IndexOptions(
        workers, batch_size, timeout, max_pixels, retry_failed=retry_failed,
        encoder_threads=threads, device=device,
    )  # fmt: skip
    kwargs = dict(model_ref=str(checkpoint.resolve()), library=library, db_url=db, options=options)
    run = index_library if engine == "local" else _ray_engine(ray_address)
    if json_out:
        result = run(photos, encoder, **kwargs)
        emit_json({**dataclasses.asdict(result), "device": device_name(device)})
        return
    console = Console(stderr=True)
    with _ProgressBar(console) as bar:
        result = run(photos, encoder, progress=bar.update, **kwargs)
    _print_summary(result, report, device_name(device))


def _ray_engine(address: str | None):
    """``indexer.pipeline.ray_engine.index_with_ray`` with the cluster address bound."""
    try:
        module = importlib.import_module("indexer.pipeline.ray_engine")
    except ImportError as exc:
        raise VitrieveError(
            f"--engine ray is unavailable ({exc}); install vitrieve[distributed]"
        ) from exc
    run = getattr(module, "index_with_ray", None)
    if run is None:
        raise VitrieveError("--engine ray is not available in this version")

    def call(photos: Path, encoder, **kwargs) -> IndexReport:
        return run(photos, encoder, address=address, **kwargs)

    return call


class _ProgressBar:
    """A rich progress bar fed by the pipeline's progress callback."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.fields[phase]:<6}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("found {task.fields[found]} · skipped {task.fields[skipped]}"),
            TextColumn("· failed {task.fields[failed]} · {task.fields[rate]:.1f} img/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        fields = dict(phase="scan", found=0, skipped=0, failed=0, rate=0.0)
        self.task = self.progress.add_task("index", total=None, **fields)

    def __enter__(self) -> _ProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, state: IndexProgress) -> None:
        self.progress.update(
            self.task,
            total=state.todo or None if state.phase == "scan" else state.todo,
            completed=state.done + state.failed,
            phase=state.phase,
            found=state.found,
            skipped=state.skipped,
            failed=state.failed,
            rate=state.rate,
        )


def _print_summary(result: IndexReport, list_all: bool, device: str) -> None:
    lines = [
        f"library   {result.library}",
        f"found     {result.found} images: {result.new} new, {result.changed} changed, "
        f"{result.moved} moved, {result.deleted} deleted, {result.unchanged} unchanged",
        f"embedded  {result.embedded} in {result.seconds:.1f} s; {result.vectors} vectors "
        f"searchable ({result.index_kind} index) on {device}",
    ]
    if result.switched:
        lines.append("model     the new model's index is complete and now searched")
    elif result.building:
        lines.append("model     a new model's index is being built; the old one is searched")
    if any(result.repaired.values()):
        lines.append(f"repaired  {result.repaired}")
    if result.skipped_links:
        lines.append(f"skipped   {len(result.skipped_links)} symlinks (never followed)")
    lines.append(f"failed    {len(result.failures)}")
    shown = result.failures if list_all else result.failures[:MAX_LISTED_FAILURES]
    lines += [f"  {path}: {reason}" for path, reason in shown]
    if len(shown) < len(result.failures):
        lines.append(f"  … {len(result.failures) - len(shown)} more (--report lists all)")
    typer.echo("\n".join(lines))


def status(library: Path | None = LIBRARY_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Counts per status, failures with reasons, the model and the index of a library."""
    from indexer.store.metadata import MetadataStore
    from indexer.vectors.index import VectorIndex

    library = locate_library(library)
    manifest = read_manifest(library)
    if manifest is None:  # removed between the two looks
        raise VitrieveError(f"no library at {library} (run vitrieve index first)")
    store = MetadataStore.for_library(library, manifest.database)
    try:
        counts, failures = store.status_counts(), store.failures()
    finally:
        store.close()
    path = vectors_path(library)
    index = VectorIndex.load(path) if path.exists() else None
    info = {
        "library": str(library.resolve()),
        "root": manifest.root,
        "counts": counts,
        "failures": [{"path": p, "reason": r} for p, r in failures],
        "model": dataclasses.asdict(manifest.active) if manifest.active else None,
        "building": dataclasses.asdict(manifest.building) if manifest.building else None,
        "index": {"kind": index.kind, "vectors": len(index), "bytes": path.stat().st_size}
        if index
        else None,
        "database": store.url,
    }
    if json_out:
        emit_json(info)
        return
    _print_status(info)


def _print_status(info: dict) -> None:
    counts, model, index = info["counts"], info["model"], info["index"]
    lines = [
        f"library   {info['library']} (photos in {info['root']})",
        "files     " + ", ".join(f"{n} {s}" for s, n in counts.items()),
        f"model     {model['model_ref']} (id {model['model_id']})" if model else "model     -",
        f"index     {index['kind']}, {index['vectors']} vectors, {index['bytes'] / 1e6:.1f} MB"
        if index
        else "index     -",
    ]
    if info["building"]:
        lines.append(f"building  an index for model {info['building']['model_id']}")
    lines += [f"failed    {f['path']}: {f['reason']}" for f in info["failures"]]
    typer.echo("\n".join(lines))
