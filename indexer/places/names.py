"""Place names → places: cities (with GeoNames alternate names), US states, countries, continents.

Names are compared folded (case, accents and punctuation removed), so "München", "munchen",
"Muenchen" and "Munich" all reach the same city. Alternate names are kept only where they read
as Latin-script proper names (capitalised, no digits, not an airport code): GeoNames also lists
lowercase transliterations ("pari", "nys") that collide with words and other places. A name held
by several places is resolved by population (weighted by kind and by whether it is the place's
own name or an alternate one) and the others are returned beside it, so callers can say so.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, replace
from functools import lru_cache

from indexer.places.gazetteer import CITY_RADIUS_KM, Gazetteer, Place, PlacesError, load_gazetteer

log = logging.getLogger(__name__)
_NON_WORD = re.compile(r"[^0-9a-z]+")
_LATIN_WORDS = re.compile(r"[a-z ]+")
_POINT = re.compile(r"^\s*([+-]?\d{1,2}(?:\.\d+)?)\s*[, ]\s*([+-]?\d{1,3}(?:\.\d+)?)\s*$")
# Ranking weights: a city's population undercounts its metro area against a country's total;
# a US state's population is only its large cities' sum, which counts districts beside their city
# (New York City and its boroughs); a place's own name beats another place's alternate one.
_KIND_WEIGHT = {"city": 3.0, "region": 0.25, "country": 1.5, "continent": 1.0}
_ALTERNATE_WEIGHT = 0.3
# Country names people write that GeoNames' country table (English names only) lacks.
COUNTRY_ALIASES = {
    "US": ["USA", "U.S.", "U.S.A.", "America", "United States of America", "the States"],
    "GB": [
        "UK",
        "U.K.",
        "Britain",
        "Great Britain",
        "England",
        "Scotland",
        "Wales",
        "Northern Ireland",
    ],
    "DE": ["Deutschland"],
    "ES": ["España", "Espana"],
    "IT": ["Italia"],
    "BR": ["Brasil"],
    "NL": ["Holland", "Nederland", "The Netherlands"],
    "CH": ["Schweiz", "Suisse", "Svizzera"],
    "AT": ["Österreich", "Osterreich"],
    "CZ": ["Czechia", "Czech Republic"],
    "TR": ["Türkiye"],
    "MX": ["México"],
    "PE": ["Perú"],
    "BE": ["Belgique", "België"],
    "JP": ["Nippon", "Nihon"],
    "PT": ["Portugal"],
    "FR": ["France"],
    "GR": ["Hellas", "Ellada"],
    "SE": ["Sverige"],
    "NO": ["Norge"],
    "DK": ["Danmark"],
    "FI": ["Suomi"],
    "PL": ["Polska"],
    "HR": ["Hrvatska"],
    "AE": ["UAE", "Emirates"],
    "KR": ["Korea", "South Korea"],
    "CN": ["PRC"],
    "IE": ["Eire", "Éire"],
    "IS": ["Ísland"],
    "HU": ["Magyarország"],
    "RU": ["Rossiya"],
}


def fold(text: str) -> str:
    """Lowercase, accents off, punctuation to spaces: "Saint-Étienne" → "saint etienne"."""
    text = text.casefold().replace("'", "").replace("\u2019", "")
    if not text.isascii():  # the slow path only where there is something to decompose
        decomposed = unicodedata.normalize("NFKD", text.replace("ø", "o").replace("ł", "l"))
        text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NON_WORD.sub(" ", text).strip()


def parse_point(text: str, radius_km: float = CITY_RADIUS_KM) -> Place | None:
    """ "38.72,-9.14" → a point place (a circle of ``radius_km``); None when not a point."""
    match = _POINT.match(text)
    if not match:
        return None
    lat, lon = float(match.group(1)), float(match.group(2))
    if abs(lat) > 90 or abs(lon) > 180:
        raise PlacesError(f"not a position on Earth: {text!r}")
    return Place(kind="point", name=text.strip(), latitude=lat, longitude=lon, radius_km=radius_km)


def _proper_alternates(names: list[str]) -> set[str]:
    """The folded alternate names that read as Latin-script proper names."""
    kept = set()
    for name in names:
        if len(name) < 3 or not name[0].isupper() or (name.isupper() and len(name) <= 4):
            continue  # transliterations ("pari") and codes ("LIS", "MUC")
        folded = fold(name)
        if _LATIN_WORDS.fullmatch(folded):
            kept.add(folded)
    return kept


@dataclass(frozen=True)
class Resolution:
    """A name's best place and the others that share the name, best first."""

    query: str
    place: Place
    alternatives: tuple[Place, ...] = ()

    @property
    def ambiguous(self) -> bool:
        return bool(self.alternatives)

    def describe(self) -> str:
        """ "Paris, France (also: Paris, Texas, United States, +3)"."""
        if not self.alternatives:
            return self.place.label
        shown = ", ".join(p.label for p in self.alternatives[:1])
        more = f", +{len(self.alternatives) - 1}" if len(self.alternatives) > 1 else ""
        return f"{self.place.label} (also: {shown}{more})"


