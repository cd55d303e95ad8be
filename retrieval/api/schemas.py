"""Request and response models of the HTTP API (pydantic; they make the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from retrieval.labels.zeroshot import DEFAULT_NULL_Z, DEFAULT_PROBABILITY_THRESHOLD, DEFAULT_SET
from retrieval.search.query import DEFAULT_LIMIT

MAX_K = 200
MAX_OFFSET = 10_000
MAX_TEXT = 1000  # characters of a query or label; the text tower reads far fewer tokens
MAX_ITEMS = 64  # texts, labels or negatives in one request
MAX_TEMPLATES = 16  # prompt templates: each label is encoded once per template
# The library's times are wall-clock times without a zone (EXIF has none): ISO 8601 without
# an offset, which is not an RFC 3339 "date-time", so the schema says what they are.
LocalTime = Annotated[datetime, WithJsonSchema({
    "type": "string", "description": "Local time, ISO 8601 without a zone: 2024-07-01T18:30:00",
})]  # fmt: skip


class ErrorBody(BaseModel):
    """Every error: a one-line message and, for invalid requests, which fields."""

    error: str
    detail: list[dict[str, object]] | str | dict[str, object] | None = None


class SearchParams(BaseModel):
    """What ``GET /v1/search`` takes (and ``POST`` too): a query, a page and filters."""

    model_config = ConfigDict(extra="forbid")

    q: str = Field("", max_length=MAX_TEXT, description='Text, e.g. "a red bicycle -people".')
    k: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_K, description="Results per page.")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="Skip this many (pagination).")
    sort: Literal["score", "date"] = "score"
    drop_weak: bool = Field(False, description="Leave out results below the cut-off.")
    folder: str | None = Field(None, max_length=MAX_TEXT, description="Under this folder.")
    after: datetime | None = Field(None, description="Taken on or after (date or datetime).")
    before: datetime | None = Field(None, description="Taken on or before (a date: that day).")
    modified_after: datetime | None = None
    modified_before: datetime | None = None
    label: str | None = Field(None, max_length=MAX_TEXT, description="LABEL or SET:LABEL.")
    min_label_score: float | None = Field(None, ge=0, le=1)
    type: list[str] = Field(default_factory=list, max_length=16, description="JPEG, PNG, …")
    min_width: int | None = Field(None, ge=0, le=2**31)
    min_height: int | None = Field(None, ge=0, le=2**31)
    min_bytes: int | None = Field(None, ge=0, le=2**62)


class SearchRequest(SearchParams):
    """``POST /v1/search``: also negative terms, an indexed image, and their balance."""

    negatives: list[str] = Field(default_factory=list, max_length=MAX_ITEMS)
    image_id: int | None = Field(None, ge=0, description="Search by an indexed image.")
    text_weight: float = Field(1.0, ge=0, le=10, description="Words' share of the query.")
    image_weight: float = Field(1.0, ge=0, le=10, description="The image's share.")


class SimilarParams(SearchParams):
    """``GET /v1/images/{id}/similar``: like search, ``q`` optionally steering with words."""


class LabelOut(BaseModel):
    set: str
    label: str
    score: float


class ImageOut(BaseModel):
    """An indexed image: where it is (relative to the library), its facts and labels."""

    id: int
    path: str
    width: int | None
    height: int | None
    format: str | None
    size: int
    taken_at: LocalTime | None
    modified_at: LocalTime
    labels: list[LabelOut]
    thumbnail_url: str | None
    file_url: str


class SearchHit(ImageOut):
    score: float = Field(description="Cosine similarity to the query.")
    calibrated: float = Field(description="0..1 against this library; 0.5 is the cut-off.")
    relevant: bool = Field(description="Above the cut-off.")


class SearchPage(BaseModel):
    results: list[SearchHit]
    no_good_match: bool = Field(description="Every ranked result is below the cut-off.")
    offset: int
    limit: int
    sort: str
    has_more: bool
    next_offset: int | None = Field(description="The next page's offset (same cached query).")
    relevant: int
    timings_ms: dict[str, float]


class Verdict(BaseModel):
    """One uploaded image's zero-shot verdict."""

    image: str
    label: str | None = Field(description="None: none of the labels fits (abstained).")
    abstained: bool
    score: float
    null_z: float
    probabilities: dict[str, float]


class ClassifyOut(BaseModel):
    labels: list[str]
    results: list[Verdict]


class LabelJobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: list[str] = Field(min_length=1, max_length=MAX_ITEMS)
    templates: list[str] = Field(default_factory=list, max_length=MAX_TEMPLATES)
    name: str = Field(DEFAULT_SET, min_length=1, max_length=128, description="Label set name.")
    probability_threshold: float = Field(
        DEFAULT_PROBABILITY_THRESHOLD, ge=0, le=1, description="Abstain under this probability."
    )
    null_z: float | None = Field(
        DEFAULT_NULL_Z, ge=0, le=100, description="Abstain unless above unrelated text (std devs)."
    )


class JobOut(BaseModel):
    id: str
    kind: str
    state: Literal["running", "done", "failed", "interrupted"]
    target: str
    found: int
    done: int
    failed: int
    fraction: float
    eta_s: float | None
    message: str
    started_at: float
    finished_at: float | None
    url: str


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[str] = Field(default_factory=list, max_length=MAX_ITEMS)


class EmbedOut(BaseModel):
    model_id: str
    dim: int
    texts: list[list[float]] = Field(description="One L2-normalised vector per text.")
    images: list[list[float]] = Field(description="One L2-normalised vector per image.")


class StatusOut(BaseModel):
    name: str
    libraries: list[str]
    images: int
    counts: dict[str, int]
    formats: dict[str, int]
    model_id: str | None
    index_kind: str
    device: str
    label_sets: list[str]
    job: JobOut | None
    read_only: bool


class Health(BaseModel):
    status: Literal["ok"]
