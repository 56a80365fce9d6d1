"""POST /v1/search (JSON) and POST /v1/search/upload (multipart, for an image file)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from pydantic import ValidationError

from app.api.batcher import get_batcher
from app.api.inputs import client_content
from app.api.metrics import observe_stage
from app.api.schemas.search import Filters, HitGroup, SearchHit, SearchRequest, SearchResponse
from app.api.services import Services, get_services, run_model
from core.content import Content
from core.errors import InvalidInputError, MediaTooLargeError
from retriever import Hit, Retriever, SearchFilters, timed

router = APIRouter(prefix="/v1", tags=["search"])


def retriever_of(services: Services) -> Retriever:
    """The services' retriever, built on first use."""
    if "retriever" not in services.extras:
        services.extras["retriever"] = Retriever.from_settings(
            services.settings,
            services.store,
            services.media,
            services.embedder,
            services.reranker,
            services.text_embedder,
        )
    return services.extras["retriever"]


async def _search(
    request: Request, services: Services, content: Content, filters: Filters, body: SearchRequest
) -> SearchResponse:
    settings = services.settings
    if body.k > settings.max_search_k:
        raise InvalidInputError(f"k={body.k} is over the limit of {settings.max_search_k} candidates")
    wanted = SearchFilters(
        modalities=tuple(filters.modalities),
        doc_ids=tuple(filters.doc_ids),
        source_prefix=filters.source_prefix,
        tags=tuple(filters.tags),
        ingested_after=filters.ingested_after,
        ingested_before=filters.ingested_before,
    )
    batcher, name = None, None
    if body.rerank and services.reranker is not None:
        # Picked before any model work, so an unknown reranker name costs nothing (404).
        name, batcher = get_batcher(
            services, body.reranker, observe=lambda stage, s: observe_stage(request.app, stage, s)
        )
    retriever = retriever_of(services)
    group_size = body.group_size if body.group_by else None
    candidates = await run_model(
        services, retriever.recall, content, wanted, k=body.k, legs=body.legs, group_size=group_size
    )
    scores = None
    if batcher is not None and candidates.points:
        # Reading pictures is I/O: a worker thread, not the model thread. The rerank goes through the
        # batcher, so concurrent searches (and /v1/rerank calls) share forward passes.
        documents = await anyio.to_thread.run_sync(retriever.hydrate, candidates, batcher.reranker)
        with timed(candidates.timings_ms, "rerank"):
            scored = await batcher.score(candidates.query, documents, body.instruction or None)
        scores = scored.scores
    result = retriever.order(candidates, scores, body.top_n, group_size=group_size, min_score=body.min_score)
    # The hits' matches: a small words file read per hit, so on a worker thread.
    result = await anyio.to_thread.run_sync(retriever.highlight, result, candidates)
    for stage, ms in result.timings_ms.items():
        observe_stage(request, stage, ms / 1000)
    position = {h.unit_id: i for i, h in enumerate(result.hits)}
    return SearchResponse(
        hits=[_hit(request, h, h.unit_id in candidates.degraded) for h in result.hits],
        candidates=result.candidates,
        timings_ms=result.timings_ms,
        reranker=name if scores is not None else None,
        legs=list(result.legs),
        groups=[HitGroup(doc_id=g.doc_id, hits=[position[h.unit_id] for h in g.hits]) for g in result.groups]
        if group_size is not None
        else None,
        warnings=candidates.warnings,
    )


def _hit(request: Request, hit: Hit, degraded: bool = False) -> SearchHit:
    def url(kind: str, **params: Any) -> str:
        return str(request.url_for(f"unit_{kind}", unit_id=hit.unit_id, **params).path)

    # The shared fields are copied by name; media-store references become URLs of this API.
    shared = {name: value for name, value in asdict(hit).items() if name in SearchHit.model_fields}
    return SearchHit(
        **shared,
        image_url=url("image") if hit.image else None,
        thumbnail_url=url("thumbnail") if hit.thumbnail else None,
        frame_count=len(hit.frames),
        frame_urls=[url("frame", index=i) for i in range(len(hit.frames))],
        source_url=str(request.url_for("document_source", doc_id=hit.doc_id).path) if hit.doc_id else "",
        degraded=degraded,
    )


@router.post("/search", response_model=SearchResponse)
async def search(
    request: Request, body: SearchRequest, services: Annotated[Services, Depends(get_services)]
) -> SearchResponse:
    """Search the index with text, an image (base64 or allowlisted URL), both, or a video."""
    query = body.query if isinstance(body.query, str) else body.query.model_dump(exclude_none=True)
    # A URL is fetched while reading the query: on a worker thread, never on the event loop.
    content = await anyio.to_thread.run_sync(
        lambda: client_content(
            query,
            services.settings.client_media_policy(),
            where="query",
            max_chars=services.settings.max_query_chars,
        )
    )
    return await _search(request, services, content, body.filters, body)


@router.post("/search/upload", response_model=SearchResponse)
async def search_upload(
    request: Request,
    services: Annotated[Services, Depends(get_services)],
    image: Annotated[UploadFile | None, File(description="An image to search with.")] = None,
    text: Annotated[str | None, Form()] = None,
    k: Annotated[int, Form(ge=1)] = 50,
    top_n: Annotated[int, Form(ge=1, le=1000)] = 10,
    rerank: Annotated[bool, Form()] = True,
    instruction: Annotated[str | None, Form(max_length=1000)] = None,
    reranker: Annotated[str | None, Form(max_length=200, description="GET /v1/models names them")] = None,
    modalities: Annotated[str | None, Form(description="Comma-separated: page,image,video,text")] = None,
    tags: Annotated[str | None, Form(description="Comma-separated tags")] = None,
    legs: Annotated[str | None, Form(description="Comma-separated recall legs: content,text,bm25")] = None,
    group_by: Annotated[str | None, Form(description="'document' to group hits by document")] = None,
    group_size: Annotated[int, Form(ge=1, le=100)] = 3,
    min_score: Annotated[float | None, Form(ge=0.0, le=1.0)] = None,
) -> SearchResponse:
    """The same search as a multipart form, so a browser or curl can upload the query image."""
    settings = services.settings
    value: dict[str, Any] = {}
    if text:
        value["text"] = text
    if image is not None:
        limit = settings.client_media_policy().max_bytes
        data = await image.read(limit + 1)
        if len(data) > limit:
            raise MediaTooLargeError(f"query image: over the {limit}-byte limit")
        value["image"] = data
    content = client_content(
        value, settings.client_media_policy(), where="query", max_chars=settings.max_query_chars
    )
    filters = Filters(modalities=_split(modalities), tags=_split(tags))
    try:
        body = SearchRequest(
            query=text or "",
            k=k,
            top_n=top_n,
            rerank=rerank,
            instruction=instruction,
            reranker=reranker,
            legs=_split(legs) or None,
            group_by=group_by or None,
            group_size=group_size,
            min_score=min_score,
        )
    except ValidationError as exc:  # a bad leg or group_by in the form: 422 with the reason
        reasons = [f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e['input']!r})" for e in exc.errors()]
        raise InvalidInputError("; ".join(reasons)) from None
    return await _search(request, services, content, filters, body)


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]
