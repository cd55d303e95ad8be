"""OCR tests need the optional rapidocr-onnxruntime wheel (its bundled models); the text-index
tests need only SQLAlchemy (and PostgreSQL's binaries for their PostgreSQL half)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # textimages
sys.path.insert(0, str(Path(__file__).parent.parent / "indexer"))  # pgserver


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server for this session (skipped when its binaries are not installed)."""
    from pgserver import postgres_bin, postgres_server

    if postgres_bin() is None:
        pytest.skip("PostgreSQL binaries not installed (/usr/lib/postgresql/*/bin)")
    with postgres_server() as url:
        yield url
