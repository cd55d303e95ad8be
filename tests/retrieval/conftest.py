"""Retrieval fixtures: a synthetic photo library indexed with the briefly trained tiny model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from synthlib import Photo, plant_duplicates, write_photos


@dataclass
class SynthLibrary:
    root: Path  # the photo folder
    path: Path  # the library directory (root/.vitrieve)
    photos: list[Photo]
    copies: list[tuple[str, str]]  # (original, planted near-duplicate) paths


@pytest.fixture(scope="session")
def synth_library(tmp_path_factory: pytest.TempPathFactory, trained_tiny: Path) -> SynthLibrary:
    """48 photos (4 colours × 4 shapes × 3) in colour folders + 2 resized JPEG copies."""
    from encoders.runtime.encoder import Encoder
    from indexer.pipeline.local import IndexOptions, index_library

    root = tmp_path_factory.mktemp("synth") / "photos"
    photos = write_photos(root, per_class=3)
    copies = plant_duplicates(root, photos, count=2)
    encoder = Encoder.load(trained_tiny, precision="fp32")
    report = index_library(
        root, encoder, model_ref=str(trained_tiny), options=IndexOptions(workers=0)
    )
    assert report.embedded == len(photos) + len(copies) and not report.failures
    return SynthLibrary(root, root / ".vitrieve", photos, copies)


@pytest.fixture(scope="session")
def library(synth_library: SynthLibrary):
    from retrieval.library.handle import Library

    lib = Library.open(synth_library.path)
    yield lib
    lib.close()
