"""API fixtures: libraries indexed with ``trained_tiny`` and live ``vitrieve serve`` processes.

* ``open_server``: no key anywhere, loopback: serves ``main`` (48 demo photos) and ``alt``
  (a small library the indexing test grows) — the endpoint, safety and fuzz tests use it.
* ``keyed_server``: a copy of the main library's database with a read-write and a read-only
  key (made with ``vitrieve keys create``) — the auth tests use it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from apiserver import running_api

MAIN_PHOTOS, ALT_PHOTOS = 48, 12
CORS_ORIGIN = "https://photos.example"


def _index(photos: Path, count: int, checkpoint: Path, start: int = 0) -> Path:
    from encoders.runtime.encoder import Encoder
    from indexer.pipeline.local import IndexOptions, index_library
    from retrieval.service.demo import write_demo_photos

    write_demo_photos(photos, count, size_px=96)
    report = index_library(photos, Encoder.load(checkpoint), model_ref=str(checkpoint),
                           options=IndexOptions(workers=0))  # fmt: skip
    return Path(report.library)


@dataclass
class Libraries:
    main: Path  # library directory of the main library
    alt: Path
    alt_photos: Path


@pytest.fixture(scope="session")
def api_libraries(trained_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Libraries:
    base = tmp_path_factory.mktemp("api")
    main = _index(base / "main" / "photos", MAIN_PHOTOS, trained_tiny)
    alt = _index(base / "alt" / "photos", ALT_PHOTOS, trained_tiny)
    return Libraries(main, alt, base / "alt" / "photos")


@pytest.fixture(scope="session")
def open_server(api_libraries: Libraries, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("logs") / "open.log"
    specs = [f"main={api_libraries.main}", f"alt={api_libraries.alt}"]
    with running_api(specs, log, ["--max-upload-mb", "1"]) as url:
        yield url


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def vitrieve(*args: str) -> Ran:
    """The real ``vitrieve`` command line, run in this process (no second torch import)."""
    from typer.testing import CliRunner

    from retrieval.cli import app

    result = CliRunner().invoke(app, list(args))
    return Ran(result.exit_code, result.stdout, result.stderr)


def keys_cli(*args: str) -> Ran:
    return vitrieve("keys", *args)


@dataclass
class Keyed:
    url: str
    library: Path
    write_key: str
    read_key: str


@pytest.fixture(scope="session")
def keyed_server(api_libraries: Libraries, tmp_path_factory: pytest.TempPathFactory):
    library = tmp_path_factory.mktemp("keyed") / "library"
    shutil.copytree(api_libraries.main, library)  # its own database: its own keys
    keys = {}
    for flags in ([], ["--read-only"]):
        done = keys_cli("create", "--library", str(library), "--name", f"test{len(keys)}",
                        "--json", *flags)  # fmt: skip
        assert done.returncode == 0, done.stderr
        keys[bool(flags)] = json.loads(done.stdout)["key"]
    log = tmp_path_factory.mktemp("logs") / "keyed.log"
    with running_api([f"keyed={library}"], log, ["--cors-origin", CORS_ORIGIN]) as url:
        yield Keyed(url, library, keys[False], keys[True])


@pytest.fixture
def client(open_server: str):
    with httpx.Client(base_url=open_server, timeout=60) as session:
        yield session
