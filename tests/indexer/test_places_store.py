"""Where and with what, in the store: the place, camera and location filters on SQLite and
PostgreSQL (the antimeridian and the poles included), and the schema 3 migration."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pytest
from sqlalchemy import inspect, text

from encoders.errors import VitrieveError
from indexer.places.reverse import great_circle_km
from indexer.store.facts import read_facts
from indexer.store.metadata import MetadataStore
from indexer.store.queries import Filters, bounding_box
from indexer.store.schema import FACT_COLUMNS, SCHEMA_VERSION

# path: (latitude, longitude, make, model, country, region, taken)
PHOTOS = {
    "lisbon.jpg": (38.7223, -9.1393, "Apple", "iPhone 14 Pro", "PT", "14", datetime(2024, 7, 2)),
    "sintra.jpg": (38.8029, -9.3817, "Google", "Pixel 7", "PT", "17", datetime(2024, 7, 3)),
    "porto.jpg": (41.1579, -8.6291, "Canon", "Canon EOS R5", "PT", "13", datetime(2023, 3, 1)),
    "sydney.jpg": (-33.8688, 151.2093, "Apple", "iPhone 12", "AU", "02", datetime(2022, 1, 5)),
    "fiji_west.jpg": (-16.8, 179.95, "SONY", "ILCE-7M3", "FJ", "03", None),
    "fiji_east.jpg": (-16.8, -179.95, "SONY", "ILCE-7M3", "FJ", "03", None),
    "fiji_far.jpg": (-16.8, 179.5, None, None, "FJ", "03", None),
    "svalbard.jpg": (89.9, 10.0, "NIKON CORPORATION", "NIKON Z 6", None, None, None),
    "no_gps.jpg": (None, None, "Apple", "iPhone 14 Pro", None, None, datetime(2024, 7, 2)),
    "scan.png": (None, None, None, None, None, None, None),
}


def _fill(store: MetadataStore) -> dict[str, int]:
    store.add_files([(p, 100, 1) for p in PHOTOS])
    ids = {r.path: r.id for r in store.all_files()}
    rows = [
        {"id": ids[p], "latitude": lat, "longitude": lon, "camera_make": make,
         "camera_model": model, "country_code": country, "region_code": region,
         "taken_at": taken, "format": "PNG" if p.endswith(".png") else "JPEG"}
        for p, (lat, lon, make, model, country, region, taken) in PHOTOS.items()
    ]  # fmt: skip
    store.record_batch(1, "m", rows, [], active=True)
    return ids


def test_place_camera_and_location_filters(store: MetadataStore) -> None:
    ids = _fill(store)

    def paths(**values) -> set[str]:
        found = store.filter_ids(Filters(**values))
        assert found.dtype == np.int64 and list(found) == sorted(found)
        return {p for p, i in ids.items() if i in set(found.tolist())}

    lisbon = PHOTOS["lisbon.jpg"][:2]
    assert paths(near=lisbon) == {"lisbon.jpg", "sintra.jpg"}  # 25 km by default
    assert paths(near=lisbon, within_km=10) == {"lisbon.jpg"}
    assert paths(near=lisbon, within_km=300) == {"lisbon.jpg", "sintra.jpg", "porto.jpg"}
    # across ±180°: 10.6 km east of the centre is at longitude -179.95
    assert paths(near=(-16.8, 179.95), within_km=25) == {"fiji_west.jpg", "fiji_east.jpg"}
    assert paths(near=(-16.8, -179.99), within_km=25) == {"fiji_west.jpg", "fiji_east.jpg"}
    assert paths(near=(-16.8, 179.95), within_km=60) == {
        "fiji_west.jpg", "fiji_east.jpg", "fiji_far.jpg"
    }  # fmt: skip
    assert paths(near=(90.0, 0.0), within_km=20) == {"svalbard.jpg"}  # a circle over the pole
    assert paths(near=(89.9, -170.0), within_km=30) == {"svalbard.jpg"}  # 180° of longitude away
    assert len(paths(near=(0.0, 0.0), within_km=25_000)) == 8  # the whole earth: every position
    assert paths(countries=("pt",)) == {"lisbon.jpg", "sintra.jpg", "porto.jpg"}
    assert paths(countries=("AU", "FJ")) == {
        "sydney.jpg", "fiji_west.jpg", "fiji_east.jpg", "fiji_far.jpg"
    }  # fmt: skip
    assert paths(regions=(("PT", "14"), ("pt", "13"))) == {"lisbon.jpg", "porto.jpg"}
    assert paths(regions=(("AU", "14"),)) == set()
    assert paths(camera="iphone") == {"lisbon.jpg", "sydney.jpg", "no_gps.jpg"}
    assert paths(camera="apple 14") == {"lisbon.jpg", "no_gps.jpg"}  # every word, make or model
    assert paths(camera="PIXEL") == {"sintra.jpg"}
    assert paths(camera="nikon z") == {"svalbard.jpg"}
    assert paths(camera="eos_r5") == set()  # LIKE wildcards are escaped
    assert paths(camera="%") == set()
    assert paths(has_location=False) == {"no_gps.jpg", "scan.png"}
    assert len(paths(has_location=True)) == 8
    assert paths(has_location=True, camera="iphone 14") == {"lisbon.jpg"}
    assert paths(
        near=lisbon, taken_after=datetime(2024, 7, 1), taken_before=datetime(2024, 7, 2, 23)
    ) == {"lisbon.jpg"}
    assert paths(countries=("PT",), formats=("png",)) == set()


@pytest.mark.parametrize(
    "bad",
    [
        Filters(near=(91.0, 0.0)),
        Filters(near=(0.0, 180.5)),
        Filters(near=(math.nan, 0.0)),
        Filters(near=(1.0, 2.0), within_km=0),
        Filters(near=(1.0, 2.0), within_km=-5),
        Filters(near=(1.0, 2.0), within_km=math.inf),
        Filters(within_km=10),
        Filters(countries=("Portugal",)),
        Filters(countries=("P1",)),
        Filters(regions=(("PRT", "14"),)),
        Filters(camera="nikon\x00"),
    ],
)
def test_malformed_place_filters_are_clear_errors(bad: Filters, tmp_path) -> None:
    store = MetadataStore.for_library(tmp_path)
    try:
        with pytest.raises(VitrieveError):
            store.filter_ids(bad)
    finally:
        store.close()


CIRCLES = [((38.7, -9.1), 25.0), ((-16.8, 179.95), 50.0), ((-16.8, -179.99), 50.0),
           ((70.0, 20.0), 800.0), ((-89.5, 0.0), 100.0), ((0.0, 0.0), 1.0), ((10.0, 170.0), 3000.0),
           ((89.99, 45.0), 5.0)]  # fmt: skip


def ring(centre: tuple[float, float], km: float, count: int = 360) -> tuple[np.ndarray, np.ndarray]:
    """``count`` positions at ``km`` from ``centre`` on the great circle, all bearings."""
    bearings = np.linspace(0, 2 * np.pi, count, endpoint=False)
    lat1, lon1, angle = math.radians(centre[0]), math.radians(centre[1]), km / 6371.0088
    lat2 = np.arcsin(
        math.sin(lat1) * math.cos(angle) + math.cos(lat1) * math.sin(angle) * np.cos(bearings)
    )
    lon2 = lon1 + np.arctan2(
        np.sin(bearings) * math.sin(angle) * math.cos(lat1),
        math.cos(angle) - math.sin(lat1) * np.sin(lat2),
    )
    return np.degrees(lat2), (np.degrees(lon2) + 540) % 360 - 180


@pytest.mark.parametrize(("centre", "km"), CIRCLES)
def test_bounding_box_holds_the_circle(centre: tuple[float, float], km: float) -> None:
    """Every point of the circle's edge lies in the box (so the SQL prefilter drops nothing)."""
    (south, north), ranges = bounding_box(*centre, km)
    lats, lons = ring(centre, km, 1440)
    assert ((lats >= south) & (lats <= north)).all()
    inside = np.zeros(len(lons), bool)
    for west, east in ranges:
        inside |= (lons >= west) & (lons <= east)
    assert inside.all()
    if abs(centre[0]) + math.degrees(km / 6371.0088) < 89:  # no pole inside: not all longitudes
        assert sum(east - west for west, east in ranges) < 360
    distances = [great_circle_km(*centre, a, b) for a, b in zip(lats[:8], lons[:8], strict=True)]
    assert distances == pytest.approx([km] * 8, rel=1e-6)


