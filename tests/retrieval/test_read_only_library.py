"""A library on read-only storage (a mounted archive, a NAS share, an immutable copy) is
searched without writing anything beside it, with the same results as the writable one."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from indexer.store.metadata import DB_FILE, MetadataStore
from retrieval.library.handle import Library


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture
def read_only_copy(synth_library, tmp_path: Path) -> Iterator[Path]:
    """A copy of the test library, checkpointed (no write-ahead log), then made read-only:
    immutable for root (permission bits do not bind root), permission bits otherwise."""
    copy = tmp_path / "library"
    shutil.copytree(synth_library.path, copy)
    with sqlite3.connect(copy / DB_FILE) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for leftover in copy.glob(f"{DB_FILE}-*"):
        leftover.unlink()
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("chattr not installed")
        if subprocess.run(["chattr", "-R", "+i", str(copy)], capture_output=True).returncode:
            pytest.skip("this file system has no immutable flag")
        yield copy
        subprocess.run(["chattr", "-R", "-i", str(copy)], check=True)
    else:
        for path in [copy, *copy.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        yield copy
        for path in [copy, *copy.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_a_read_only_library_searches_like_the_writable_one(read_only_copy, library):
    before = _snapshot(read_only_copy)
    with pytest.raises(OSError):  # really read-only
        (read_only_copy / "probe").write_text("x")
    opened = Library.open(read_only_copy, encoder=library.encoder)
    try:
        assert opened.store.read_only
        for query in ("a red circle", "a blue square"):
            got = opened.searcher.search(query, limit=8)
            expected = library.searcher.search(query, limit=8)
            assert [r.id for r in got.results] == [r.id for r in expected.results]
            assert got.results and got.results[0].path == expected.results[0].path
    finally:
        opened.close()
    assert _snapshot(read_only_copy) == before  # no -shm, -wal, calibration or temp file


@pytest.mark.parametrize("folder", ["library", "50% off #1? ünï"])  # paths, not URL syntax
def test_a_read_only_database_is_never_written(tmp_path: Path, folder: str):
    tmp_path = tmp_path / folder
    tmp_path.mkdir()
    writable = MetadataStore.for_library(tmp_path)  # creates library.db, current schema
    writable.close()
    for leftover in tmp_path.glob(f"{DB_FILE}-*"):
        leftover.unlink()
    store = MetadataStore.for_library(tmp_path, read_only=True)
    try:
        assert store.read_only and store.all_files() == []
        with pytest.raises(OperationalError, match="readonly"), store.engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE t (x)")
    finally:
        store.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [DB_FILE]


def test_a_read_only_library_from_before_the_keys_table_still_opens(tmp_path: Path):
    """A library written by an earlier vitrieve (schema 1: no API keys table) on read-only
    storage is read as it is, with no keys, rather than refused until someone upgrades it."""
    from indexer.store.keys import KeyStore

    writable = MetadataStore.for_library(tmp_path)
    writable.close()
    with sqlite3.connect(tmp_path / DB_FILE) as connection:  # as schema 1 left it
        connection.execute("DROP TABLE api_keys")
        connection.execute("UPDATE schema_version SET version = 1")
        connection.commit()
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for leftover in tmp_path.glob(f"{DB_FILE}-*"):
        leftover.unlink()
    store = MetadataStore.for_library(tmp_path, read_only=True)
    try:
        assert store.schema_version == 1 and store.all_files() == []
        keys = KeyStore(store)
        assert keys.list() == [] and not keys.has_active() and keys.check("vtr_x") is None
    finally:
        store.close()
    with sqlite3.connect(tmp_path / DB_FILE) as connection:  # nothing was written to it
        assert connection.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
