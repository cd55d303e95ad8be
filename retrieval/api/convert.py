"""Engine objects → API models, API parameters → engine filters (the CLI's rules)."""

from __future__ import annotations

from datetime import datetime

from fastapi.concurrency import run_in_threadpool

from indexer.store.metadata import FileRecord
from retrieval.api.schemas import ImageOut, LabelOut, SearchHit, SearchPage, SearchParams
from retrieval.search.query import Filters, Query, end_of_day
from retrieval.search.results import SearchResponse, SearchResult
from retrieval.service.jobs import JobStatus


def _naive(moment: datetime | None) -> datetime | None:
    """Dates compare as the wall-clock times the library stores (EXIF has no zone)."""
    return moment.replace(tzinfo=None) if moment is not None else None


def filters_of(params: SearchParams) -> Filters:
    """The engine's ``Filters`` from the API's fields (a bare ``before`` date: the whole day)."""
    return Filters(
        folder=params.folder, taken_after=_naive(params.after),
        taken_before=end_of_day(_naive(params.before)),
        modified_after=_naive(params.modified_after),
        modified_before=end_of_day(_naive(params.modified_before)),
        formats=tuple(params.type), label=params.label, min_label_score=params.min_label_score,
        min_width=params.min_width, min_height=params.min_height, min_bytes=params.min_bytes,
    )  # fmt: skip


def image_urls(base: str, file_id: int, thumb: str | None) -> dict[str, str | None]:
    return {"thumbnail_url": f"{base}/images/{file_id}/thumbnail" if thumb else None,
            "file_url": f"{base}/images/{file_id}/file"}  # fmt: skip


def labels_out(labels: list[tuple[str, str, float]]) -> list[LabelOut]:
    return [LabelOut(set=s, label=lab, score=float(sc)) for s, lab, sc in labels]


def hit(base: str, result: SearchResult) -> SearchHit:
    return SearchHit(
        id=result.id, path=result.path, width=result.width, height=result.height,
        format=result.format, size=result.size, taken_at=result.taken_at,
        modified_at=result.modified_at, labels=labels_out(result.labels),
        score=result.score, calibrated=result.calibrated, relevant=not result.weak,
        **image_urls(base, result.id, result.thumbnail),
    )  # fmt: skip


def image(base: str, record: FileRecord, labels: list[tuple[str, str, float]]) -> ImageOut:
    return ImageOut(
        id=record.id, path=record.path, width=record.width, height=record.height,
        format=record.format, size=record.size, taken_at=record.taken_at,
        modified_at=datetime.fromtimestamp(record.mtime_ns / 1e9), labels=labels_out(labels),
        **image_urls(base, record.id, record.thumb),
    )  # fmt: skip


def page(base: str, response: SearchResponse) -> SearchPage:
    return SearchPage(
        results=[hit(base, r) for r in response.results], no_good_match=response.no_good_match,
        offset=response.offset, limit=response.limit, sort=response.sort,
        has_more=response.has_more, relevant=response.relevant, timings_ms=response.timings_ms,
        next_offset=response.offset + response.limit if response.has_more else None,
    )  # fmt: skip


async def run_search(library, query: Query, params: SearchParams) -> SearchResponse:
    """One search through the library's shared Searcher, off the event loop."""
    filters = filters_of(params)
    return await run_in_threadpool(
        library.searcher.search, query, filters, offset=params.offset, limit=params.k,
        sort=params.sort, drop_weak=params.drop_weak,
    )  # fmt: skip


def job_id(status: JobStatus) -> str:
    """A job's id: its kind and start time (the library keeps its latest job only)."""
    return f"{status.kind}-{int(status.started_at * 1_000_000)}"
