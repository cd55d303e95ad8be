"""A whole library with its metadata in PostgreSQL (a real server started by the test)."""

from __future__ import annotations

from pathlib import Path

from library_factory import photo
from test_pipeline import OPTIONS

from indexer.pipeline.local import index_library
from indexer.store.metadata import MetadataStore


def test_index_into_postgres(bad_library, tiny_encoder, postgres_url: str, tmp_path: Path) -> None:
    from pgserver import fresh_database

    url = fresh_database(postgres_url)
    library = tmp_path / "lib"
    report = index_library(bad_library.root, tiny_encoder, model_ref="tiny", library=library,
                           db_url=url, options=OPTIONS)  # fmt: skip
    assert not (library / "library.db").exists()
    store = MetadataStore(url)
    try:
        counts = store.status_counts()
        assert counts["indexed"] == len(bad_library.good) == report.vectors
        assert counts["failed"] == len(bad_library.bad)
        assert dict(store.failures())["bomb.png"].startswith("decompression bomb")
        assert store.filter_ids(formats=["PNG"]).size >= 5
    finally:
        store.close()
    photo(seed=99).save(bad_library.root / "later.jpg")
    again = index_library(
        bad_library.root, tiny_encoder, model_ref="tiny", library=library, options=OPTIONS
    )  # fmt: skip  (the URL is remembered in library.json)
    assert again.new == 1 and again.embedded == 1
