"""Prometheus metrics of the HTTP API: requests by route and status, latency by route, and
the images each library holds (``GET /metrics``, text exposition format)."""

from __future__ import annotations

import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """One registry per app (tests start several apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("vitrieve_http_requests", "HTTP requests answered",
                                ("method", "route", "status"), registry=self.registry)  # fmt: skip
        self.latency = Histogram("vitrieve_http_request_seconds", "Time to answer a request",
                                 ("route",), buckets=BUCKETS, registry=self.registry)  # fmt: skip
        self.images = Gauge("vitrieve_library_images", "Searchable images", ("library",),
                            registry=self.registry)  # fmt: skip

    def exposition(self, counts: dict[str, int]) -> tuple[bytes, str]:
        """The current metrics (library sizes refreshed now) and their content type."""
        for name, count in counts.items():
            self.images.labels(library=name).set(count)
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts and times every HTTP request under its route template (bounded label values)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = [500]

        async def observe(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            route = _route(scope, status[0])
            self.metrics.requests.labels(scope["method"], route, str(status[0])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - began)


def _route(scope: Scope, status: int) -> str:
    """The route template (``/images/{image_id}``); the path itself for the few plain routes
    (``/docs``, ``/openapi.json``); ``unmatched`` for everything else (no unbounded labels)."""
    route = getattr(scope.get("route"), "path", None)
    if route:
        return route
    return scope["path"] if status < 400 else "unmatched"
