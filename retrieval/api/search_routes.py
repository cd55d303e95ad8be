"""``/search`` (GET and POST) and ``/images/{id}/similar``: the library's Searcher over HTTP.

Pages come from the Searcher's query cache: asking for the next ``offset`` re-encodes nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from retrieval.api import convert
from retrieval.api.deps import base_url, reader, server
from retrieval.api.errors import ApiError
from retrieval.api.payloads import body_schema, decode_uploads, read_body
from retrieval.api.schemas import SearchPage, SearchParams, SearchRequest, SimilarParams
from retrieval.library.handle import Library
from retrieval.search.query import Query as EngineQuery

router = APIRouter(tags=["search"])
ImageId = Annotated[int, Path(ge=0, le=2**63 - 1, description="An indexed image's id.")]


@router.get("/search", response_model=SearchPage, summary="Search in words")
async def search_get(
    request: Request, params: Annotated[SearchParams, Query()],
    library: Library = Depends(reader),
) -> SearchPage:  # fmt: skip
    """Text search (``-word`` pushes a term away) with filters, a page at a time."""
    query = EngineQuery.parse(params.q)
    return convert.page(base_url(request), await convert.run_search(library, query, params))


@router.post(
    "/search", response_model=SearchPage, summary="Search by text, an image, or both",
    openapi_extra=body_schema(SearchRequest, files="image"),
)  # fmt: skip
async def search_post(request: Request, library: Library = Depends(reader)) -> SearchPage:
    """JSON (text, negatives, an indexed ``image_id``, weights, filters) or a multipart form
    with the same fields and one uploaded ``image``."""
    params, uploads = await read_body(request, SearchRequest, files="image")
    if len(uploads) > 1:
        raise ApiError(400, "search with one image at a time")
    if uploads and params.image_id is not None:
        raise ApiError(400, "give an uploaded image or an image_id, not both")
    image = None
    if uploads:
        size, limit = library.encoder.image_size, server(request).max_upload_bytes
        image = (await decode_uploads(uploads, size, limit))[0]
    elif params.image_id is not None:
        library.record(params.image_id)  # 404 for an unknown id
        image = params.image_id
    query = EngineQuery.parse(
        params.q,
        params.negatives,
        image,
        text_weight=params.text_weight,
        image_weight=params.image_weight,
    )
    return convert.page(base_url(request), await convert.run_search(library, query, params))


@router.get("/images/{image_id}/similar", response_model=SearchPage, summary="More like this")
async def similar(
    request: Request, image_id: ImageId, params: Annotated[SimilarParams, Query()],
    library: Library = Depends(reader),
) -> SearchPage:  # fmt: skip
    """Images like an indexed one (its stored vector: nothing is decoded), optionally
    steered with words in ``q``."""
    library.record(image_id)
    query = EngineQuery.parse(params.q, (), image_id)
    return convert.page(base_url(request), await convert.run_search(library, query, params))
