"""Request and response bodies of /v1/search."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import TextRequest


class QueryContent(BaseModel):
    """A query: any of text, an image and a video (base64, a data: URI, or an allowlisted URL)."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = None
    image: str | None = Field(None, description="base64, a data: URI, or an http(s) URL on an allowed host")
    video: str | None = Field(None, description="base64, a data: URI, or an http(s) URL on an allowed host")


class Filters(BaseModel):
    """What to search in; empty fields match everything."""

    model_config = ConfigDict(extra="forbid")

    modalities: list[str] = Field(default_factory=list, description="page, image, video, text")
    doc_ids: list[str] = Field(default_factory=list)
    source_prefix: str | None = Field(None, description="A folder (all files below it) or one file path.")
    tags: list[str] = Field(default_factory=list, description="Units with any of these tags.")
    ingested_after: datetime | None = None
    ingested_before: datetime | None = None


class SearchRequest(TextRequest):
    """A two-stage search (every string checked for lone surrogates: see ``TextRequest``)."""

    model_config = ConfigDict(extra="forbid")

    query: str | QueryContent
    filters: Filters = Field(default_factory=Filters)
    k: int = Field(50, ge=1, description="First-stage candidates (at most MMSEARCH_MAX_SEARCH_K).")
    top_n: int = Field(10, ge=1, le=1000, description="Hits returned.")
    rerank: bool = Field(True, description="False returns the first-stage order.")
    instruction: str | None = Field(None, max_length=1000, description="Reranker task instruction.")
    reranker: str | None = Field(
        None, max_length=200, description="Which loaded reranker (GET /v1/models); empty: the default."
    )
    legs: list[Literal["content", "text", "bm25"]] | None = Field(
        None,
        min_length=1,
        description="Recall legs to fuse (content, text, bm25), where the collection has them; "
        "empty: MMSEARCH_SEARCH_LEGS.",
    )
    group_by: Literal["document"] | None = Field(
        None, description="'document': top_n documents, each with up to group_size hits."
    )
    group_size: int = Field(3, ge=1, le=100, description="Most hits per document when grouping.")
    min_score: float | None = Field(
        None, ge=0.0, le=1.0, description="Drop reranked hits scored below this (ignored without reranking)."
    )


class Highlight(BaseModel):
    """Where the query matched on a hit's page or picture."""

    text: str = Field(description="The matched words as the page's text layer or OCR has them.")
    box: list[float] = Field(
        min_length=4,
        max_length=4,
        description="[x0, y0, x1, y1], normalised to the page or image (0..1, origin top left): "
        "multiply by the width and height of image_url's or thumbnail_url's picture.",
    )
    kind: Literal["term", "phrase"] = Field(
        description="term: a word the keyword leg matches to the query (the bm25 model's tokens and "
        "stems; stop-words never match); phrase: two or more consecutive query words found word for "
        "word (one box per line it takes)."
    )


class SnippetSpan(BaseModel):
    """A match in the hit's snippet: ``snippet[start:end]`` (offsets in Unicode code points)."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    kind: Literal["term", "phrase"]


class SearchHit(BaseModel):
    """One hit, with both stages' scores and links to its pictures."""

    unit_id: str
    doc_id: str
    rank: int
    first_stage_rank: int
    first_stage_score: float
    rerank_score: float | None
    modality: str
    title: str
    source: str
    snippet: str
    page: int | None = None
    start_s: float | None = None
    end_s: float | None = None
    tags: list[str] = Field(default_factory=list)
    image_url: str | None = None
    thumbnail_url: str | None = None
    frame_count: int = 0
    frame_urls: list[str] = Field(
        default_factory=list, description="Keyframes of a video hit, in time order."
    )
    frame_times: list[float] = Field(
        default_factory=list, description="Seconds into the video, per keyframe."
    )
    source_url: str = Field("", description="The document's source file (e.g. to play a video from start_s).")
    degraded: bool = Field(
        False, description="Its picture could not be read at search time, so it was reranked by its text."
    )
    highlights: list[Highlight] = Field(
        default_factory=list,
        description="The query's matches on the page or picture (pages and images with word boxes), "
        "phrases first.",
    )
    snippet_spans: list[SnippetSpan] = Field(
        default_factory=list, description="The query's matches in the snippet, phrases first."
    )


class HitGroup(BaseModel):
    """One document's hits in a grouped search (indexes into ``hits``)."""

    doc_id: str
    hits: list[int] = Field(description="Positions in the response's hits, best first.")


class SearchResponse(BaseModel):
    """Hits best first, how many candidates were reranked, and milliseconds per stage."""

    hits: list[SearchHit]
    candidates: int
    timings_ms: dict[str, float]
    reranker: str | None = Field(None, description="The reranker that ordered the hits; none: first stage.")
    legs: list[str] = Field(default_factory=list, description="The recall legs that answered.")
    groups: list[HitGroup] | None = Field(
        None, description="With group_by: the same hits by document, best document first."
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="Candidates whose media could not be read (named by unit): reranked by their text, "
        "or left out when they have none.",
    )

    @classmethod
    def example(cls) -> dict[str, Any]:
        return {"hits": [], "candidates": 0, "timings_ms": {"embed": 1.0, "search": 1.0}}
