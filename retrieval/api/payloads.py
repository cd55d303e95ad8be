"""Request bodies that are JSON or multipart (with image uploads), and their OpenAPI entries.

FastAPI describes one body type per route; search, embed and classify take JSON or a form
with files, so they read the request here and describe both in ``body_schema``. Uploads are
size-checked (413) and decoded by ``retrieval.service.uploads`` (the indexer's safe decoder).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from PIL import Image
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from encoders.errors import VitrieveError
from retrieval.api.errors import ApiError, clean
from retrieval.service.uploads import decode_upload

M = TypeVar("M", bound=BaseModel)
MAX_FILES = 8
LIST_FIELDS = ("type", "negatives", "texts", "labels", "templates")


def body_schema(model: type[BaseModel], files: str | None, json_body: bool = True) -> dict:
    """``openapi_extra`` for a route whose body is ``model`` as JSON and/or as a form whose
    ``files`` field holds uploaded images."""
    schema = model.model_json_schema()
    content: dict[str, Any] = {}
    if json_body:
        content["application/json"] = {"schema": schema}
    if files is not None:
        form = {**schema, "properties": {**schema.get("properties", {}),
                files: {"type": "array", "items": {"type": "string", "format": "binary"},
                        "maxItems": MAX_FILES}}}  # fmt: skip
        content["multipart/form-data"] = {"schema": form}
    return {"requestBody": {"required": True, "content": content}}


def _invalid(exc: ValidationError) -> ApiError:
    detail = [{"loc": [str(p) for p in e["loc"]], "msg": clean(e["msg"])} for e in exc.errors()]
    return ApiError(422, "invalid request", detail)


async def read_body(request: Request, model: type[M], files: str | None) -> tuple[M, list]:
    """The request as ``model`` and its uploaded files (multipart), or from JSON (no files)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if files is not None and kind == "multipart/form-data":
        return await _read_form(request, model, files)
    if kind not in ("application/json", ""):
        raise ApiError(415, f"send application/json{' or multipart/form-data' if files else ''}")
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the body is not valid JSON") from None
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        raise _invalid(exc) from None


async def _read_form(request: Request, model: type[M], files: str) -> tuple[M, list]:
    try:
        form = await request.form(max_files=MAX_FILES, max_fields=256)
    except ApiError:
        raise
    except Exception as exc:  # malformed multipart, too many parts
        raise ApiError(400, f"unreadable form: {clean(str(exc))[:200]}") from None
    fields: dict[str, Any] = {}
    uploads = []
    for key, value in form.multi_items():
        if isinstance(value, UploadFile) or key == files:
            uploads.append(value)
        elif key in LIST_FIELDS:
            fields.setdefault(key, []).append(value)
        elif key in fields:
            raise ApiError(422, f"field {clean(key)[:64]!r} given twice")
        else:
            fields[key] = value
    try:
        return model.model_validate({k: v for k, v in fields.items() if v != ""}), uploads
    except ValidationError as exc:
        raise _invalid(exc) from None


async def decode_uploads(uploads: list, target_size: int, max_bytes: int) -> list[Image.Image]:
    """Each upload decoded safely: 413 over the size limit, 400 when it is not an image."""
    images, total = [], 0
    for n, upload in enumerate(uploads):
        if not isinstance(upload, UploadFile):
            raise ApiError(400, f"upload {n + 1} is not a file")
        data = await upload.read(max_bytes + 1)
        total += len(data)
        name = clean(upload.filename or f"upload {n + 1}")[:100]
        if len(data) > max_bytes or total > max_bytes:
            raise ApiError(413, f"{name}: over the {max_bytes:,}-byte upload limit")
        try:  # decoding is CPU work: off the event loop
            images.append(await run_in_threadpool(decode_upload, data, target_size, max_bytes,
                                                  name=name))  # fmt: skip
        except VitrieveError as exc:
            raise ApiError(400, clean(str(exc))) from None
    return images
