"""Search on a synthetic library: matching first, itself first, nonsense flagged, negatives,
filters inside the search, pagination from the cache, date sort, safe file access."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest

from encoders.errors import VitrieveError
from retrieval.search.query import Filters, Query, parse_query

COLOURS = ("red", "blue", "green", "yellow")


def colour_of(path: str) -> str:
    return "red" if path.startswith("copies/") else path.split("/")[0]  # copies are of red ones


def test_parse_query_splits_negatives() -> None:
    assert parse_query('beach -people -"red car" t-shirt') == (
        "beach t-shirt",
        ["people", "red car"],
    )
    assert parse_query("2020-05 sunset") == ("2020-05 sunset", [])
    with pytest.raises(VitrieveError, match="empty query"):
        Query.parse("  -people ")


@pytest.mark.parametrize("colour", COLOURS)
def test_colour_query_returns_matching_images_first(library, colour: str) -> None:
    response = library.searcher.search(f"a {colour} square", limit=8)
    assert not response.no_good_match
    assert [colour_of(r.path) for r in response.results[:6]] == [colour] * 6
    scores = [r.score for r in response.results]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize(
    "query", ["xqzv blorp", "an invoice", "zqjx wvvk prrt", "a mortgage application form"]
)
def test_nonsense_is_flagged_as_no_good_match(library, query: str) -> None:
    response = library.searcher.search(query, limit=5)
    assert response.no_good_match
    assert response.results and all(r.weak for r in response.results)  # closest still shown
    assert library.searcher.search(query, limit=5, drop_weak=True).results == []


def test_similar_returns_the_image_itself_first(library, synth_library) -> None:
    for photo in synth_library.photos[::9]:
        file_id = library.id_for_path(photo.path)
        by_id = library.searcher.similar(file_id, limit=3)
        assert by_id.results[0].id == file_id and not by_id.results[0].weak
        by_file = library.searcher.similar(synth_library.root / photo.path, limit=3)
        assert by_file.results[0].id == file_id  # decoded and encoded again: same image


def test_similar_to_an_outside_image_finds_its_copy(library, synth_library, tmp_path) -> None:
    original = synth_library.photos[20]
    outside = tmp_path / "query.jpg"
    shutil.copy(synth_library.root / original.path, outside)
    response = library.searcher.similar(outside, limit=5)
    assert response.results[0].path == original.path
    assert all(colour_of(r.path) == original.colour for r in response.results)


def test_negative_terms_remove_what_they_name(library) -> None:
    plain = library.searcher.search("a shape", limit=24)
    assert {"red", "blue"} & {colour_of(r.path) for r in plain.results}
    for query in (Query.parse("a shape -red -blue"), Query.parse("a shape", ["red", "blue"])):
        colours = {colour_of(r.path) for r in library.searcher.search(query, limit=12).results}
        assert not colours & {"red", "blue"}, colours


def test_filters_are_applied_inside_the_search(library, synth_library) -> None:
    # "red" would fill any top-k with red photos; the folder filter must still return 3 blue ones
    response = library.searcher.search("red", Filters(folder="blue"), limit=3)
    assert [colour_of(r.path) for r in response.results] == ["blue"] * 3


def test_filters_combine(library, synth_library) -> None:
    expected = {
        p.path for p in synth_library.photos if p.colour == "green" and p.path.endswith(".png")
    }
    assert expected
    filters = Filters(folder="green", formats=("png",))
    got = {r.path for r in library.searcher.search("a shape", filters, limit=100).results}
    assert got == expected
    green = [p.taken for p in synth_library.photos if p.colour == "green"]
    by_date = Filters(taken_after=min(green), taken_before=max(green))
    got = {
        colour_of(r.path) for r in library.searcher.search("a shape", by_date, limit=100).results
    }
    assert got == {"green"}
    nothing = Filters(folder="blue", taken_after=min(green), taken_before=max(green))
    assert library.searcher.search("a shape", nothing).results == []
    wide = Filters(min_width=97)
    assert library.searcher.search("a shape", wide).results == []  # every photo is 96 px
    with pytest.raises(VitrieveError, match="empty taken date range"):
        library.searcher.search(
            "x", Filters(taken_after=datetime(2024, 1, 1), taken_before=datetime(2023, 1, 1))
        )


def test_pagination_reuses_the_cached_query_vector(library, monkeypatch) -> None:
    searcher = library.searcher
    top = [r.id for r in searcher.search("a yellow star", limit=10).results]
    calls = []
    original = searcher.encoder.encode_texts
    monkeypatch.setattr(searcher.encoder, "encode_texts", lambda t: calls.append(t) or original(t))
    first = searcher.search("a yellow star", offset=0, limit=5)
    second = searcher.search("a yellow star", offset=5, limit=5)
    assert [r.id for r in first.results + second.results] == top
    assert first.has_more and calls == []


def test_sort_by_date_keeps_the_relevant_set(library) -> None:
    response = library.searcher.search("a red circle", sort="date", limit=50)
    assert response.results and not any(r.weak for r in response.results)
    assert {colour_of(r.path) for r in response.results} == {"red"}
    dates = [r.taken_at or r.modified_at for r in response.results]
    assert dates == sorted(dates, reverse=True)


def test_results_carry_metadata_and_files(library, synth_library) -> None:
    result = library.searcher.search("a blue circle", limit=1).results[0]
    assert (result.width, result.height) == (96, 96) and result.format in ("JPEG", "PNG")
    assert result.taken_at is not None and 0 < result.calibrated < 1
    assert library.file_path(result.id) == (synth_library.root / result.path).resolve()
    assert library.thumbnail_path(result.id).is_file()
    assert result.to_dict()["path"] == result.path


def test_file_access_stays_inside_the_library(library, synth_library, tmp_path: Path) -> None:
    with pytest.raises(VitrieveError, match="unknown image id"):
        library.file_path(10**9)
    with pytest.raises(VitrieveError, match="not an image id"):
        library.file_path("../../etc/passwd")
    from retrieval.library.paths import inside as _inside

    secret = tmp_path / "secret.txt"
    secret.write_text("no")
    (synth_library.root / "link.jpg").symlink_to(secret)
    try:
        with pytest.raises(VitrieveError, match="outside"):
            _inside(synth_library.root, "link.jpg", "image")
    finally:
        (synth_library.root / "link.jpg").unlink()
    for bad in ("../secret.txt", "/etc/passwd"):
        with pytest.raises(VitrieveError, match="unsafe"):
            _inside(synth_library.root, bad, "image")


def test_missing_or_broken_library_is_one_clear_error(tmp_path: Path) -> None:
    from retrieval.library.handle import Library

    with pytest.raises(VitrieveError, match="no library"):
        Library.open(tmp_path / "nowhere")
    (tmp_path / "library.json").write_text("{not json")
    with pytest.raises(VitrieveError, match="cannot read"):
        Library.open(tmp_path)


def test_stats(library, synth_library) -> None:
    stats = library.stats()
    assert stats.vectors == library.count() == len(synth_library.photos) + len(synth_library.copies)
    assert stats.counts["indexed"] == stats.vectors
    assert set(stats.formats) == {"JPEG", "PNG"}
    assert sum(stats.formats.values()) == stats.vectors
    months = {p.taken.strftime("%Y-%m") for p in synth_library.photos}
    assert set(stats.taken_by_month) <= months  # only photos with a capture date count


def test_mixed_text_and_image_query(library, synth_library) -> None:
    blue = next(p for p in synth_library.photos if p.colour == "blue")
    blue_id = library.id_for_path(blue.path)
    alone = library.searcher.similar(blue_id, limit=12)
    assert {colour_of(r.path) for r in alone.results if not r.weak} == {"blue"}
    mixed = library.searcher.search(Query(text="yellow", image=blue_id), limit=24)
    colours = [colour_of(r.path) for r in mixed.results[:16]]
    assert set(colours) <= {"blue", "yellow"}  # nothing of the other colours
    assert {"blue", "yellow"} <= set(colours)  # the sum of both embeddings finds both
