"""EXIF facts (GPS, camera, lens, time and offset) from generated photos, good and hostile."""

from __future__ import annotations

import io
import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational as R

from indexer.decode.photo_facts import PhotoFacts, photo_facts, read_photo_facts


def _dms(value: float) -> tuple[R, R, R]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round(((value - degrees) * 60 - minutes) * 60 * 1000)
    return R(degrees, 1), R(minutes, 1), R(seconds, 1000)


def make_exif(
    lat: float | None = None,
    lon: float | None = None,
    *,
    alt: float | None = None,
    make: str | None = None,
    model: str | None = None,
    lens: str | None = None,
    taken: str | None = None,
    offset: str | None = None,
    gps: dict | None = None,
) -> Image.Exif:
    exif = Image.Exif()
    if make:
        exif[0x010F] = make
    if model:
        exif[0x0110] = model
    sub = exif.get_ifd(0x8769)
    if taken:
        sub[0x9003] = taken
    if offset:
        sub[0x9011] = offset
    if lens:
        sub[0xA434] = lens
    g = exif.get_ifd(0x8825)
    if lat is not None:
        g[1], g[2] = ("N" if lat >= 0 else "S"), _dms(abs(lat))
    if lon is not None:
        g[3], g[4] = ("E" if lon >= 0 else "W"), _dms(abs(lon))
    if alt is not None:
        g[5], g[6] = (b"\x01" if alt < 0 else b"\x00"), R(round(abs(alt) * 10), 10)
    g.update(gps or {})
    return exif


def write_jpeg(path: Path, exif: Image.Exif | bytes) -> Path:
    Image.new("RGB", (16, 12), (200, 120, 40)).save(path, "JPEG", exif=exif)
    return path


def roundtrip(exif: Image.Exif) -> PhotoFacts:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "JPEG", exif=exif)
    buffer.seek(0)
    with Image.open(buffer) as image:
        return photo_facts(image.getexif())


@pytest.mark.parametrize(
    ("lat", "lon"),
    [
        (38.7223, -9.1393),  # Lisbon: north, west
        (-33.8688, 151.2093),  # Sydney: south, east
        (-22.9068, -43.1729),  # Rio: south, west
        (64.1466, 21.9426),  # north, east
        (-16.5, 179.99),  # Fiji, just west of the antimeridian
        (65.0, -179.99),  # Chukotka/Alaska, just east of it
        (0.0, 32.5),  # on the equator: one zero coordinate is a real place
    ],
)
def test_gps_signs_from_hemisphere_refs(tmp_path: Path, lat: float, lon: float) -> None:
    path = write_jpeg(tmp_path / "p.jpg", make_exif(lat, lon, alt=-12.5 if lat < 0 else 1234.5))
    facts = read_photo_facts(path)
    assert facts.latitude == pytest.approx(lat, abs=1e-6)
    assert facts.longitude == pytest.approx(lon, abs=1e-6)
    assert facts.altitude == pytest.approx(-12.5 if lat < 0 else 1234.5)
    assert facts.has_location


def test_camera_lens_time_and_offset(tmp_path: Path) -> None:
    exif = make_exif(
        make="Google",
        model="Pixel 7",
        lens="Pixel 7 back camera",
        taken="2023:07:14 18:30:05",
        offset="+02:00",
    )
    facts = read_photo_facts(write_jpeg(tmp_path / "p.jpg", exif))
    assert (facts.camera_make, facts.camera_model) == ("Google", "Pixel 7")
    assert facts.lens == "Pixel 7 back camera"
    assert facts.taken_at == datetime(2023, 7, 14, 18, 30, 5)
    assert facts.utc_offset_minutes == 120
    assert facts.taken_at_utc == datetime(2023, 7, 14, 16, 30, 5, tzinfo=UTC)
    assert not facts.has_location and facts.altitude is None


def test_negative_offset_and_no_offset() -> None:
    facts = roundtrip(make_exif(taken="2020:01:01 00:10:00", offset="-05:30"))
    assert facts.utc_offset_minutes == -330
    assert facts.taken_at_utc == datetime(2020, 1, 1, 5, 40, tzinfo=UTC)
    plain = roundtrip(make_exif(taken="2020:01:01 00:10:00"))
    assert plain.taken_at == datetime(2020, 1, 1, 0, 10) and plain.utc_offset_minutes is None
    assert plain.taken_at_utc is None


def test_datetime_fallback_and_lens_make() -> None:
    exif = make_exif(lens="RF24-105mm F4")
    exif[0x0132] = "2019:05:06 07:08:09"
    exif.get_ifd(0x8769)[0xA433] = "Canon"
    facts = roundtrip(exif)
    assert facts.taken_at == datetime(2019, 5, 6, 7, 8, 9)
    assert facts.lens == "Canon RF24-105mm F4"


