"""``POST /v1/rerank`` (and ``POST /v2/rerank``): the Cohere/Jina rerank API over the loaded rerankers.

Both paths run the same handler: ``cohere.Client`` (v1) posts to ``/v1/rerank`` and ``cohere.ClientV2``
to ``/v2/rerank``, and each parses the other's response shape as well, so one handler serves both
(only ``meta.api_version`` differs). The ``model`` field picks a loaded reranker by name (``GET
/v1/models`` lists them); empty means the default, and an unknown name is 404. Limits: more than
``max_rerank_documents`` documents is 413 (the request is too large, not malformed); text over
``max_query_chars`` is 422; an empty ``documents`` list is ``results: []``.
"""

from __future__ import annotations

import logging
import math
import time
import uuid

import anyio
from fastapi import APIRouter, HTTPException, Request

from app.api.batcher import get_batcher
from app.api.inputs import client_content
from app.api.metrics import observe_stage
from app.api.schemas.rerank import (
    ApiVersion,
    BilledUnits,
    ModelInfo,
    ModelList,
    RerankMeta,
    RerankRequest,
    RerankResponse,
    RerankResult,
    TokenUsage,
    echo_document,
)
from app.api.services import Services, get_services
from core.errors import InvalidInputError, MMSearchError

logger = logging.getLogger(__name__)

router = APIRouter(tags=["rerank"])

_ERRORS = {
    401: {"description": "No API key (when the server has one)."},
    403: {"description": "Wrong API key."},
    404: {"description": "`model` names no loaded reranker (the message lists them)."},
    413: {"description": "More documents than MMSEARCH_MAX_RERANK_DOCUMENTS, or media too large."},
    415: {"description": "A media format that cannot be read."},
    422: {"description": "Malformed request: empty query, bad base64, a path or refused URL, text too long."},
    503: {"description": "The models are still loading, or no reranker is configured."},
}


async def _rerank(body: RerankRequest, request: Request, services: Services, version: str) -> RerankResponse:
    settings = services.settings
    if services.reranker is None:
        raise HTTPException(503, "this server has no reranker loaded")
    # The model is checked first: an unknown name costs nothing, whatever the documents hold.
    name, batcher = get_batcher(
        services, body.model, observe=lambda stage, s: observe_stage(request.app, stage, s)
    )
    count = len(body.documents)
    if count > settings.max_rerank_documents:
        raise HTTPException(
            413,
            f"{count} documents; the limit is {settings.max_rerank_documents} per request "
            "(MMSEARCH_MAX_RERANK_DOCUMENTS): split them into several requests",
        )
    if body.instruction is not None and len(body.instruction) > settings.max_query_chars:
        raise InvalidInputError(
            f"instruction has {len(body.instruction)} characters; the limit is {settings.max_query_chars}"
        )
    policy = settings.client_media_policy()
    limit = settings.max_query_chars

    def content(value: object, where: str):
        raw = value if isinstance(value, str) else value.model_dump(exclude_none=True)  # type: ignore[attr-defined]
        try:
            return client_content(raw, policy, where=where, max_chars=limit)
        except MMSearchError as exc:
            # Errors from fetching a URL do not say which item they were about; the client needs that.
            message = str(exc)
            if message.startswith(where) and not message[len(where) : len(where) + 1].isdigit():
                raise  # already names it ("document 1", not "document 10")
            raise exc.within(where) from exc

    # Validated before any model work, so a bad document fails fast and costs nothing; media that
    # arrives as a URL is fetched here, on a worker thread, not on the event loop.
    query = await anyio.to_thread.run_sync(content, body.query, "query")
    documents = await anyio.to_thread.run_sync(
        lambda: [content(doc, f"document {i}") for i, doc in enumerate(body.documents)]
    )
    start = time.perf_counter()
    scored = await batcher.score(query, documents, body.instruction or None)
    observe_stage(request, "rerank", time.perf_counter() - start)

    # Best first; ties keep input order (sorted is stable), like Reranker.rank.
    order = sorted(range(count), key=lambda i: -scored.scores[i])[: body.top_n]
    results = [
        RerankResult(
            index=i,
            relevance_score=scored.scores[i],
            document=echo_document(body.documents[i]) if body.return_documents else None,
        )
        for i in order
    ]
    return RerankResponse(
        id=str(uuid.uuid4()),
        model=name,
        results=results,
        meta=RerankMeta(
            api_version=ApiVersion(version=version),
            billed_units=BilledUnits(search_units=max(1, math.ceil(count / 100))),
            tokens=TokenUsage(input_tokens=scored.input_tokens),
        ),
    )


@router.get("/v1/models", response_model=ModelList)
async def models(request: Request) -> ModelList:
    """The loaded rerankers, the default first: the names `model` (rerank) and `reranker` (search) take."""
    loaded = get_services(request).rerankers()
    return ModelList(
        data=[
            ModelInfo(
                id=name,
                model=str(getattr(r, "model_name", "")),
                backend=getattr(r, "backend", ""),
                default=n == 0,
            )
            for n, (name, r) in enumerate(loaded.items())
        ]
    )


@router.post("/v1/rerank", response_model=RerankResponse, response_model_exclude_none=True, responses=_ERRORS)
async def rerank_v1(body: RerankRequest, request: Request) -> RerankResponse:
    """Rank documents (text, images, video) by relevance to a query, best first (Cohere/Jina compatible).

    Concurrent requests are scored together in shared forward passes.
    """
    return await _rerank(body, request, get_services(request), "1")


@router.post("/v2/rerank", response_model=RerankResponse, response_model_exclude_none=True, responses=_ERRORS)
async def rerank_v2(body: RerankRequest, request: Request) -> RerankResponse:
    """The same as ``POST /v1/rerank``, at the path ``cohere.ClientV2`` posts to."""
    return await _rerank(body, request, get_services(request), "2")
