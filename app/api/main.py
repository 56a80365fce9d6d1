"""The FastAPI application: ``create_app()`` builds it; ``mmsearch serve`` runs it with uvicorn."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from app.api.errors import install_error_handlers
from app.api.metrics import install_metrics
from app.api.metrics import router as metrics_router
from app.api.routes import health
from app.api.routes.docs import install_docs
from app.api.security import RequestGuard, require_api_key
from app.api.services import Services
from core.settings import Settings

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    """Build the API.

    Args:
        settings: defaults to ``Settings()`` (the environment).
        services: already loaded parts (tests pass tiny models); when None the lifespan loads them
            from the settings and closes them at shutdown.
    """
    settings = settings or (services.settings if services else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import anyio

        owned = services is None
        loaded = services or await anyio.to_thread.run_sync(Services.load, settings)
        app.state.services = loaded
        from app.api.jobs import jobs_for

        resumed = jobs_for(loaded).resume()  # uploads a stopped or killed server left unfinished
        if resumed:
            logger.info("resumed %d unfinished ingestion jobs", len(resumed))
        logger.info("mmsearch API ready")
        try:
            yield
        finally:
            app.state.services = None
            if owned:
                loaded.close()

    app = FastAPI(
        title="mmsearch",
        summary="Two-stage multimodal search: Qdrant recall, Qwen3-VL reranking.",
        version="0.1.0",
        lifespan=lifespan,
        # FastAPI's own docs pages load Swagger UI from a CDN; ours (install_docs) serve it themselves.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.api_docs else None,
    )
    app.state.settings = settings
    app.state.services = None
    install_error_handlers(app)
    # Added before the metrics middleware, so it runs inside it: refused requests are counted too.
    app.add_middleware(RequestGuard, settings=settings)
    install_metrics(app)
    if settings.api_docs:
        install_docs(app)
    app.include_router(health.router)
    protected = [Depends(require_api_key)]
    app.include_router(metrics_router, dependencies=protected)
    for router in _feature_routers():
        app.include_router(router, dependencies=protected)
    return app


def _feature_routers() -> list:
    """The /v1 routers (each feature module exposes ``router``)."""
    from app.api.routes import v1_routers

    return v1_routers()
