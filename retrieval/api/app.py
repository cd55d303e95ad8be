"""The FastAPI application: every route under ``/v1`` (the first library) and again under
``/v1/libraries/{name}`` (each library by name), plus ``/healthz``, ``/metrics``, the OpenAPI
schema (``/openapi.json``) and its interactive page (``/docs``).

``create_app`` takes opened libraries (tests, the CLI); ``app_from_env`` rebuilds the same app
in each worker process from the settings ``vitrieve serve`` put in ``VITRIEVE_SERVE`` (uvicorn
starts several workers from an import string, not from an object).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from fastapi.routing import APIRoute

from encoders.runtime.device import DEFAULT_DEVICE
from retrieval.api import errors, image_routes, label_routes, misc_routes, search_routes
from retrieval.api.deps import ServerState, any_reader, library_name
from retrieval.api.libraries import Libraries
from retrieval.api.metrics import Metrics, MetricsMiddleware
from retrieval.api.middleware import BodyLimit, SecurityHeaders
from retrieval.api.schemas import ErrorBody, Health
from retrieval.service.serving import DEFAULT_SERVING, configure_serving
from retrieval.service.uploads import MAX_UPLOAD_BYTES

ENV_SETTINGS = "VITRIEVE_SERVE"
FORM_OVERHEAD = 256 * 1024  # multipart boundaries and fields around the images
ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 415, 422, 503)}
API_ROUTERS = (search_routes.router, image_routes.router, label_routes.router, misc_routes.router)


@dataclass
class ServeSettings:
    """What ``vitrieve serve`` was asked for (JSON-able: it travels to worker processes)."""

    libraries: list[tuple[str, str]]  # (name, library path), the first is the default
    device: str = DEFAULT_DEVICE
    require_auth: bool = False  # listening beyond loopback: keys are always required
    cors_origins: list[str] = field(default_factory=list)
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    compile: bool = False  # the encoder's towers compiled (ServingConfig.compile)


def _unique_id(prefix: str):
    def generate(route: APIRoute) -> str:
        return f"{prefix}{route.name}"

    return generate


def _v1(app: FastAPI) -> None:
    """Every API router at ``/v1`` and at ``/v1/libraries/{name}``."""
    for router in API_ROUTERS:
        app.include_router(router, prefix="/v1", responses=ERRORS,
                           generate_unique_id_function=_unique_id(""))  # fmt: skip
        app.include_router(router, prefix="/v1/libraries/{name}", responses=ERRORS,
                           dependencies=[Depends(library_name)],
                           generate_unique_id_function=_unique_id("named_"))  # fmt: skip


def _server_routes(metrics: Metrics) -> APIRouter:
    router = APIRouter(tags=["server"])

    @router.get("/healthz", response_model=Health, summary="Liveness (no key needed)")
    def healthz() -> Health:
        return Health(status="ok")

    @router.get("/v1/libraries", response_model=dict[str, int], responses=ERRORS,
                summary="Served libraries and their image counts",
                dependencies=[Depends(any_reader)])  # fmt: skip
    def libraries(request: Request) -> dict[str, int]:
        served = request.app.state.vitrieve.libraries.by_name
        return {name: item.current().count() for name, item in served.items()}

    @router.get("/metrics", summary="Prometheus metrics", dependencies=[Depends(any_reader)],
                responses={**ERRORS, 200: {"content": {"text/plain": {"schema": {
                    "type": "string"}}}}})  # fmt: skip
    def prometheus(request: Request) -> Response:
        served = request.app.state.vitrieve.libraries.by_name
        body, kind = metrics.exposition({n: h.current().count() for n, h in served.items()})
        return Response(body, media_type=kind)

    return router


def create_app(libraries: Libraries, settings: ServeSettings) -> FastAPI:
    """The application over already opened ``libraries``."""
    app = FastAPI(
        title="vitrieve", version="1", summary="Search your photos in words over HTTP.",
        description="Text and image search, similar images, zero-shot labels, embeddings. "
        "See docs/api.md for authentication and a walk-through.",
    )  # fmt: skip
    app.state.vitrieve = ServerState(libraries, settings.require_auth, settings.max_upload_bytes)
    metrics = Metrics()
    errors.install(app)
    _v1(app)
    app.include_router(_server_routes(metrics))
    app.add_middleware(SecurityHeaders)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])  # fmt: skip
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes + FORM_OVERHEAD)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def open_app(settings: ServeSettings) -> FastAPI:
    """Configure this process for serving, open the libraries, build the app."""
    serving = configure_serving(replace(DEFAULT_SERVING, compile=settings.compile))
    specs = [(name, Path(path)) for name, path in settings.libraries]
    return create_app(Libraries.open(specs, settings.device, serving.compile), settings)


def settings_to_env(settings: ServeSettings) -> None:
    os.environ[ENV_SETTINGS] = json.dumps(asdict(settings))


def app_from_env() -> FastAPI:
    """uvicorn's factory in each worker process (``vitrieve serve --workers N``)."""
    raw = json.loads(os.environ[ENV_SETTINGS])
    raw["libraries"] = [tuple(item) for item in raw["libraries"]]
    return open_app(ServeSettings(**raw))
