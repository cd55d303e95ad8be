"""A library owns its model: the checkpoint it was indexed with is kept inside it, so retraining
into the same run folder (or ``train --resume``) leaves it searchable, and indexing with the new
model is a shadow re-index that switches over when complete."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from synthlib import write_photos

from encoders.errors import VitrieveError
from encoders.runtime.encoder import Encoder
from encoders.weights.checkpoint import WEIGHTS_FILE, load_checkpoint, save_checkpoint
from indexer.generations import keep_model
from indexer.layout import MODELS_DIR, model_path, read_manifest
from indexer.pipeline.local import IndexOptions, index_library
from retrieval.library.handle import Library
from retrieval.search.query import Query


def _index(photos: Path, checkpoint: Path):
    encoder = Encoder.load(checkpoint, precision="fp32")
    options = IndexOptions(workers=0)
    return index_library(photos, encoder, model_ref=str(checkpoint), options=options)


def _retrain_into(checkpoint: Path) -> str:
    """What a retrain or ``train --resume`` into the same run folder does to ``checkpoint``:
    other weights saved over it (atomically, as every checkpoint is written)."""
    model, _meta = load_checkpoint(checkpoint)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    return save_checkpoint(model, checkpoint)


@pytest.fixture
def run_folder(tmp_path: Path, trained_tiny: Path) -> Path:
    """A training run's checkpoint folder of our own (the session's model stays untouched)."""
    checkpoint = tmp_path / "run" / "checkpoint"
    shutil.copytree(trained_tiny, checkpoint)
    return checkpoint


def test_a_retrained_checkpoint_leaves_the_library_searchable(tmp_path, run_folder) -> None:
    photos = tmp_path / "photos"
    write_photos(photos, per_class=1)
    first = _index(photos, run_folder)
    library = Path(first.library)
    indexed_with = read_manifest(library).active.model_id
    kept = model_path(library, indexed_with)
    assert (kept / WEIGHTS_FILE).stat().st_ino == (run_folder / WEIGHTS_FILE).stat().st_ino

    retrained = _retrain_into(run_folder)
    assert retrained != indexed_with
    with Library.open(library, device="cpu") as opened:
        response = opened.searcher.search(Query.parse("a red star"), limit=3)
        assert opened.encoder.model_id == indexed_with
        assert len(response.results) == 3

    second = _index(photos, run_folder)  # the new model: a shadow index, complete in one run
    assert second.switched and second.embedded == first.embedded
    manifest = read_manifest(library)
    assert manifest.active.model_id == retrained and manifest.building is None
    assert sorted(p.name for p in (library / MODELS_DIR).iterdir()) == [retrained]
    with Library.open(library, device="cpu") as opened:
        assert opened.encoder.model_id == retrained
        assert opened.searcher.search(Query.parse("a blue circle"), limit=2).results


def test_the_library_model_is_copied_where_links_fail(tmp_path, run_folder, monkeypatch) -> None:
    def no_links(*_args):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    model_id = Encoder.load(run_folder).model_id
    kept = keep_model(tmp_path / "library", str(run_folder), model_id)
    assert kept == model_path(tmp_path / "library", model_id)
    assert (kept / WEIGHTS_FILE).stat().st_ino != (run_folder / WEIGHTS_FILE).stat().st_ino
    assert (kept / WEIGHTS_FILE).read_bytes() == (run_folder / WEIGHTS_FILE).read_bytes()
    assert Encoder.load(kept).model_id == model_id


def test_a_checkpoint_replaced_mid_run_is_not_kept(tmp_path, run_folder) -> None:
    model_id = Encoder.load(run_folder).model_id
    _retrain_into(run_folder)  # replaced between loading the model and keeping it
    with pytest.raises(VitrieveError, match="changed while it was being indexed"):
        keep_model(tmp_path / "library", str(run_folder), model_id)
    assert not model_path(tmp_path / "library", model_id).exists()
    assert list((tmp_path / "library" / MODELS_DIR).iterdir()) == []  # no partial copy left


def test_a_reference_that_is_no_folder_keeps_nothing(tmp_path) -> None:
    assert keep_model(tmp_path / "library", "ViT-B-32", "0123456789abcdef") is None
    assert not (tmp_path / "library" / MODELS_DIR).exists()
