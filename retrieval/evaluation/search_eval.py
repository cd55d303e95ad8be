"""Evaluate the search itself: recall@k and nDCG@10 of the full pipeline on a library.

The ground truth is a TSV: ``query<TAB>relevant path<TAB>relevant path…`` (paths relative to
the photo root; ``#`` starts a comment; a query repeated on several lines merges its paths).
A query with no relevant paths is a *negative*: the right answer is "no good match".

Every query goes through ``Searcher.search`` — query parsing, filters, the index and the
relevance cut-off — so a change to the index kind or the cut-off is measured, not guessed.
Metrics are reported twice: on the ranked list as is, and with weak results dropped (what a
user who trusts the cut-off sees); negatives report how often the cut-off said so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from encoders.errors import VitrieveError
from retrieval.search.query import Filters
from retrieval.search.searcher import Searcher

KS = (1, 5, 10, 20)
NDCG_K = 10


def recall_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """Fraction of the relevant items found in the first ``k`` ranked ones."""
    if not relevant:
        raise ValueError("recall is undefined without relevant items")
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def ndcg_at_k(ranked: Sequence[str], relevant: set[str], k: int = NDCG_K) -> float:
    """Binary-relevance nDCG: DCG of the ranking over the DCG of a perfect one."""
    gains = [1.0 / math.log2(rank + 2) for rank, item in enumerate(ranked[:k]) if item in relevant]
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(k, len(relevant))))
    return sum(gains) / ideal if ideal else 0.0


def read_ground_truth(path: Path) -> dict[str, set[str]]:
    """``query → relevant paths`` from the TSV (see the module docstring)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise VitrieveError(f"cannot read {path}: {exc}") from exc
    truth: dict[str, set[str]] = {}
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        query, *paths = [cell.strip() for cell in line.split("\t")]
        if query:
            truth.setdefault(query, set()).update(p for p in paths if p)
    if not truth:
        raise VitrieveError(f"{path} holds no queries (expected query<TAB>path… lines)")
    return truth


@dataclass
class SearchEvalReport:
    """Mean metrics over the positive queries; cut-off behaviour on both kinds."""

    positives: int
    negatives: int
    metrics: dict[str, float] = field(default_factory=dict)
    per_query: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"positives": self.positives, "negatives": self.negatives,
                "metrics": self.metrics, "per_query": self.per_query}  # fmt: skip


def _scores(ranked: list[str], relevant: set[str], suffix: str) -> dict[str, float]:
    out = {f"recall@{k}{suffix}": recall_at_k(ranked, relevant, k) for k in KS}
    out[f"ndcg@{NDCG_K}{suffix}"] = ndcg_at_k(ranked, relevant)
    return out


def evaluate_search(
    searcher: Searcher, truth: dict[str, set[str]], filters: Filters | None = None
) -> SearchEvalReport:
    """Run every query of ``truth`` through the searcher and score the rankings."""
    depth = max(KS)
    per_query, sums = [], {}
    negatives_flagged = positives_flagged = 0
    for query, relevant in truth.items():
        response = searcher.search(query, filters, limit=depth)
        ranked = [r.path for r in response.results]
        kept = [r.path for r in response.results if not r.weak]
        row: dict = {"query": query, "no_good_match": response.no_good_match}
        if relevant:
            row.update(_scores(ranked, relevant, ""))
            row.update(_scores(kept, relevant, "_cutoff"))
            for key, value in row.items():
                if isinstance(value, float):
                    sums.setdefault(key, []).append(value)
            positives_flagged += response.no_good_match
        else:
            negatives_flagged += response.no_good_match
        per_query.append(row)
    positives = sum(1 for r in truth.values() if r)
    negatives = len(truth) - positives
    metrics = {key: float(np.mean(values)) for key, values in sums.items()}
    if positives:
        metrics["positive_flagged_no_match"] = positives_flagged / positives
    if negatives:
        metrics["negative_flagged_no_match"] = negatives_flagged / negatives
    return SearchEvalReport(positives, negatives, metrics, per_query)
