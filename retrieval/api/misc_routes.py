"""``/embed`` (vectors for integrators' own stores) and ``/status`` of a library."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from encoders.runtime.device import describe
from retrieval.api.deps import handle, reader, server
from retrieval.api.errors import ApiError
from retrieval.api.label_routes import job_out
from retrieval.api.payloads import body_schema, decode_uploads, read_body
from retrieval.api.schemas import EmbedOut, EmbedRequest, StatusOut
from retrieval.library.handle import Library
from retrieval.service import jobs

router = APIRouter(tags=["library"])


@router.post("/embed", response_model=EmbedOut, summary="L2-normalised vectors of texts/images",
             openapi_extra=body_schema(EmbedRequest, files="images"))  # fmt: skip
async def embed(request: Request, library: Library = Depends(reader)) -> EmbedOut:
    """JSON ``{"texts": [...]}``, or a form with ``texts`` fields and ``images`` files: one
    vector per input, in the library's embedding space (the model that indexed it)."""
    body, uploads = await read_body(request, EmbedRequest, files="images")
    if not body.texts and not uploads:
        raise ApiError(400, "nothing to embed: give texts and/or images")
    encoder = library.encoder
    images = await decode_uploads(uploads, encoder.image_size, server(request).max_upload_bytes)

    def run() -> tuple[list, list]:
        texts = encoder.encode_texts(body.texts).tolist() if body.texts else []
        pictures = encoder.encode_images(images).tolist() if images else []
        return texts, pictures

    texts, pictures = await run_in_threadpool(run)
    return EmbedOut(model_id=encoder.model_id, dim=encoder.embed_dim, texts=texts, images=pictures)


@router.get("/status", response_model=StatusOut, summary="What the library holds")
def status(request: Request, library: Library = Depends(reader)) -> StatusOut:
    stats = library.stats()
    job = jobs.read_status(library.path)
    active = library.manifest.active is not None  # then the server loaded its model at start
    device = describe(library.encoder.device) if active else library.device
    return StatusOut(
        name=handle(request).name, libraries=list(server(request).libraries.by_name),
        images=stats.vectors, counts=stats.counts, formats=stats.formats,
        model_id=stats.model_id, index_kind=stats.index_kind, device=device,
        label_sets=stats.label_sets, job=job_out(request, job) if job else None,
        read_only=library.store.read_only,
    )  # fmt: skip