@pytest.mark.parametrize(
    "gps",
    [
        {1: "N", 2: (R(0, 1), R(0, 1), R(0, 1)), 3: "E", 4: (R(0, 1), R(0, 1), R(0, 1))},  # (0,0)
        {1: "N", 2: (R(1, 0), R(2, 1), R(3, 1)), 3: "E", 4: (R(10, 1), R(0, 1), R(0, 1))},  # x/0
        {1: "N", 2: (R(91, 1), R(0, 1), R(0, 1)), 3: "E", 4: (R(10, 1), R(0, 1), R(0, 1))},
        {1: "N", 2: (R(45, 1), R(0, 1), R(0, 1)), 3: "E", 4: (R(181, 1), R(0, 1), R(0, 1))},
        {1: "N", 2: (R(45, 1), R(75, 1), R(0, 1)), 3: "E", 4: (R(10, 1), R(0, 1), R(0, 1))},
        {1: "X", 2: (R(45, 1), R(0, 1), R(0, 1)), 3: "E", 4: (R(10, 1), R(0, 1), R(0, 1))},
        {1: "N", 2: (R(45, 1), R(0, 1), R(0, 1)), 3: "E"},  # longitude missing
        {1: 7, 2: (R(45, 1),) * 5, 3: "E", 4: (R(10, 1), R(0, 1), R(0, 1))},
    ],
    ids=[
        "zero-zero",
        "zero-denominator",
        "lat>90",
        "lon>180",
        "minutes>=60",
        "bad-ref",
        "half",
        "wrong-arity",
    ],
)
def test_malformed_gps_is_rejected_not_raised(gps: dict) -> None:
    facts = roundtrip(make_exif(make="Canon", gps=gps, taken="2021:03:04 10:11:12"))
    assert facts.latitude is None and facts.longitude is None and facts.altitude is None
    assert facts.camera_make == "Canon"  # the other facts survive
    assert facts.taken_at == datetime(2021, 3, 4, 10, 11, 12)


@pytest.mark.parametrize(
    "gps",
    [
        {1: "N", 2: "forty-five", 3: "E", 4: (R(10, 1), R(0, 1), R(0, 1))},
        {1: b"\xff", 2: (R(45, 1), R(0, 1), R(0, 1)), 3: 1.5, 4: [None, "x", {}]},
        {1: "N", 2: (R(45, 1), R(0, 1), R(-3, 1)), 3: "E", 4: (R(10, 1), R(0, 1), R(0, 1))},
        {1: "N", 2: True, 3: "E", 4: float("inf")},
    ],
    ids=["string-degrees", "junk-types", "negative-seconds", "bool-and-inf"],
)
def test_wrong_types_in_memory_never_raise(gps: dict) -> None:
    """Types a writer cannot produce through Pillow but a hand-made EXIF block can."""
    exif = make_exif(make="Sony")
    exif.get_ifd(0x8825).update(gps)
    facts = photo_facts(exif)
    assert not facts.has_location and facts.camera_make == "Sony"


def test_bad_altitude_and_offset_and_dates_are_dropped_alone() -> None:
    exif = make_exif(
        38.7, -9.1, taken="0000:00:00 00:00:00", offset="+25:00", gps={5: b"\x07", 6: R(10, 1)}
    )
    facts = roundtrip(exif)
    assert facts.latitude == pytest.approx(38.7) and facts.altitude is None
    assert facts.taken_at is None and facts.utc_offset_minutes is None
    exif = make_exif(taken="2021:02:30 10:00:00", offset="+05:45")  # 30 February
    assert roundtrip(exif).taken_at is None


def _raw_exif(entries: list[tuple[int, int, int, int]]) -> bytes:
    """A little-endian TIFF block: one IFD0 with (tag, type, count, value/offset) entries."""
    body = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        body += struct.pack("<HHII", tag, kind, count, value)
    return b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + body + struct.pack("<I", 0)


@pytest.mark.parametrize(
    "entries",
    [
        [(0x8825, 4, 1, 0xFFFF0)],  # GPS IFD pointer far past the end
        [(0x8825, 4, 1, 10), (0x8769, 4, 1, 3)],  # pointers into the IFD itself / the header
        [(0x010F, 2, 4000, 30), (0x8825, 4, 1, 12)],  # a make longer than the block
    ],
    ids=["gps-past-end", "gps-into-garbage", "truncated-make"],
)
def test_gps_pointer_into_garbage_never_raises(tmp_path: Path, entries) -> None:
    path = write_jpeg(tmp_path / "g.jpg", _raw_exif(entries))
    facts = read_photo_facts(path)
    assert not facts.has_location
    assert facts.camera_make is None


def test_bytes_and_padding_in_text_tags() -> None:
    exif = make_exif(make="NIKON CORPORATION\x00\x00  ", model="NIKON D750 ")
    facts = roundtrip(exif)
    assert (facts.camera_make, facts.camera_model) == ("NIKON CORPORATION", "NIKON D750")
    assert photo_facts(None) == PhotoFacts()


def test_not_an_image_gives_empty_facts(tmp_path: Path) -> None:
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8\xff\xe1" + b"\x00" * 50)
    assert read_photo_facts(junk) == PhotoFacts()
    assert read_photo_facts(tmp_path / "missing.jpg") == PhotoFacts()


def test_heic_facts(tmp_path: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    exif = make_exif(
        -33.8688,
        151.2093,
        make="Apple",
        model="iPhone 14",
        taken="2024:12:25 09:00:00",
        offset="+11:00",
    )
    try:
        heif = pillow_heif.from_pillow(Image.new("RGB", (64, 48), (10, 200, 30)))
        heif.info["exif"] = exif.tobytes()
        heif.save(tmp_path / "p.heic", quality=80, exif=exif.tobytes())
    except Exception as exc:  # no HEVC encoder in this build
        pytest.skip(f"pillow-heif cannot encode HEIC here: {exc}")
    facts = read_photo_facts(tmp_path / "p.heic")
    assert facts.latitude == pytest.approx(-33.8688, abs=1e-6)
    assert facts.longitude == pytest.approx(151.2093, abs=1e-6)
    assert facts.camera_model == "iPhone 14" and facts.utc_offset_minutes == 660