class PlaceNames:
    """Folded name → candidate places; built once (~1-2 s for the 15,000-people cities)."""

    def __init__(self, gazetteer: Gazetteer | None = None) -> None:
        self.gazetteer = gz = gazetteer or load_gazetteer()
        # folded name -> [(score, kind, key, own)], key: city index or a code; own: the place's
        # own name (or a country alias), not one of its alternate names
        self._entries: dict[str, list[tuple[float, str, object, bool]]] = {}
        state_population: dict[str, int] = {}
        for index, name in enumerate(gz.city_names):
            population = int(gz.populations[index])
            if gz.city_countries[index] == "US":
                code = gz.city_admin1[index]
                state_population[code] = state_population.get(code, 0) + population
            own = fold(name)
            self._add(own, population * _KIND_WEIGHT["city"], "city", index, own=True)
            for alternate in _proper_alternates(gz.city_alternates[index]):
                if alternate != own:
                    weight = _KIND_WEIGHT["city"] * _ALTERNATE_WEIGHT
                    self._add(alternate, population * weight, "city", index, own=False)
        self._state_population = state_population
        for code, name in gz.us_states.items():
            self._add(
                fold(name), state_population.get(code, 0) * _KIND_WEIGHT["region"], "region", code
            )
        for code, entry in gz.countries.items():
            score = entry["population"] * _KIND_WEIGHT["country"]
            for name in {entry["name"], *COUNTRY_ALIASES.get(code, [])}:
                self._add(fold(name), score, "country", code)
        for code, entry in gz.continents.items():
            self._add(
                fold(entry["name"]),
                entry["population"] * _KIND_WEIGHT["continent"],
                "continent",
                code,
            )
        for candidates in self._entries.values():
            candidates.sort(key=lambda entry: -entry[0])
        self.max_words = max(len(name.split()) for name in self._entries)

    def __getstate__(self) -> dict:
        """Pickled without the alternate-name lists: only the build needs them."""
        state = dict(self.__dict__)
        state["gazetteer"] = replace(self.gazetteer, city_alternates=[])
        return state

    def _add(self, name: str, score: float, kind: str, key: object, own: bool = True) -> None:
        if not name:
            return
        candidates = self._entries.setdefault(name, [])
        for i, (old_score, old_kind, old_key, old_own) in enumerate(candidates):
            if old_kind == kind and old_key == key:  # same place by two names: keep the best
                candidates[i] = (max(old_score, score), kind, key, own or old_own)
                return
        candidates.append((score, kind, key, own))

    def __contains__(self, folded: str) -> bool:
        return folded in self._entries

    def candidates(self, name: str) -> list[Place]:
        """Every place called ``name`` (folded here), best-ranked first; [] when none."""
        return [self._place(kind, key) for _, kind, key, _ in self._entries.get(fold(name), [])]

    def lookup(self, folded: str) -> list[tuple[Place, bool]]:
        """(place, own name?) for an already folded name, best first: the query parser's call."""
        return [
            (self._place(kind, key), own) for _, kind, key, own in self._entries.get(folded, [])
        ]

    def resolve(self, text: str) -> Resolution | None:
        """The best place for a name, "LAT,LON", or "Name, Qualifier" ("Paris, Texas")."""
        point = parse_point(text)
        if point is not None:
            return Resolution(text, point)
        head, _, qualifier = text.rpartition(",")
        if head and qualifier.strip():
            within = self.candidates(qualifier)
            found = [p for p in self.candidates(head) if any(contains(w, p) for w in within)]
        else:
            found = self.candidates(text)
        if not found:
            return None
        return Resolution(text, found[0], tuple(found[1:]))

    def _place(self, kind: str, key) -> Place:
        gz = self.gazetteer
        if kind == "city":
            return gz.city(key)
        if kind == "region":
            return gz.region(key, self._state_population.get(key, 0))
        if kind == "country":
            return gz.country(key)
        return gz.continent(key)


def contains(outer: Place, inner: Place) -> bool:
    """Whether ``inner`` lies in ``outer`` by codes (a city in its state, country or continent)."""
    if outer.kind == "country":
        return inner.country_code == outer.country_code and inner.kind != "country"
    if outer.kind == "region":
        return inner.kind == "city" and (inner.country_code, inner.region_code) == (
            outer.country_code,
            outer.region_code,
        )
    if outer.kind == "continent":
        return inner.kind != "continent" and inner.country_code in outer.country_codes
    return False


@lru_cache(maxsize=2)
def place_names(min_population: int = 15000) -> PlaceNames:
    """One shared name index per process (the build takes ~2-3 s on one core: the JSON parse and
    ~350k alternate names folded). Not cached on disk: a pickle in a library folder would be
    unpickled from a place others can write (docs/security.md), and long-running front ends (the
    API, the UI) build it once anyway."""
    return PlaceNames(load_gazetteer(min_population))
