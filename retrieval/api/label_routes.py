"""Zero-shot labels over HTTP: classify uploads, label the whole library as a background job
(``retrieval.service.jobs``), follow the job, and export labels as ``vitrieve export`` writes
them."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from retrieval.api import convert
from retrieval.api.deps import base_url, reader, server, writer
from retrieval.api.errors import ApiError
from retrieval.api.payloads import body_schema, decode_uploads, read_body
from retrieval.api.schemas import (
    MAX_ITEMS,
    MAX_TEMPLATES,
    ClassifyOut,
    JobOut,
    LabelJobRequest,
    Verdict,
)
from retrieval.labels.export import export_string
from retrieval.labels.zeroshot import (
    DEFAULT_NULL_Z,
    DEFAULT_PROBABILITY_THRESHOLD,
    DEFAULT_SET,
    DEFAULT_TEMPLATES,
    ZeroShotClassifier,
    parse_labels,
)
from retrieval.library.handle import Library
from retrieval.service import jobs

router = APIRouter(tags=["labels"])
EXPORT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


class ExportRow(BaseModel):
    """One row of a label export (``retrieval.labels.export``'s columns)."""

    path: str
    label_set: str
    label: str
    score: float


EXPORT_RESPONSES: dict[int | str, dict] = {200: {"content": {
    "text/csv": {"schema": {"type": "string"}},
    "application/json": {"schema": {"type": "array", "items": ExportRow.model_json_schema()}},
}}}  # fmt: skip


class ClassifyForm(BaseModel):
    """``POST /v1/classify``: labels (comma-separated or repeated) and uploaded ``images``."""

    model_config = ConfigDict(extra="forbid")

    labels: list[str] = Field(min_length=1, max_length=MAX_ITEMS)
    templates: list[str] = Field(default_factory=list, max_length=MAX_TEMPLATES)
    probability_threshold: float = Field(
        DEFAULT_PROBABILITY_THRESHOLD, ge=0, le=1, description="Abstain under this probability."
    )
    null_z: float | None = Field(DEFAULT_NULL_Z, ge=0, le=100)


def _labels(values: list[str]) -> list[str]:
    return parse_labels("\n".join(values))


@router.post("/classify", response_model=ClassifyOut, summary="Zero-shot labels for uploads",
             openapi_extra=body_schema(ClassifyForm, files="images", json_body=False))  # fmt: skip
async def classify(request: Request, library: Library = Depends(reader)) -> ClassifyOut:
    """Probabilities over the labels for each uploaded image, or "none of these"."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise ApiError(415, "send a multipart/form-data form with images and labels")
    form, uploads = await read_body(request, ClassifyForm, files="images")
    if not uploads:
        raise ApiError(400, "upload at least one image as 'images'")
    labels = _labels(form.labels)
    size, limit = library.encoder.image_size, server(request).max_upload_bytes
    images = await decode_uploads(uploads, size, limit)

    def run() -> list:
        templates = form.templates or DEFAULT_TEMPLATES
        classifier = ZeroShotClassifier(library.encoder, labels, templates,
                                        form.probability_threshold, form.null_z)  # fmt: skip
        return classifier.classify_images(images)

    verdicts = await run_in_threadpool(run)
    names = [getattr(u, "filename", None) or f"image {n + 1}" for n, u in enumerate(uploads)]
    results = [Verdict(image=name, **v.to_dict()) for name, v in zip(names, verdicts, strict=True)]
    return ClassifyOut(labels=labels, results=results)


def job_out(request: Request, status: jobs.JobStatus) -> JobOut:
    ident = convert.job_id(status)
    return JobOut(
        id=ident, kind=status.kind, state=status.state, target=status.target,  # type: ignore[arg-type]
        found=status.found, done=status.done, failed=status.failed, fraction=status.fraction,
        eta_s=status.eta_s, message=status.message, started_at=status.started_at,
        finished_at=status.finished_at, url=f"{base_url(request)}/jobs/{ident}",
    )  # fmt: skip


@router.post("/labels", response_model=JobOut, status_code=202,
             summary="Label the whole library (a background job)")  # fmt: skip
def label_library(request: Request, body: LabelJobRequest,
                  library: Library = Depends(writer)) -> JobOut:  # fmt: skip
    """Starts labelling every image from its stored vector; follow it at the job's ``url``.
    409 while another job runs on this library."""
    if library.store.read_only:
        raise ApiError(409, "the library is read-only: labels cannot be written")
    if library.count() == 0:
        raise ApiError(409, "the library has no indexed images to label")
    current = jobs.read_status(library.path)
    if current is not None and current.running:
        raise ApiError(409, f"a {current.kind} job is already running on this library")
    status = jobs.start_labeling(library, _labels(body.labels), body.templates or None,
                                 body.name.strip() or DEFAULT_SET, body.probability_threshold,
                                 body.null_z)  # fmt: skip
    return job_out(request, status)


@router.get("/jobs/{job_id}", response_model=JobOut, summary="A job's progress and result")
def job(request: Request, job_id: str, library: Library = Depends(reader)) -> JobOut:
    status = jobs.read_status(library.path)
    if status is None or convert.job_id(status) != job_id:
        raise ApiError(404, "unknown job (the library keeps its latest job only)")
    return job_out(request, status)


@router.get("/labels/export", summary="Every label, as `vitrieve export` writes it",
            responses=EXPORT_RESPONSES)  # fmt: skip
def export(
    format: Annotated[Literal["csv", "json"], Query()] = "csv",
    label_set: Annotated[str | None, Query(alias="set", max_length=128)] = None,
    library: Library = Depends(reader),
) -> Response:  # fmt: skip
    text = export_string(library.label_rows(label_set or None), format)
    return Response(text, media_type=EXPORT_TYPES[format])
