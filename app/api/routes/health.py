"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from app.api.errors import error_body
from app.api.security import require_api_key

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, str]:
    """The process is up (no auth: for load balancers and orchestrators)."""
    return {"status": "ok"}


@router.get("/ready", dependencies=[Depends(require_api_key)])
def ready(request: Request) -> JSONResponse:
    """Models loaded and the store reachable; 503 otherwise."""
    services = getattr(request.app.state, "services", None)
    if services is None:
        return JSONResponse(error_body(503, "NotReady", "models are still loading"), status_code=503)
    try:
        units = services.store.count()
    except Exception as exc:  # the store is the one part that can go away at runtime
        return JSONResponse(error_body(503, "NotReady", f"the vector store is not reachable: {exc}"), 503)
    return JSONResponse(
        {
            "status": "ready",
            "embedder": services.embedder.name,
            "reranker": getattr(services.reranker, "model_name", None),
            "rerankers": list(services.rerankers()),
            "units": units,
        }
    )
