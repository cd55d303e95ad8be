"""The vector side of a library: one FAISS index per model generation, kept in step with SQL.

Why staging: rewriting ``vectors.faiss`` after every batch would cost O(library) per batch.
Instead each batch's vectors are written to a small durable file in ``staging/gN/`` *before*
its rows are committed; the staged vectors are merged into the index at the end of a run (and
on the next open after a crash). Merging adds only ids that have an embeddings row and are not
yet in the index, so replaying it after any crash neither loses nor duplicates a vector.

On open, the index and the ``embeddings`` rows are reconciled: a vector without a row is
dropped; a row without a vector is reset to pending, so the next run embeds it again.

Each generation also keeps the checkpoint it was embedded with, in ``models/<model id>/``
(``keep_model``): a library points at its model by path only for the record, so retraining or
resuming into that path later leaves the library searchable with its own model, and indexing
with the new model is the shadow re-index below (a ``building`` generation switched in once
complete), never a broken library.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from encoders.atomic import atomic_write_bytes, fsync_dir
from encoders.errors import VitrieveError
from encoders.model.config import read_config_json
from encoders.weights.checkpoint import CONFIG_FILE, WEIGHTS_FILE, file_digest
from indexer.layout import (
    MODELS_DIR,
    Generation,
    Manifest,
    model_path,
    staging_dir,
    vectors_path,
    write_manifest,
)
from indexer.store.metadata import MetadataStore
from indexer.vectors.index import VectorIndex

log = logging.getLogger(__name__)


@dataclass
class Repair:
    """What reconciling an index with its rows changed."""

    dropped_vectors: int = 0  # vectors without an indexed row, removed
    reembed: int = 0  # rows without a vector, reset to pending

    def __bool__(self) -> bool:
        return bool(self.dropped_vectors or self.reembed)


class GenerationIndex:
    """The index of one generation, its staging folder and its reconciliation with SQL."""

    def __init__(
        self, library: Path, store: MetadataStore, generation: Generation, building: bool
    ) -> None:
        self.library, self.store, self.generation = library, store, generation
        self.path = vectors_path(library, building)
        self.staging = staging_dir(library, generation.generation)
        if self.path.exists():
            self.index = VectorIndex.load(self.path)
        else:
            self.index = VectorIndex.create(generation.embed_dim, kind=generation.index_kind)
        self._dirty = False

    def open(self) -> Repair:
        """Merge what a previous run staged, then reconcile the index with the rows."""
        self.merge()
        rows = self.store.embedded_ids(self.generation.generation)
        vectors = np.asarray(self.index.ids(), dtype=np.int64)
        orphans = np.setdiff1d(vectors, rows)
        missing = np.setdiff1d(rows, vectors)
        if orphans.size:
            log.warning("dropping %d vectors without an indexed row", orphans.size)
            self.remove(orphans)
        if missing.size:
            log.warning("%d indexed rows have no vector: they will be embedded again", missing.size)
            self.store.unembed(missing.tolist(), self.generation.generation)
        self.save()
        return Repair(int(orphans.size), int(missing.size))

    def stage(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Durably keep a batch's vectors (call before committing its rows)."""
        buffer = _npz_bytes(ids=np.asarray(ids, np.int64), vectors=np.asarray(vectors, np.float32))
        name = f"{time.time_ns():020d}-{int(ids[0])}.npz"
        atomic_write_bytes(self.staging / name, buffer)

    def merge(self) -> int:
        """Add staged vectors whose rows were committed; save; clear the staging folder."""
        chunks = sorted(self.staging.glob("*.npz")) if self.staging.is_dir() else []
        if not chunks:
            return 0
        committed = self.store.embedded_ids(self.generation.generation)
        present = np.asarray(self.index.ids(), dtype=np.int64)
        added = 0
        for chunk in chunks:
            try:
                with np.load(chunk) as data:
                    ids, vectors = data["ids"], data["vectors"]
            except (OSError, ValueError, KeyError) as exc:
                log.warning("ignoring unreadable staged vectors %s: %s", chunk.name, exc)
                continue
            keep = np.isin(ids, committed) & ~np.isin(ids, present)
            if keep.any():
                self.index.add(ids[keep], vectors[keep])
                present = np.concatenate([present, ids[keep]])
                added += int(keep.sum())
        self._dirty = True
        self.save()  # the index now holds them: only then may the staged copies go
        for chunk in chunks:
            chunk.unlink(missing_ok=True)
        return added

    def finish(self) -> str:
        """Merge, let an ``auto`` index outgrow exact search, save; return the index kind."""
        self.merge()
        if self.generation.index_kind == "auto" and self.index.upgrade_if_needed():
            self._dirty = True
        self.save()
        return self.index.kind

    def remove(self, ids: np.ndarray | list[int]) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size:
            self.index.remove(ids)
            self._dirty = True

    def save(self) -> None:
        if self._dirty or not self.path.exists():
            self.index.save(self.path)
            self._dirty = False

    def __len__(self) -> int:
        return len(self.index)


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    import io

    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def discard_building(library: Path, store: MetadataStore, manifest: Manifest) -> None:
    """Abandon an unfinished index for a model that is no longer asked for."""
    if manifest.building is None:
        return
    generation = manifest.building.generation
    store.unembed(store.embedded_ids(generation).tolist(), generation)
    vectors_path(library, building=True).unlink(missing_ok=True)
    shutil.rmtree(staging_dir(library, generation), ignore_errors=True)
    manifest.building = None
    write_manifest(library, manifest)
    prune_models(library, manifest)


