"""``/images/{id}``, its thumbnail and its file: only files that are in the library.

Files go through ``Library.file_path`` and ``thumbnail_path``, which refuse ids without a row,
rows whose path is absolute, has ``..``, or resolves (symlinks) outside the library.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import FileResponse

from encoders.errors import VitrieveError
from retrieval.api import convert
from retrieval.api.deps import base_url, reader
from retrieval.api.errors import ApiError
from retrieval.api.schemas import ImageOut
from retrieval.library.handle import Library

router = APIRouter(tags=["images"])
ImageId = Annotated[int, Path(ge=0, le=2**63 - 1, description="An indexed image's id.")]
MEDIA_TYPES = {
    "JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif",
    "BMP": "image/bmp", "TIFF": "image/tiff", "HEIF": "image/heif", "HEIC": "image/heic",
    "AVIF": "image/avif",
}  # fmt: skip
FILE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; sandbox",  # never a page, even if it were
    "Cache-Control": "private, max-age=3600",
}
IMAGE_RESPONSES: dict[int | str, dict] = {
    200: {"content": {"image/*": {"schema": {"type": "string", "format": "binary"}}}}
}


@router.get("/images/{image_id}", response_model=ImageOut, summary="An image's facts and labels")
def image_info(request: Request, image_id: ImageId, library: Library = Depends(reader)) -> ImageOut:
    record = library.record(image_id)
    if record.status != "indexed":
        raise ApiError(404, f"image {image_id} is not indexed")
    labels = library.labels([record.id]).get(record.id, [])
    return convert.image(base_url(request), record, labels)


@router.get("/images/{image_id}/thumbnail", response_class=FileResponse,
            responses=IMAGE_RESPONSES, summary="An image's thumbnail (WebP)")  # fmt: skip
def thumbnail(image_id: ImageId, library: Library = Depends(reader)) -> FileResponse:
    path = library.thumbnail_path(image_id)
    if path is None:
        raise ApiError(404, f"image {image_id} has no thumbnail")
    return FileResponse(path, media_type="image/webp", headers=FILE_HEADERS)


@router.get("/images/{image_id}/file", response_class=FileResponse,
            responses=IMAGE_RESPONSES, summary="An image's original file")  # fmt: skip
def original(image_id: ImageId, library: Library = Depends(reader)) -> FileResponse:
    record = library.record(image_id)
    if record.status != "indexed":
        raise ApiError(404, f"image {image_id} is not indexed")
    try:
        path = library.file_path(image_id)
    except VitrieveError:  # unsafe or missing: the row's path is not repeated to the caller
        raise ApiError(404, f"image {image_id} has no file in the library") from None
    media = MEDIA_TYPES.get((record.format or "").upper(), "application/octet-stream")
    return FileResponse(path, media_type=media, headers=FILE_HEADERS)