def test_near_is_the_exact_distance(store: MetadataStore) -> None:
    """Rings just inside (0.999 r) and just outside (1.001 r) of each circle: the filter takes
    exactly the inner ones, across ±180° and over the poles too."""
    rows = []
    for c, (centre, km) in enumerate(CIRCLES):
        for side, scale in (("in", 0.999), ("out", 1.001)):
            lats, lons = ring(centre, km * scale, 72)
            rows += [
                (f"{c}/{side}{k}", float(a), float(b))
                for k, (a, b) in enumerate(zip(lats, lons, strict=True))
            ]
    store.add_files([(p, 1, 1) for p, _, _ in rows])
    ids = {r.path: r.id for r in store.all_files()}
    store.record_batch(
        1, "m", [{"id": ids[p], "latitude": a, "longitude": b} for p, a, b in rows], [], active=True
    )
    where = {p: (a, b) for p, a, b in rows}
    paths = {i: p for p, i in ids.items()}
    for c, (centre, km) in enumerate(CIRCLES):
        found = {paths[i] for i in store.filter_ids(Filters(near=centre, within_km=km)).tolist()}
        mine = {p for p in found if p.startswith(f"{c}/")}
        assert mine == {f"{c}/in{k}" for k in range(72)}, (centre, km)
        # other circles' rings it takes are within the distance too
        assert all(great_circle_km(*centre, *where[p]) <= km for p in found - mine)