def switch_to_building(library: Path, store: MetadataStore, manifest: Manifest) -> None:
    """Make the finished ``building`` generation the searchable one.

    Crash-safe in three steps, each recoverable by calling this again: mark ``switching`` in
    library.json; rename vectors.next.faiss over vectors.faiss; record the new active generation.
    """
    assert manifest.building is not None
    if not manifest.switching:
        manifest.switching = True
        write_manifest(library, manifest)
    next_path = vectors_path(library, building=True)
    if next_path.exists():
        os.replace(next_path, vectors_path(library))
    store.switch_generation(manifest.building.generation)
    old = manifest.active
    manifest.active, manifest.building, manifest.switching = manifest.building, None, False
    write_manifest(library, manifest)
    if old is not None:
        shutil.rmtree(staging_dir(library, old.generation), ignore_errors=True)
    prune_models(library, manifest)


CHECKPOINT_FILES = (CONFIG_FILE, WEIGHTS_FILE)  # what a model is: nothing of its training run


def keep_model(library: Path, model_ref: str, model_id: str) -> Path | None:
    """The library's own copy of the checkpoint ``model_ref`` (``models/<model_id>/``), made
    when missing: hard links where the file system allows (a checkpoint's files are only ever
    replaced by a rename, never rewritten in place, so a link keeps this version), else copies.

    None when ``model_ref`` is not a checkpoint folder (the library then has only the reference).
    A VitrieveError when the folder no longer holds ``model_id`` (it was replaced while this run
    loaded it): the run stops before recording a model it cannot keep."""
    target = model_path(library, model_id)
    if all((target / name).is_file() for name in CHECKPOINT_FILES):
        return target
    source = Path(model_ref).expanduser()
    if not all((source / name).is_file() for name in CHECKPOINT_FILES):
        log.info("%s is not a checkpoint folder: the library keeps no copy of it", model_ref)
        return None
    scratch = library / MODELS_DIR / f".{model_id}.partial"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    for name in CHECKPOINT_FILES:
        _link_or_copy(source / name, scratch / name)
    found = checkpoint_id(scratch)
    if found != model_id:
        shutil.rmtree(scratch, ignore_errors=True)
        raise VitrieveError(
            f"the checkpoint {model_ref} changed while it was being indexed (it now holds model "
            f"{found}, not {model_id}): run again"
        )
    shutil.rmtree(target, ignore_errors=True)  # an incomplete copy (a file deleted by hand)
    os.replace(scratch, target)
    fsync_dir(target.parent)
    return target


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or one without hard links
        shutil.copy2(source, target)


def checkpoint_id(folder: Path) -> str:
    """The model id of the checkpoint in ``folder`` (what ``Encoder.load`` will report)."""
    meta = read_config_json(folder / CONFIG_FILE).get("vitrieve")
    recorded = meta.get("model_id") if isinstance(meta, dict) else None
    if isinstance(recorded, str) and recorded:
        return recorded
    return file_digest(folder / WEIGHTS_FILE)


def prune_models(library: Path, manifest: Manifest) -> list[str]:
    """Remove the kept checkpoints no generation of ``manifest`` uses (and leftovers of a
    killed ``keep_model``); returns their names."""
    folder = library / MODELS_DIR
    if not folder.is_dir():
        return []
    used = {g.model_id for g in (manifest.active, manifest.building) if g is not None}
    removed = [p.name for p in folder.iterdir() if p.name not in used]
    for name in removed:
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    return removed
