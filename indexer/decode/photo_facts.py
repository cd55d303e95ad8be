"""Where, when and with what a photo was taken, from its EXIF: GPS, camera, lens, time and offset.

People remember photos by place and time ("the beach in Lisbon last summer"), so the indexer keeps
these facts beside each image. EXIF is written by thousands of devices and editors and is often
wrong: a rational with a zero denominator, a reference letter stored as a number, a GPS IFD whose
offset points into the pixels, (0, 0) written by phones that had no fix. Every reader here checks
types and ranges and leaves a field ``None`` instead of raising: one bad tag must never cost the
photo or the other facts. ``photo_facts`` takes the ``Image.Exif`` the decoder already holds (no
second read of the file); ``read_photo_facts`` opens a path itself (HEIC too, through pillow-heif
when installed).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from PIL import Image

log = logging.getLogger(__name__)

_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_MAKE, _MODEL, _DATETIME = 0x010F, 0x0110, 0x0132
_DATETIME_ORIGINAL, _OFFSET_TIME, _OFFSET_TIME_ORIGINAL = 0x9003, 0x9010, 0x9011
_LENS_MAKE, _LENS_MODEL = 0xA433, 0xA434
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON, _GPS_ALT_REF, _GPS_ALT = 1, 2, 3, 4, 5, 6
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")
_MAX_TEXT = 64  # make, model and lens are short; longer values are garbage or padding
_ALTITUDE_RANGE = (-12_000.0, 100_000.0)  # the deepest mine to a stratospheric balloon, in metres
# What a row's ``facts_version`` records: this reading of the facts (and the places from them).
# Raise it when the reading changes, and the next ``vitrieve index`` reads every photo's EXIF
# again (never its pixels: no re-embedding).
FACTS_VERSION = 1


@dataclass(frozen=True)
class PhotoFacts:
    """The facts of one photo; every field is ``None`` when absent or unusable."""

    latitude: float | None = None  # degrees, north positive
    longitude: float | None = None  # degrees, east positive
    altitude: float | None = None  # metres above sea level (negative below)
    camera_make: str | None = None
    camera_model: str | None = None
    lens: str | None = None
    taken_at: datetime | None = None  # naive local time, as the camera's clock showed it
    utc_offset_minutes: int | None = None  # from OffsetTimeOriginal (or OffsetTime with DateTime)

    @property
    def has_location(self) -> bool:
        return self.latitude is not None and self.longitude is not None

    @property
    def taken_at_utc(self) -> datetime | None:
        """The instant in UTC (aware), only when both the local time and its offset are known."""
        if self.taken_at is None or self.utc_offset_minutes is None:
            return None
        local = self.taken_at.replace(tzinfo=timezone(timedelta(minutes=self.utc_offset_minutes)))
        return local.astimezone(UTC)

    def columns(self) -> dict:
        """The ``files`` columns these facts fill (places come later, on the committing side)."""
        return {
            "latitude": self.latitude,
            "longitude": self.longitude,
            "altitude": self.altitude,
            "camera_make": self.camera_make,
            "camera_model": self.camera_model,
            "lens": self.lens,
            "taken_at": self.taken_at,
            "utc_offset_minutes": self.utc_offset_minutes,
        }


def photo_facts(exif: Image.Exif | None) -> PhotoFacts:
    """All facts from a Pillow ``Exif`` (``image.getexif()``); never raises."""
    if exif is None:
        return PhotoFacts()
    exif_ifd = _ifd(exif, _EXIF_IFD)
    gps = _ifd(exif, _GPS_IFD)
    latitude, longitude = _position(gps)
    taken_at, offset = _taken_at(exif, exif_ifd)
    make = _text(_get(exif, _MAKE))
    model = _text(_get(exif, _MODEL))
    lens = _text(exif_ifd.get(_LENS_MODEL))
    lens_make = _text(exif_ifd.get(_LENS_MAKE))
    if lens and lens_make and not lens.lower().startswith(lens_make.lower()):
        lens = f"{lens_make} {lens}"
    return PhotoFacts(
        latitude=latitude,
        longitude=longitude,
        altitude=_altitude(gps) if latitude is not None else None,
        camera_make=make,
        camera_model=model,
        lens=lens,
        taken_at=taken_at,
        utc_offset_minutes=offset,
    )


def read_photo_facts(path: Path | str) -> PhotoFacts:
    """The facts of a file (JPEG, TIFF, PNG, WebP, HEIC/AVIF with pillow-heif); never raises."""
    if str(path).lower().endswith((".heic", ".heif", ".hif", ".avif")):
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
        except ImportError:
            log.debug("pillow-heif not installed: no facts from %s", path)
            return PhotoFacts()
    try:
        with Image.open(path) as image:
            return photo_facts(image.getexif())
    except Exception as exc:  # any unreadable file: no facts, the decoder reports the file itself
        log.debug("no EXIF facts from %s: %s", path, exc)
        return PhotoFacts()


def _ifd(exif: Image.Exif, tag: int) -> dict:
    """A sub-IFD as a dict, empty when absent or when its pointer leads into garbage."""
    try:
        value = exif.get_ifd(tag)
    except Exception:  # a bad offset or a truncated IFD: Pillow raises many kinds
        return {}
    return value if isinstance(value, dict) else {}


def _get(mapping, tag: int):
    try:
        return mapping.get(tag)
    except Exception:
        return None


def _text(value) -> str | None:
    """A short printable string from an ASCII tag (bytes tolerated), else None."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = " ".join(value.replace("\x00", " ").split())
    if not value or len(value) > _MAX_TEXT or not value.isprintable() or "\ufffd" in value:
        return None
    return value


