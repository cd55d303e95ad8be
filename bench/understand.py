"""Query understanding over the phrase tables: exact understanding, lost words, time per query.

    python bench/understand.py [TABLE.tsv ...] [--show-misses]

Each table (default: tests/retrieval/phrases_tuned.tsv and phrases_heldout.tsv) is reported on
its own: the held-out one was written before the rules and never tuned on, so its figure is the
one to quote. A phrase is understood exactly when its remaining text (case-insensitive) and its
set of filters (date ranges, place labels, camera words) are both as expected. Time is the mean
of ``understand`` over the table, after the place index is built (built once per process).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from indexer.places.names import place_names
from retrieval.understand import understand
from retrieval.understand.parse import lost_words

ROOT = Path(__file__).resolve().parent.parent

NOW = datetime(2026, 7, 15, 12, 0)  # the tables' fixed "now" (a Wednesday)
TABLES = [ROOT / "tests/retrieval/phrases_tuned.tsv", ROOT / "tests/retrieval/phrases_heldout.tsv"]


@dataclass
class Phrase:
    query: str
    text: str
    filters: tuple[str, ...]


def _canonical(item: str) -> str:
    kind, _, value = item.strip().partition(":")
    return f"{kind}:{value.strip().casefold()}" if kind == "camera" else f"{kind}:{value.strip()}"


def read_table(path: Path) -> list[Phrase]:
    phrases = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        query, text, filters = (line.split("\t") + ["", ""])[:3]
        items = () if filters.strip() in ("", "-") else filters.split(" ; ")
        phrases.append(Phrase(query, " ".join(text.split()), tuple(sorted(map(_canonical, items)))))
    return phrases


def got(phrase: Phrase, places) -> tuple[str, tuple[str, ...], list[str]]:
    understood = understand(phrase.query, NOW, places)
    filters = tuple(sorted(_canonical(f.canonical()) for f in understood.filters))
    return understood.text, filters, lost_words(phrase.query, understood)


def evaluate(path: Path, places, show_misses: bool = False) -> dict:
    phrases = read_table(path)
    exact = lost = 0
    misses = []
    for phrase in phrases:
        text, filters, missing = got(phrase, places)
        ok = text.casefold() == phrase.text.casefold() and filters == phrase.filters
        exact += ok
        lost += bool(missing)
        if not ok:
            misses.append((phrase, text, filters))
    start = time.perf_counter()
    rounds = 5
    for _ in range(rounds):
        for phrase in phrases:
            understand(phrase.query, NOW, places)
    per_query_ms = (time.perf_counter() - start) / (rounds * len(phrases)) * 1000
    if show_misses:
        for phrase, text, filters in misses:
            print(f"  MISS {phrase.query!r}: got {text!r} {list(filters)}")
            print(f"       want {phrase.text!r} {list(phrase.filters)}")
    return {
        "table": path.name,
        "phrases": len(phrases),
        "exact": exact,
        "accuracy": exact / len(phrases),
        "lost_word_phrases": lost,
        "ms_per_query": per_query_ms,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", nargs="*", type=Path, default=TABLES)
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    places = place_names()
    print(f"place index built in {time.perf_counter() - start:.2f} s")
    for path in args.tables:
        r = evaluate(path, places, args.show_misses)
        print(
            f"{r['table']}: {r['exact']}/{r['phrases']} exact ({r['accuracy']:.1%}), "
            f"{r['lost_word_phrases']} phrases with a lost word, {r['ms_per_query']:.3f} ms/query"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
