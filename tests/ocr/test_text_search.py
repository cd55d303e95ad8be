"""Text index and text search on SQLite and on a real PostgreSQL: words, numbers, phrases,
substrings, case and accents, one typo, negatives, nothing for absent words, and fusion."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import create_engine

from indexer.store.text_index import StoredLine, TextIndex, fold
from retrieval.search.text_match import fuse, parse, rrf, search

BOX = ((0.1, 0.1), (0.5, 0.1), (0.5, 0.2), (0.1, 0.2))
PHOTOS = {
    1: ["INVOICE 58213", "TOTAL 42.90"],
    2: ["Café Müller", "JAZZ NIGHT 2012"],
    3: ["RE16 TGK"],
    4: ["INV0ICE 77001", "PLUMBING"],  # OCR read the O as a zero
    5: ["ZEPHYR BAKERY", "No12"],
    6: ["INVOICE 58213 DRAFT"],
    7: [],  # recognised: no text
}


@pytest.fixture(params=["sqlite", "postgresql"])
def index(request, tmp_path):
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'library.db'}")
    else:
        from pgserver import fresh_database

        engine = create_engine(fresh_database(request.getfixturevalue("postgres_url")))
    index = TextIndex(engine)
    TextIndex(engine)  # the DDL is idempotent
    for file_id, lines in PHOTOS.items():
        index.put(file_id, [StoredLine(t, 0.9, BOX) for t in lines], recogniser="test")
    yield index
    engine.dispose()


def ids(index, query: str) -> list[int]:
    return [f for f, _ in search(index, parse(query))]


def test_storage(index) -> None:
    assert index.count() == len(PHOTOS)
    assert [line.text for line in index.lines(2)] == PHOTOS[2]
    assert index.lines(2)[0].polygon == BOX
    assert index.missing([1, 7, 8, 9]) == [8, 9]
    index.put(3, [StoredLine("RE17 XYZ", 0.8, BOX)])  # a second recognition replaces the first
    assert ids(index, "text:RE16") == [] and ids(index, "text:RE17") == [3]
    index.remove([3])
    assert index.missing([3]) == [3] and ids(index, "text:RE17") == []
    index.put(8, [], error="text recognition gave up after 60 s")
    assert index.missing([8]) == []


def test_text_terms(index) -> None:
    assert ids(index, 'text:"INVOICE 58213"')[:2] in ([1, 6], [6, 1])
    assert ids(index, "text:58213") in ([1, 6], [6, 1])
    assert ids(index, "text:RE16") == [3]
    assert ids(index, "text:TGK") == [3]
    assert ids(index, "text:E16") == [3]  # a substring of a token
    assert ids(index, 'text:"cafe muller"') == [2]
    assert ids(index, "text:MÜLLER") == [2]
    assert ids(index, "text:2012") == [2]
    assert ids(index, "text:xylophone") == []
    assert ids(index, "text:INVOICE -draft") == [1, 4]
    ranked = search(index, parse("text:invoice"))
    assert [f for f, _ in ranked][-1] == 4  # the one-typo match ranks below the exact ones
    assert ids(index, "text:plumbnig") == []  # a transposition is two edits
    assert ids(index, "text:plumbinq") == [4]


def test_phrase_outranks_words(index) -> None:
    index.put(9, [StoredLine("58213 was the INVOICE", 0.9, BOX)])
    ranked = ids(index, 'text:"INVOICE 58213"')
    assert set(ranked[:2]) == {1, 6} and ranked[2] == 9


def test_plain_words_are_tokens(index) -> None:
    assert ids(index, "zephyr bakery") == [5]
    assert ids(index, "bakery with sourdough") == []  # every word must match
    assert ids(index, "phyr") == []  # plain words: tokens, prefixes, substrings of 5+ chars
    assert ids(index, "zeph") == [5]
    index.put(10, [StoredLine("JAZZNIGHT2012", 0.9, BOX)])  # PP-OCRv4 dropped the spaces
    assert ids(index, "jazz night") == [2, 10] and ids(index, "azz") == []


def test_parse() -> None:
    q = parse('text:"INVOICE 58213" beach -Draft text:RE16 a')
    assert q.required == [["invoice", "58213"], ["re16"]]
    assert q.words == ["beach"] and q.negatives == ["draft"] and q.rest == "beach a"
    assert parse('text:"unbalanced').required == [["unbalanced"]]
    assert fold("Crème Brûlée Smørrebrød STRASSE ß") == "creme brulee smorrebrod strasse ss"


def test_fusion_puts_strong_text_matches_first() -> None:
    """Simulated libraries: the photo whose text has the query's words is in the top 3 of the
    fused ranking >= 90 % of the time, where plain RRF manages far less."""
    rng = random.Random(0)
    hits_fused = hits_rrf = 0
    trials = 200
    for _ in range(trials):
        n = 1000
        embedding = rng.sample(range(n), n)  # the embedding knows nothing about text
        target = rng.randrange(n)
        others = rng.sample(range(n), 5)  # photos matching some words fuzzily
        text = [(target, 2.9)] + [(o, 1.5) for o in others if o != target]
        hits_fused += target in [f for f, _ in fuse(embedding, text)[:3]]
        hits_rrf += target in [f for f, _ in rrf(embedding, text)[:3]]
    assert hits_fused / trials >= 0.9
    assert hits_rrf / trials < hits_fused / trials
    assert fuse([3, 2, 1], []) == rrf([3, 2, 1], [])  # no text match: the embedding's order
    assert [f for f, _ in fuse([3, 2, 1], [])] == [3, 2, 1]


def test_highlights() -> None:
    from retrieval.search.text_match import highlights

    lines = ["Straße 5", "Café Müller", "nothing"]
    assert highlights(lines, [["muller"], ["strasse"]]) == [(0, [(0, 6)]), (1, [(5, 11)])]
