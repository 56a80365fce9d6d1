"""Prometheus metrics: requests and latency per route, time per pipeline stage, and ``GET /metrics``.

Each app gets its own :class:`~prometheus_client.CollectorRegistry` (kept on ``app.state.metrics``), so
several apps in one process (tests, an embedding host) never clash over metric names.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

logger = logging.getLogger(__name__)

# Model work spans milliseconds (tiny models, cache hits) to tens of seconds (long videos on a CPU).
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Paths that match no route share one label, so scanners cannot grow the label set without bound.
UNMATCHED = "<unmatched>"
# Where a middleware that answers before the router (app.api.security) leaves the route template.
ROUTE_TEMPLATE_KEY = "mmsearch.route_template"


class Metrics:
    """The metrics of one app, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "mmsearch_http_requests",
            "HTTP requests by method, route template and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "mmsearch_http_request_duration_seconds",
            "HTTP request latency by method, route template and status.",
            ("method", "route", "status"),
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "mmsearch_stage_seconds",
            "Time spent in one stage of the pipeline (embed, search, hydrate, rerank, ...).",
            ("stage",),
            buckets=_BUCKETS,
            registry=self.registry,
        )

    def observe_stage(self, stage: str, seconds: float) -> None:
        """Record that ``stage`` took ``seconds``."""
        self.stage_seconds.labels(stage=stage).observe(seconds)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP request under its route template."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # an exception that escapes every handler becomes a 500
        start = time.perf_counter()

        async def send_with_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            # The router writes the matched route into the scope; its template (/v1/items/{id}) keeps
            # the label set small where the raw path would not.
            route = getattr(scope.get("route"), "path", None) or scope.get(ROUTE_TEMPLATE_KEY) or UNMATCHED
            labels = {"method": scope.get("method", ""), "route": route, "status": str(status)}
            self.metrics.requests.labels(**labels).inc()
            self.metrics.latency.labels(**labels).observe(time.perf_counter() - start)


def install_metrics(app: Any) -> Metrics:
    """Give ``app`` its metrics and the middleware that records requests (call once, in ``create_app``)."""
    metrics = Metrics()
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return metrics


def metrics_of(app_or_request: Any) -> Metrics | None:
    """The :class:`Metrics` of an app (or of the app serving a request); None if it has none."""
    app = getattr(app_or_request, "app", app_or_request)
    return getattr(getattr(app, "state", None), "metrics", None)


def observe_stage(app_or_request: Any, stage: str, seconds: float) -> None:
    """Record the time one pipeline stage took (``embed``, ``search``, ``hydrate``, ``rerank``, ...).

    Args:
        app_or_request: the FastAPI app, or a request it serves.
        stage: the stage name (a label value: keep the set small and fixed).
        seconds: how long it took.
    """
    metrics = metrics_of(app_or_request)
    if metrics is not None:  # an app built without metrics just does not record
        metrics.observe_stage(stage, seconds)


router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics_endpoint(request: Request) -> Response:
    """Prometheus metrics in the text exposition format (needs the API key when one is set)."""
    metrics = metrics_of(request)
    body = metrics.exposition() if metrics is not None else b""
    return Response(body, media_type=CONTENT_TYPE_LATEST)
