"""Fixtures for indexer tests: a tiny random checkpoint and a generated "bad" photo library."""

from __future__ import annotations

from pathlib import Path

import pytest
from library_factory import make_bad_library


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from encoders.model.clip import create_model
    from encoders.model.config import load_config
    from encoders.weights.checkpoint import save_checkpoint

    directory = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_checkpoint(create_model(load_config("tiny")), directory)
    return directory


@pytest.fixture(scope="session")
def tiny_encoder(tiny_checkpoint: Path):
    from encoders.runtime.encoder import Encoder

    return Encoder.load(tiny_checkpoint, precision="fp32")


@pytest.fixture()
def bad_library(tmp_path: Path):
    return make_bad_library(tmp_path / "photos")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path: Path):
    """A fresh MetadataStore on SQLite and on PostgreSQL (one database per test)."""
    from indexer.store.metadata import MetadataStore

    if request.param == "sqlite":
        store = MetadataStore.for_library(tmp_path)
    else:
        from pgserver import fresh_database

        store = MetadataStore(fresh_database(request.getfixturevalue("postgres_url")))
    yield store
    store.close()
