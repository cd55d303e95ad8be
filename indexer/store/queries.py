"""What the MetadataStore's reads return (``FileRecord``, ``Label``) and the one filter
implementation (``Filters`` → SQL conditions), with the id chunking every query uses.

Filters become a set of allowed ids through one SQL query (SQLAlchemy expressions, so every
value is a bound parameter); the vector index then searches only those ids, so a filtered
top-k is never a top-k cut that filtering emptied afterwards.

"Near a point" is a bounding box (on the indexed latitude and longitude; split in two where
it crosses ±180°, every longitude where the circle holds a pole) and the exact great-circle
(haversine) distance of the rows in it, both in SQL: measured on 100k rows (SQLite), 10 ms for
a 25 km circle against 21 ms for the box in SQL and the distance in NumPy (the rows' positions
have to cross into Python there). PostgreSQL has the functions; SQLite has them where it was
built with its math functions, and gets them from Python otherwise (``database``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import and_, exists, func, or_

from encoders.errors import VitrieveError, check_text
from indexer.store.schema import FileRow, LabelRow

CHUNK = 5000  # ids per IN (...) clause: under every driver's parameter limit
LABEL_SEPARATOR = ":"  # a label filter "SET:LABEL"
INT64 = (-(2**63), 2**63 - 1)  # what SQL integer columns hold
EARTH_RADIUS_KM = 6371.0088  # the mean radius (``indexer.places.reverse`` uses the same)
DEFAULT_WITHIN_KM = 25.0  # "near a point" without a radius: a city and its surroundings
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
_BOX_MARGIN = 1e-6  # degrees added around the box: rounding never drops a row on its edge


@dataclass(frozen=True)
class FileRecord:
    """A read-only copy of a ``files`` row, safe to use after its session is closed."""

    id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str | None
    width: int | None
    height: int | None
    format: str | None
    taken_at: datetime | None
    status: str
    error: str | None
    thumb: str | None
    indexed_at: datetime | None


class Label(NamedTuple):
    """One zero-shot label of one file."""

    label_set: str
    label: str
    score: float


@dataclass(frozen=True)
class Filters:
    """Restrictions on which images a search may return (all given ones must hold)."""

    folder: str | None = None  # the folder (relative to the photo root) and what is under it
    taken_after: datetime | None = None
    taken_before: datetime | None = None
    modified_after: datetime | None = None
    modified_before: datetime | None = None
    formats: tuple[str, ...] = ()  # "JPEG", "PNG", ... (case-insensitive)
    label: str | None = None  # "LABEL" in any label set, or "SET:LABEL"
    min_label_score: float | None = None
    min_width: int | None = None
    min_height: int | None = None
    min_bytes: int | None = None
    near: tuple[float, float] | None = None  # (latitude, longitude) in degrees ...
    within_km: float | None = None  # ... within this great-circle distance (DEFAULT_WITHIN_KM)
    countries: tuple[str, ...] = ()  # ISO 3166-1 alpha-2 codes, any of them
    regions: tuple[tuple[str, str], ...] = ()  # (country code, GeoNames admin1 code), any
    camera: str | None = None  # every word in the camera's make or model, any case
    has_location: bool | None = None  # True: with a GPS position; False: without one

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) in (None, ()) for f in fields(self))

    def uses_facts(self) -> bool:
        """Whether these filters need the columns of schema 3 (places, cameras)."""
        return any(
            getattr(self, name) not in (None, ())
            for name in ("near", "countries", "regions", "camera", "has_location")
        )


_RECORD_FIELDS = tuple(f.name for f in fields(FileRecord))
RECORD_COLUMNS = tuple(getattr(FileRow, name) for name in _RECORD_FIELDS)


def chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield [int(i) for i in ids[start : start + CHUNK]]


def filter_conditions(filters: Filters) -> list:
    """SQLAlchemy conditions on ``files`` for ``filters`` (indexed rows only)."""
    conditions = [FileRow.status == "indexed"]
    folder = (filters.folder or "").strip().strip("/")
    if folder:
        conditions.append(
            or_(FileRow.path.startswith(folder + "/", autoescape=True), FileRow.path == folder)
        )
    bounds = [
        (filters.taken_after, FileRow.taken_at.__ge__),
        (filters.taken_before, FileRow.taken_at.__le__),
        (_ns(filters.modified_after), FileRow.mtime_ns.__ge__),
        (_ns(filters.modified_before), FileRow.mtime_ns.__le__),
        (filters.min_width, FileRow.width.__ge__),
        (filters.min_height, FileRow.height.__ge__),
        (filters.min_bytes, FileRow.size.__ge__),
    ]
    conditions += [compare(value) for value, compare in bounds if value is not None]
    if filters.formats:
        conditions.append(FileRow.format.in_([f.upper().lstrip(".") for f in filters.formats]))
    if filters.label:
        conditions.append(_label_condition(filters))
    return conditions + _fact_conditions(filters)


def _fact_conditions(filters: Filters) -> list:
    """Where and with what: places, cameras, the presence of a position."""
    conditions = []
    if filters.has_location is not None:
        known = and_(FileRow.latitude.is_not(None), FileRow.longitude.is_not(None))
        conditions.append(known if filters.has_location else ~known)
    if filters.near is not None:
        conditions.append(_near_condition(*filters.near, within(filters)))
    if filters.countries:
        conditions.append(FileRow.country_code.in_([c.upper() for c in filters.countries]))
    if filters.regions:
        conditions.append(
            or_(
                *(
                    and_(FileRow.country_code == country.upper(), FileRow.region_code == region)
                    for country, region in filters.regions
                )
            )
        )
    for word in (filters.camera or "").split():
        conditions.append(
            or_(
                FileRow.camera_make.icontains(word, autoescape=True),
                FileRow.camera_model.icontains(word, autoescape=True),
            )
        )
    return conditions


def within(filters: Filters) -> float:
    """The radius of a "near" filter, in km."""
    return DEFAULT_WITHIN_KM if filters.within_km is None else float(filters.within_km)


def bounding_box(
    latitude: float, longitude: float, km: float
) -> tuple[tuple[float, float], list[tuple[float, float]]]:
    """((south, north), [(west, east), ...]): degrees holding every point within ``km`` of
    the centre; one longitude range, two where the circle crosses ±180°."""
    angle = km / EARTH_RADIUS_KM  # the circle's angular radius, in radians
    if angle >= math.pi:
        return (-90.0, 90.0), [(-180.0, 180.0)]
    reach = math.degrees(angle) + _BOX_MARGIN
    south, north = latitude - reach, latitude + reach
    if south <= -90 or north >= 90:  # the circle holds a pole: every longitude
        return (max(south, -90.0), min(north, 90.0)), [(-180.0, 180.0)]
    # the widest longitude of a circle on a sphere: asin(sin r / cos φ) on each side
    spread = math.degrees(math.asin(min(1.0, math.sin(angle) / math.cos(math.radians(latitude)))))
    spread += _BOX_MARGIN
    west, east = longitude - spread, longitude + spread
    if spread >= 180:
        return (south, north), [(-180.0, 180.0)]
    if west < -180:
        return (south, north), [(west + 360, 180.0), (-180.0, east)]
    if east > 180:
        return (south, north), [(west, 180.0), (-180.0, east - 360)]
    return (south, north), [(west, east)]


def _near_condition(latitude: float, longitude: float, km: float):
    """Within ``km`` of the point: the box (the index narrows to it), then the distance."""
    (south, north), ranges = bounding_box(latitude, longitude, km)
    box = and_(
        FileRow.latitude.between(south, north),
        or_(*(FileRow.longitude.between(west, east) for west, east in ranges)),
    )
    if km >= math.pi * EARTH_RADIUS_KM:  # the whole earth: no distance to compute
        return box
    lat0 = math.radians(latitude)
    lat, lon = func.radians(FileRow.latitude), func.radians(FileRow.longitude)
    dlat, dlon = (lat - lat0) / 2, (lon - math.radians(longitude)) / 2
    haversine = func.pow(func.sin(dlat), 2) + math.cos(lat0) * func.cos(lat) * func.pow(
        func.sin(dlon), 2
    )
    # distance = 2R·asin(√haversine) <= km  ⟺  haversine <= sin²(km / 2R): no asin per row
    return and_(box, haversine <= math.sin(km / EARTH_RADIUS_KM / 2) ** 2)


def _label_condition(filters: Filters):
    name = (filters.label or "").strip()
    conditions = [LabelRow.file_id == FileRow.id]
    if LABEL_SEPARATOR in name:
        label_set, name = (part.strip() for part in name.split(LABEL_SEPARATOR, 1))
        conditions.append(LabelRow.label_set == label_set)
    conditions.append(LabelRow.label == name)
    if filters.min_label_score is not None:
        conditions.append(LabelRow.score >= filters.min_label_score)
    return exists().where(*conditions)


def _ns(moment: datetime | None) -> int | None:
    """Nanoseconds since the epoch, clamped to 64 bits (year 1 and 9999 are valid bounds)."""
    if moment is None:
        return None
    try:
        return min(max(int(moment.timestamp() * 1_000_000_000), INT64[0]), INT64[1])
    except (OverflowError, ValueError, OSError):  # before the epoch range of this platform
        return INT64[0] if moment.year < 1970 else INT64[1]


def check_filters(filters: Filters) -> None:
    """Clear errors for filter values no database could compare (before any SQL runs)."""
    for name in ("min_width", "min_height", "min_bytes"):
        value = getattr(filters, name)
        if value is not None and not INT64[0] <= value <= INT64[1]:
            raise VitrieveError(f"{name.replace('_', ' ')} out of range: {value}")
    for text in [filters.folder or "", filters.label or "", filters.camera or "", *filters.formats]:
        check_text(text, "a filter value")
    _check_places(filters)
    for low, high, what in (
        (filters.taken_after, filters.taken_before, "taken"),
        (filters.modified_after, filters.modified_before, "modified"),
    ):
        if low is not None and high is not None and low > high:
            raise VitrieveError(f"empty {what} date range: {low:%Y-%m-%d} is after {high:%Y-%m-%d}")


def _check_places(filters: Filters) -> None:
    if filters.near is not None:
        try:
            latitude, longitude = (float(v) for v in filters.near)
        except (TypeError, ValueError) as exc:
            raise VitrieveError(
                f"near: not a (latitude, longitude) pair: {filters.near!r}"
            ) from exc
        if not (math.isfinite(latitude) and math.isfinite(longitude)):
            raise VitrieveError(f"near: not a position: {filters.near!r}")
        if abs(latitude) > 90 or abs(longitude) > 180:
            raise VitrieveError(
                f"near: {latitude}, {longitude} is not within ±90 latitude, ±180 longitude"
            )
    if filters.within_km is not None:
        if filters.near is None:
            raise VitrieveError("within: a distance needs a place or position to be near")
        if not (math.isfinite(filters.within_km) and filters.within_km > 0):
            raise VitrieveError(f"within: the distance must be above 0 km, not {filters.within_km}")
    codes = [*filters.countries, *(country for country, _ in filters.regions)]
    for code in codes:
        if not isinstance(code, str) or not _COUNTRY.match(code):
            raise VitrieveError(f"not a two-letter country code: {code!r}")
    for _, region in filters.regions:
        check_text(region, "a region code")
