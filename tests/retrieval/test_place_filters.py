"""Place, camera and location filters from the command line: --near PLACE|LAT,LON, --within,
--country, --camera, --has-location/--no-location, on a library of photos with EXIF GPS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from library_factory import photo
from test_photo_facts import make_exif
from typer.testing import CliRunner

from encoders.errors import VitrieveError
from retrieval.cli import app
from retrieval.search.query import country_codes, place_filter, resolve_place

runner = CliRunner()

PHOTOS = {  # name: (latitude, longitude, make, model)
    "lisbon.jpg": (38.7223, -9.1393, "Apple", "iPhone 14 Pro"),
    "cascais.jpg": (38.6979, -9.4215, "Google", "Pixel 7"),
    "munich.jpg": (48.137, 11.575, "Canon", "Canon EOS R5"),
    "austin.jpg": (30.2672, -97.7431, "Apple", "iPhone 12"),
    "no_gps.jpg": (None, None, "Apple", "iPhone 14 Pro"),
}


@pytest.fixture(scope="module")
def gps_library(tmp_path_factory: pytest.TempPathFactory, trained_tiny: Path) -> Path:
    from encoders.runtime.encoder import Encoder
    from indexer.pipeline.local import IndexOptions, index_library

    root = tmp_path_factory.mktemp("gps") / "photos"
    root.mkdir()
    for seed, (name, (lat, lon, make, model)) in enumerate(PHOTOS.items()):
        photo(seed=seed).save(root / name, "JPEG", exif=make_exif(lat, lon, make=make, model=model))
    encoder = Encoder.load(trained_tiny, precision="fp32")
    report = index_library(
        root, encoder, model_ref=str(trained_tiny), options=IndexOptions(workers=0)
    )
    assert report.embedded == len(PHOTOS) and report.located == 4
    return root / ".vitrieve"


def _paths(library: Path, *args: str) -> set[str]:
    result = runner.invoke(app, ["search", "a photo", "--library", str(library), "--json", *args])
    assert result.exit_code == 0, result.output
    return {r["path"] for r in json.loads(result.stdout)["results"]}


def test_place_and_camera_options(gps_library: Path) -> None:
    assert _paths(gps_library, "--near", "Lisbon") == {"lisbon.jpg", "cascais.jpg"}
    assert _paths(gps_library, "--near", "lisboa", "--within", "10") == {"lisbon.jpg"}
    assert _paths(gps_library, "--near", "38.70,-9.42", "--within", "5") == {"cascais.jpg"}
    assert _paths(gps_library, "--near", "München") == {"munich.jpg"}
    assert _paths(gps_library, "--near", "Texas") == {"austin.jpg"}
    assert _paths(gps_library, "--near", "Europe") == {"lisbon.jpg", "cascais.jpg", "munich.jpg"}
    assert _paths(gps_library, "--country", "pt") == {"lisbon.jpg", "cascais.jpg"}
    assert _paths(gps_library, "--country", "Deutschland", "--country", "US") == {
        "munich.jpg", "austin.jpg"
    }  # fmt: skip
    assert _paths(gps_library, "--near", "Europe", "--country", "DE") == {"munich.jpg"}
    assert _paths(gps_library, "--camera", "iphone") == {"lisbon.jpg", "austin.jpg", "no_gps.jpg"}
    assert _paths(gps_library, "--camera", "iPhone 14", "--has-location") == {"lisbon.jpg"}
    assert _paths(gps_library, "--no-location") == {"no_gps.jpg"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--near", "Xyzzyville"], "unknown place"),
        (["--within", "5"], "--within needs --near"),
        (["--near", "Portugal", "--within", "5"], "within its borders"),
        (["--near", "91,0"], "not a position"),
        (["--country", "Atlantis"], "not a country"),
        (["--near", "Europe", "--country", "US"], "exclude each other"),
    ],
)
def test_bad_place_options_are_one_line(gps_library: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["search", "x", "--library", str(gps_library), *args])
    assert result.exit_code != 0 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_place_filter_by_kind() -> None:
    assert place_filter(resolve_place("Lisbon").place)["within_km"] == 25.0
    assert place_filter(resolve_place("Lisbon").place, 3)["within_km"] == 3
    assert place_filter(resolve_place("Texas").place) == {"regions": (("US", "TX"),)}
    assert place_filter(resolve_place("Portugal").place) == {"countries": ("PT",)}
    assert "FR" in place_filter(resolve_place("Europe").place)["countries"]
    assert resolve_place("Paris").ambiguous
    assert country_codes(["pt", "Portugal", "USA"]) == ("PT", "US")
    with pytest.raises(VitrieveError):
        resolve_place(" ")