def test_sqlite_without_math_functions_gets_them_from_python() -> None:
    import sqlite3

    from indexer.store.database import _sqlite_math

    class Bare:  # a SQLite built without SQLITE_ENABLE_MATH_FUNCTIONS
        def __init__(self) -> None:
            self.connection = sqlite3.connect(":memory:")

        def execute(self, sql: str):
            raise sqlite3.OperationalError("no such function: radians")

        def create_function(self, *args, **kwargs) -> None:
            self.connection.create_function(*args, **kwargs)

    bare = Bare()
    _sqlite_math(bare, None)
    row = bare.connection.execute("SELECT radians(180), sin(0), cos(0), pow(3, 2), sin(NULL)")
    assert row.fetchone() == pytest.approx((math.pi, 0.0, 1.0, 9.0, None))


def _downgrade(store: MetadataStore) -> None:
    """Make the database what schema 2 left: no fact columns, no their indexes."""
    with store.engine.begin() as connection:
        for index in inspect(connection).get_indexes("files"):
            if set(index["column_names"]) & set(FACT_COLUMNS):
                connection.execute(text(f'DROP INDEX "{index["name"]}"'))
        for name in FACT_COLUMNS:
            connection.execute(text(f'ALTER TABLE files DROP COLUMN "{name}"'))
        connection.execute(text("UPDATE schema_version SET version = 2"))


def test_migration_adds_the_fact_columns(store: MetadataStore) -> None:
    ids = _fill(store)
    _downgrade(store)
    url = store.engine.url.render_as_string(hide_password=False)
    old = MetadataStore(url, read_only=True)  # an older schema read as it is: no facts
    try:
        assert old.schema_version == 2 and len(old.all_files()) == len(PHOTOS)
        assert read_facts(old, list(ids.values())) == {}
        with pytest.raises(VitrieveError, match="vitrieve index"):
            old.filter_ids(Filters(countries=("PT",)))
        assert len(old.filter_ids(Filters(formats=("png",)))) == 1  # the other filters work
    finally:
        old.close()
    upgraded = MetadataStore(url)
    try:
        assert upgraded.schema_version == SCHEMA_VERSION == 3
        with upgraded.engine.connect() as connection:
            columns = {c["name"] for c in inspect(connection).get_columns("files")}
            indexed = {tuple(i["column_names"]) for i in inspect(connection).get_indexes("files")}
        assert set(FACT_COLUMNS) <= columns
        assert {("country_code", "region_code"), ("latitude", "longitude")} <= indexed
        assert read_facts(upgraded, list(ids.values())) == {}  # columns empty until backfilled
        assert len(upgraded.filter_ids(Filters(has_location=False))) == len(PHOTOS)
        assert len(upgraded.all_files()) == len(PHOTOS)
    finally:
        upgraded.close()


def test_changed_content_clears_its_facts(store: MetadataStore) -> None:
    ids = _fill(store)
    assert read_facts(store, [ids["lisbon.jpg"]])[ids["lisbon.jpg"]].country_code == "PT"
    store.mark_changed([(ids["lisbon.jpg"], 200, 2)])
    assert read_facts(store, [ids["lisbon.jpg"]]) == {}
    assert read_facts(store, [ids["no_gps.jpg"]])[ids["no_gps.jpg"]].camera == "Apple iPhone 14 Pro"
