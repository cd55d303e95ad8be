"""Every error leaves as JSON ``{"error": "...", "detail": ...}``: 4xx for bad input, with the
engine's one-line message; a 5xx says only that the server failed (its log has the traceback)
and never names a path."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from encoders.errors import VitrieveError
from retrieval.api.libraries import LibraryUnavailable

log = logging.getLogger(__name__)

MAX_MESSAGE = 500


class ApiError(Exception):
    """An HTTP error with a status code, a short message and optional structured detail."""

    def __init__(self, status: int, error: str, detail: Any = None,
                 headers: dict[str, str] | None = None) -> None:  # fmt: skip
        super().__init__(error)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers


def bad_request(exc: VitrieveError) -> ApiError:
    """The engine refused the input: 404 for an unknown id, else 400."""
    message = clean(str(exc))
    status = 404 if message.startswith("unknown image id") else 400
    return ApiError(status, message)


def clean(message: str) -> str:
    """One printable line, capped (messages may echo user input)."""
    text = "".join(c if c.isprintable() else " " for c in message)
    return text[:MAX_MESSAGE]


def error_body(error: str, detail: Any = None) -> dict[str, Any]:
    return {"error": error, "detail": detail}


def _respond(status: int, error: str, detail: Any = None, headers=None) -> JSONResponse:
    return JSONResponse(error_body(error, detail), status_code=status, headers=headers)


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _respond(exc.status, exc.error, exc.detail, exc.headers)


async def _vitrieve_error(_request: Request, exc: Exception) -> JSONResponse:
    error = bad_request(exc)  # type: ignore[arg-type]
    return _respond(error.status, error.error)


async def _validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": clean(str(e.get("msg", "")))}
        for e in exc.errors()
    ]
    return _respond(422, "invalid request", detail)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return _respond(exc.status_code, clean(str(exc.detail)), None, exc.headers)


async def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
    return _respond(503, f"library {clean(str(exc))[:64]!r} is unavailable; see the server log")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _respond(500, "internal server error")


def install(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app``."""
    app.add_exception_handler(LibraryUnavailable, _unavailable)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(VitrieveError, _vitrieve_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
