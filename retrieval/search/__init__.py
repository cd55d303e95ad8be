"""Searching: query parsing, the Searcher, results, the no-good-match cut-off, scoring, duplicates,
explanations."""
