"""What a search returns: a page of results, each with what a result list shows about it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from indexer.store.metadata import FileRecord


@dataclass
class SearchResult:
    """One matching image with what a result list shows about it."""

    id: int
    path: str  # relative to the photo root (serve it through Library.file_path(id))
    score: float  # cosine similarity of the query embedding
    calibrated: float  # 0..1 against this library's null; 0.5 is the relevance cut-off
    weak: bool  # below the cut-off: shown only as "closest results"
    thumbnail: str | None  # relative to the library dir (Library.thumbnail_path(id))
    width: int | None
    height: int | None
    format: str | None
    size: int
    taken_at: datetime | None
    modified_at: datetime
    labels: list[tuple[str, str, float]] = field(default_factory=list)  # (set, label, score)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["taken_at"] = self.taken_at.isoformat() if self.taken_at else None
        out["modified_at"] = self.modified_at.isoformat()
        out["labels"] = [{"set": s, "label": lab, "score": sc} for s, lab, sc in self.labels]
        return out


@dataclass
class SearchResponse:
    """A page of results and what the cut-off concluded about the whole query."""

    results: list[SearchResult]
    no_good_match: bool  # every ranked result is below the cut-off
    offset: int
    limit: int
    sort: str
    has_more: bool
    relevant: int  # results above the cut-off among those ranked (capped by the page end)
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "results"}
        out["results"] = [r.to_dict() for r in self.results]
        return out


def result_of(
    record: FileRecord, score: float, calibrated: float, weak: bool,
    labels: list[tuple[str, str, float]],
) -> SearchResult:  # fmt: skip
    return SearchResult(
        id=record.id, path=record.path, score=score, calibrated=calibrated, weak=weak,
        thumbnail=record.thumb, width=record.width, height=record.height, format=record.format,
        size=record.size, taken_at=record.taken_at,
        modified_at=datetime.fromtimestamp(record.mtime_ns / 1e9), labels=labels,
    )  # fmt: skip