def _number(value) -> float | None:
    """A finite float from an EXIF rational/int/float, else None (zero denominators give NaN)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _degrees(value) -> float | None:
    """Degrees from an EXIF (degrees, minutes, seconds) triple; a single number is accepted."""
    if isinstance(value, (tuple, list)):
        if not 1 <= len(value) <= 3:
            return None
        parts = [_number(part) for part in value]
        if any(part is None or part < 0 for part in parts):
            return None
        parts += [0.0] * (3 - len(parts))
        if parts[1] > 60 or parts[2] > 60:  # 60 itself is a writer's rounding, not garbage
            return None
        return parts[0] + parts[1] / 60 + parts[2] / 3600
    number = _number(value)
    return number if number is not None and number >= 0 else None


def _ref(value) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    value = value.strip("\x00 ").upper()
    return value or None


def _position(gps: dict) -> tuple[float | None, float | None]:
    """Signed (latitude, longitude), or (None, None) when either is malformed or out of range.

    A missing hemisphere reference means north/east (what most readers assume); a reference that
    is neither letter is garbage. (0, 0) is "no fix" written by phones, not a buoy in the Gulf of
    Guinea: it is rejected.
    """
    latitude, longitude = _degrees(_get(gps, _GPS_LAT)), _degrees(_get(gps, _GPS_LON))
    lat_ref, lon_ref = _ref(_get(gps, _GPS_LAT_REF)), _ref(_get(gps, _GPS_LON_REF))
    if latitude is None or longitude is None:
        return None, None
    if lat_ref not in (None, "N", "S") or lon_ref not in (None, "E", "W"):
        return None, None
    if latitude > 90 or longitude > 180 or (latitude == 0 and longitude == 0):
        return None, None
    return (-latitude if lat_ref == "S" else latitude), (
        -longitude if lon_ref == "W" else longitude
    )


def _altitude(gps: dict) -> float | None:
    altitude = _number(_get(gps, _GPS_ALT))
    if altitude is None or altitude < 0:
        return None
    ref = _get(gps, _GPS_ALT_REF)
    if isinstance(ref, bytes):
        ref = ref[:1] and ref[0]
    if ref not in (None, 0, 1, b""):
        return None
    altitude = -altitude if ref == 1 else altitude
    low, high = _ALTITUDE_RANGE
    return altitude if low <= altitude <= high else None


def exif_time(exif: Image.Exif) -> tuple[datetime | None, int | None]:
    """(taken_at, UTC offset in minutes) alone, for readers that need nothing else."""
    return _taken_at(exif, _ifd(exif, _EXIF_IFD))


def _taken_at(exif: Image.Exif, exif_ifd: dict) -> tuple[datetime | None, int | None]:
    """DateTimeOriginal with OffsetTimeOriginal, else DateTime with OffsetTime."""
    for time_tag, offset_tag, source in (
        (_DATETIME_ORIGINAL, _OFFSET_TIME_ORIGINAL, exif_ifd),
        (_DATETIME, _OFFSET_TIME, exif),
    ):
        taken_at = _datetime(_get(source, time_tag))
        if taken_at is not None:
            return taken_at, _offset(_get(exif_ifd, offset_tag))
    return None, None


def _datetime(value) -> datetime | None:
    text = _text(value)
    if text is None:
        return None
    try:
        return datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:  # "0000:00:00 00:00:00", blanks, impossible dates
        return None


def _offset(value) -> int | None:
    """Minutes east of UTC from "+02:00" / "-0530"; None when absent or beyond ±14 h."""
    text = _text(value)
    match = _OFFSET.match(text) if text else None
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    total = int(hours) * 60 + int(minutes)
    if int(minutes) >= 60 or total > 14 * 60:
        return None
    return -total if sign == "-" else total
