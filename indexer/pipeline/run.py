"""The steps every indexing engine shares: open the library, begin a run, finish it.

An engine (``pipeline``: local worker processes; ``distributed``: Ray Data) differs only in
how it decodes and embeds the work list between ``begin_run`` and ``finish_run``:

    photos, library = resolve_paths(photos, library)
    request = Request(photos, library, db_url, encoder, model_ref, options, progress)
    with open_library(request) as (store, manifest):
        run = begin_run(request, store, manifest)
        ...  # decode and embed run.work into run.index, committing rows to run.store
        return finish_run(run)

``begin_run`` finishes an interrupted switch, picks the generation to embed into, reconciles
the indexes with the rows, scans the folder and records what it found; ``finish_run`` merges
and saves the indexes, switches to a completed new model's index and fills in the report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from sqlalchemy.exc import OperationalError

from encoders.errors import VitrieveError
from encoders.runtime.encoder import Encoder
from indexer.generations import (
    GenerationIndex,
    Repair,
    discard_building,
    keep_model,
    prune_models,
    switch_to_building,
)
from indexer.layout import (
    DEFAULT_LIBRARY_DIR,
    Generation,
    Manifest,
    locate_library,
    read_manifest,
    remove_temporaries,
    write_manifest,
    writer_lock,
)
from indexer.pipeline.reports import IndexOptions, IndexProgress, IndexReport, ProgressCallback
from indexer.pipeline.scan import ScanResult, scan
from indexer.store.metadata import MetadataStore

log = logging.getLogger(__name__)

IndexHook = Callable[[GenerationIndex], object]
"""An engine's extra step on the index a run embeds into (e.g. merging its own shards)."""


@dataclass(frozen=True)
class Request:
    """What an engine was asked to index (paths resolved), with what and how."""

    photos: Path
    library: Path
    db_url: str | None
    encoder: Encoder
    model_ref: str
    options: IndexOptions
    progress: ProgressCallback | None
    started: float = field(default_factory=time.monotonic)  # the report's seconds count from here


@dataclass
class Run:
    """One indexing run between ``begin_run`` and ``finish_run``."""

    request: Request
    store: MetadataStore
    manifest: Manifest
    target: Generation  # the generation this run embeds into
    building: bool  # target is a new model's index, searchable only once complete
    indexes: list[GenerationIndex]  # the active generation's, then the building one's
    report: IndexReport
    notify: ProgressCallback
    work: list[tuple[int, str]]  # (file id, path relative to the photo folder) to embed
    state: IndexProgress  # the embed phase's progress, updated by the engine
    unreadable: list[tuple[str, str]]  # (path, reason) the scan could not read

    @property
    def library(self) -> Path:
        return self.request.library

    @property
    def index(self) -> GenerationIndex:
        """The index this run's vectors go into."""
        return self.indexes[-1]

    @property
    def active(self) -> bool:
        """Whether embedded rows become searchable at once (not a new model's index)."""
        return not self.building


def resolve_paths(photos: Path, library: Path | None) -> tuple[Path, Path]:
    """The absolute photo folder (which must exist) and library: ``library`` as
    ``locate_library`` reads it, by default ``photos/.vitrieve``."""
    photos = Path(photos).expanduser().resolve()
    if not photos.is_dir():
        raise VitrieveError(f"photo folder not found: {photos}")
    return photos, locate_library(library or photos / DEFAULT_LIBRARY_DIR, new=True)


@contextmanager
def open_library(request: Request) -> Iterator[tuple[MetadataStore, Manifest]]:
    """Hold the library's writer lock, with its manifest checked and its metadata store open.

    A disk or database fault (disk full, library turned read-only, database gone) ends the
    run as one VitrieveError: every batch committed before it is kept, and a run after the
    fault is fixed resumes from there (per-file faults never get here: they are recorded)."""
    try:
        with writer_lock(request.library):
            removed = remove_temporaries(request.library)
            if removed:
                log.warning("removed %d temporary files of an interrupted run", len(removed))
            manifest = prepare_manifest(request.library, request.photos, request.db_url)
            store = MetadataStore.for_library(request.library, manifest.database)
            try:
                yield store, manifest
            finally:
                store.close()
    except (OSError, OperationalError) as exc:
        raise VitrieveError(
            f"indexing into {request.library} stopped: {_fault(exc)} (batches committed "
            "so far are kept; run again once this is fixed)"
        ) from exc


def _fault(exc: BaseException) -> str:
    """The one-line reason of an OS or database error."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    if isinstance(exc, OperationalError) and exc.orig is not None:
        return str(exc.orig).splitlines()[0]
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def prepare_manifest(library: Path, photos: Path, db_url: str | None) -> Manifest:
    """Read (or start) ``library.json``; refuse a library of another folder or database."""
    manifest = read_manifest(library)
    if manifest is None:
        manifest = Manifest(root=str(photos), database=db_url)
    elif Path(manifest.root) != photos:
        raise VitrieveError(f"library {library} indexes {manifest.root}, not {photos}")
    elif db_url and manifest.database != db_url:
        raise VitrieveError(f"library {library} keeps its metadata in {manifest.database}")
    manifest.versions = _versions()
    write_manifest(library, manifest)
    return manifest


def _versions() -> dict[str, str]:
    out = {}
    for name in ("vitrieve", "torch", "faiss-cpu", "sqlalchemy", "pillow"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def target_generation(
    library: Path,
    store: MetadataStore,
    manifest: Manifest,
    encoder: Encoder,
    model_ref: str,
    kind: str,
) -> tuple[Generation, bool]:
    """The generation this run embeds into, and whether it is a new model's unfinished index.

    Another model than the active one's builds a new generation beside it (searched once
    complete); the run's model is kept in the library (``keep_model``) before it is recorded."""
    current = Generation(0, model_ref, encoder.model_id, encoder.embed_dim, kind)
    keep_model(library, model_ref, encoder.model_id)
    if manifest.active is None:
        current.generation = 1
        manifest.active = current
    elif manifest.active.model_id == encoder.model_id:
        manifest.active.model_ref = model_ref
        discard_building(library, store, manifest)
    elif manifest.building is None or manifest.building.model_id != encoder.model_id:
        discard_building(library, store, manifest)
        current.generation = manifest.active.generation + 1
        manifest.building = current
    write_manifest(library, manifest)
    prune_models(library, manifest)  # what an interrupted run kept for a model now unused
    building = manifest.building is not None
    return (manifest.building if building else manifest.active), building


