"""Fixtures shared across test packages (append yours; don't rewrite others')."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTS = Path(__file__).parent


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--full`: the reliability suite at full size (make reliability; see tests/reliability)."""
    parser.addoption("--full", action="store_true", default=False, help="full reliability run")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`gpu`-marked tests skip where torch sees no CUDA device (CI has none)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (make gpu-check runs it)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


# --- trained_tiny (retrieval): a `tiny` CLIP trained briefly on the synthetic shapes ----------
# Trained once per machine and code version: the checkpoint is cached under
# $VITRIEVE_TEST_CACHE (default ~/.cache/vitrieve-tests), keyed by the source of the model and
# training code it runs (tests/retrieval/fixture_key.py), so only the first session pays for it
# (a few minutes on a busy 2-core machine).
TRAIN_STEPS = 160


def _test_cache() -> Path:
    return Path(os.environ.get("VITRIEVE_TEST_CACHE", Path.home() / ".cache" / "vitrieve-tests"))


@pytest.fixture(scope="session")
def trained_tiny() -> Path:
    """Checkpoint dir of a tiny model that tells the synthetic colours and shapes apart."""
    import fcntl

    from fixture_key import fixture_key
    from minitrain import fixture_config, train_tiny

    # a changed model, training code, config or step count retrains the fixture
    settings = repr(fixture_config().to_dict()).encode() + str(TRAIN_STEPS).encode()
    key = fixture_key(TESTS / "retrieval" / "minitrain.py", TESTS.parent, settings)
    out = _test_cache() / f"trained_tiny-{key}"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(str(out) + ".lock", "w") as lock:  # parallel sessions train it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "model.safetensors").is_file():
            train_tiny(out, steps=TRAIN_STEPS)
    return out


# --- demo_library (ui, e2e): the demo's photo folder, indexed with trained_tiny --------------
DEMO_PHOTOS = 48


@pytest.fixture(scope="session")
def demo_library(trained_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo library (``retrieval.service.demo`` photos: albums, formats, dates, an edit
    and a broken file) indexed with ``trained_tiny``; returns the library directory."""
    from encoders.runtime.encoder import Encoder
    from indexer.pipeline.local import IndexOptions, index_library
    from retrieval.service.demo import write_demo_photos

    photos = tmp_path_factory.mktemp("demo") / "photos"
    write_demo_photos(photos, DEMO_PHOTOS, size_px=96)
    report = index_library(
        photos, Encoder.load(trained_tiny), model_ref=str(trained_tiny),
        options=IndexOptions(workers=0),
    )  # fmt: skip
    return Path(report.library)


# --- postgres_url (store, text index): one PostgreSQL server for the whole session ------------
@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server started for this test session (skipped when not installed)."""
    from pgserver import postgres_bin, postgres_server  # tests/indexer, on the pythonpath

    if postgres_bin() is None:
        pytest.skip("PostgreSQL binaries not installed (/usr/lib/postgresql/*/bin)")
    with postgres_server() as url:
        yield url


# --- the Encoder's measured precision: kept in the tests' cache, not the user's ---------------
@pytest.fixture(autouse=True, scope="session")
def _precision_cache_in_test_cache():
    """Precision choices measured by tests go to $VITRIEVE_TEST_CACHE/precision-home, not to
    ~/.cache/vitrieve (where a user's real choices live)."""
    import encoders.runtime.encoder as encoder_module
    import encoders.runtime.precision as precision_module

    home = _test_cache() / "precision-home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(precision_module, "default_cache_dir", lambda: home)
        patch.setattr(encoder_module, "default_cache_dir", lambda: home)
        yield