def begin_run(
    request: Request,
    store: MetadataStore,
    manifest: Manifest,
    recover: IndexHook | None = None,
) -> Run:
    """Open the indexes and scan: everything before the engine decodes and embeds.

    ``recover`` runs on the target index before it is reconciled with the rows, to take in
    what an engine's crashed run left outside the index."""
    photos, library, encoder = request.photos, request.library, request.encoder
    if manifest.switching and manifest.building is not None:
        switch_to_building(library, store, manifest)  # finish a switch a crash interrupted
    target, building = target_generation(
        library, store, manifest, encoder, request.model_ref, request.options.index_kind
    )
    report = IndexReport(str(library), str(photos), encoder.model_id, building=building)
    indexes = [GenerationIndex(library, store, manifest.active, building=False)]
    if building:
        indexes.append(GenerationIndex(library, store, target, building=True))
    if recover is not None:
        recover(indexes[-1])
    report.repaired = repair_counts([ix.open() for ix in indexes])
    notify = request.progress or (lambda _p: None)
    notify(IndexProgress("scan"))
    result = scan(photos, store.all_files(), exclude=[library])
    apply_scan(store, indexes, result, report)
    if request.options.retry_failed:
        store.retry_failed()
    work = store.work_list(target.generation)
    state = IndexProgress("embed", found=result.found, todo=len(work), skipped=report.unchanged)
    notify(state)
    return Run(
        request=request,
        store=store,
        manifest=manifest,
        target=target,
        building=building,
        indexes=indexes,
        report=report,
        notify=notify,
        work=work,
        state=state,
        unreadable=[(p, r) for p, r in result.unreadable],
    )


def finish_run(run: Run, merge: IndexHook | None = None) -> IndexReport:
    """Merge and save the indexes, switch to a completed new model's index, fill the report.

    ``merge`` runs on the target index first, to add what the engine kept outside it."""
    run.notify(IndexProgress("merge", **progress_counts(run.state)))
    if merge is not None:
        merge(run.index)
    kinds = [ix.finish() for ix in run.indexes]
    for ix, kind in zip(run.indexes, kinds, strict=True):
        ix.generation.built_kind = kind
    report = run.report
    if run.building and not run.store.work_list(run.target.generation):
        switch_to_building(run.library, run.store, run.manifest)
        report.switched, report.building = True, False
    write_manifest(run.library, run.manifest)
    report.vectors, report.index_kind = len(run.index), kinds[-1]
    report.failures += run.unreadable
    run.notify(IndexProgress("done", **progress_counts(run.state)))
    report.seconds = time.monotonic() - run.request.started
    return report


def progress_counts(state: IndexProgress) -> dict[str, float]:
    """The counters of a progress snapshot, to carry into the next phase's."""
    names = ("found", "todo", "done", "failed", "skipped", "elapsed")
    return {k: getattr(state, k) for k in names}


def repair_counts(repairs: list[Repair]) -> dict[str, int]:
    """What reconciling the indexes with the rows changed, summed for the report."""
    return {
        "dropped_vectors": sum(r.dropped_vectors for r in repairs),
        "reembedded": sum(r.reembed for r in repairs),
    }


def apply_scan(
    store: MetadataStore, indexes: list[GenerationIndex], result: ScanResult, report: IndexReport
) -> None:
    """Record what the scan found: the rows first, then the vectors of stale content."""
    stale_paths = {r.path: r.id for r in store.all_files() if r.status == "deleted"}
    in_the_way = [stale_paths[f.path] for _, f in result.moved if f.path in stale_paths]
    store.remove_rows(in_the_way)
    store.update_rows(
        [{"id": i, "path": f.path, "size": f.size, "mtime_ns": f.mtime_ns} for i, f in result.moved]
        + [{"id": i, "size": f.size, "mtime_ns": f.mtime_ns} for i, f in result.touched]
    )
    store.mark_changed([(i, f.size, f.mtime_ns) for i, f in result.changed])
    store.mark_deleted(result.deleted)
    store.add_files((f.path, f.size, f.mtime_ns) for f in result.new)
    stale = [i for i, _ in result.changed] + result.deleted
    for ix in indexes:
        ix.remove(stale)
        ix.save()
    report.found, report.new, report.changed = result.found, len(result.new), len(result.changed)
    report.moved, report.deleted = len(result.moved), len(result.deleted)
    report.unchanged = len(result.unchanged) + len(result.touched)
    report.skipped_links = result.skipped
