"""Two-stage search: embed the query, recall k candidates from Qdrant, rerank them, keep the top n.

Stage one uses the collection's own embedder (and, where the collection has a ``text`` vector and the
query has text, the text embedder too: both lists are fused by reciprocal rank fusion inside Qdrant).
Stage two loads each candidate's content from the media store (a page's render, an image, a
segment's keyframes, a chunk's text) and lets the Qwen3-VL reranker order them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from core.content import Content, parse_content
from core.errors import InvalidInputError
from indexer.embedders.base import Embedder
from indexer.media_store import MediaStore
from indexer.store import CONTENT_VECTOR, TEXT_VECTOR, VectorStore
from indexer.units import IMAGE, MODALITIES, PAGE, VIDEO
from retriever.types import Hit, SearchFilters, SearchResult

logger = logging.getLogger(__name__)

STAGES = ("embed", "search", "hydrate", "rerank")


@dataclass
class Candidates:
    """Stage one's output: the cleaned query, Qdrant's points best first, and the stage timings (ms)."""

    query: Content
    points: list[Any]
    timings_ms: dict[str, float] = field(default_factory=dict)


class Retriever:
    """Searches one collection.

    Args:
        store: the open vector store.
        media: the media store the collection's units were written to.
        embedder: the collection's ``content`` embedder.
        reranker: any :class:`reranker.base.Reranker` (``score(query, documents, instruction=)``);
            None serves the first-stage order.
        text_embedder: the collection's ``text`` embedder, if it has one.
    """

    def __init__(
        self,
        store: VectorStore,
        media: MediaStore,
        embedder: Embedder,
        reranker: Any = None,
        text_embedder: Embedder | None = None,
    ) -> None:
        self.store = store
        self.media = media
        self.embedder = embedder
        self.reranker = reranker
        self.text_embedder = text_embedder

    def search(
        self,
        query: Any,
        filters: SearchFilters | None = None,
        *,
        k: int = 50,
        top_n: int = 10,
        rerank: bool = True,
        instruction: str | None = None,
    ) -> SearchResult:
        """Find the units that answer ``query``: :meth:`recall`, :meth:`hydrate`, rerank, :meth:`order`.

        Args:
            query: text, an image, both, or a video (a string, a :class:`Content`, or a mapping
                with text/image/video).
            filters: what to search in.
            k: first-stage candidates.
            top_n: hits returned.
            rerank: False returns the first-stage order (no reranker call).
            instruction: reranker task instruction for this query.

        Raises:
            InvalidInputError: an empty query, or k/top_n below 1.
            MediaError: a query image or video that cannot be read.
        """
        if top_n < 1:
            raise InvalidInputError(f"top_n must be at least 1, got {top_n}")
        candidates = self.recall(query, filters, k=k)
        if not (rerank and self.reranker is not None and candidates.points):
            return self.order(candidates, None, top_n)
        documents = self.hydrate(candidates)
        with timed(candidates.timings_ms, "rerank"):
            scores = list(self.reranker.score(candidates.query, documents, instruction=instruction))
        return self.order(candidates, scores, top_n)

    def recall(self, query: Any, filters: SearchFilters | None = None, *, k: int = 50) -> Candidates:
        """Stage one: embed the query and take ``k`` candidates from Qdrant (times ``embed``, ``search``).

        Raises:
            InvalidInputError: an empty query, or k below 1.
        """
        if k < 1:
            raise InvalidInputError(f"k must be at least 1, got {k}")
        content = query if isinstance(query, Content) else parse_content(query, where="query")
        content = Content(tuple(t for t in content.texts if t.strip()), content.images, content.videos)
        if content.is_empty:
            raise InvalidInputError("query is empty: give it text, an image or a video")
        timings: dict[str, float] = {}
        with timed(timings, "embed"):
            vectors = self._query_vectors(content)
        with timed(timings, "search"):
            points = self._recall(vectors, filters or SearchFilters(), k)
        return Candidates(content, points, timings)

    def hydrate(self, candidates: Candidates, reranker: Any = None) -> list[Content]:
        """What ``reranker`` (default: this retriever's) reads of each candidate, in first-stage order
        (times ``hydrate``). A reranker that reads pictures but not video (``reads_video`` False, as
        jina-reranker-m0) gets a video segment as its keyframes in time order.
        """
        reader = reranker if reranker is not None else self.reranker
        as_images = not getattr(reader, "reads_video", True)
        with timed(candidates.timings_ms, "hydrate"):
            return [self.document(p.payload or {}, as_images) for p in candidates.points]

    def order(self, candidates: Candidates, scores: Sequence[float] | None, top_n: int) -> SearchResult:
        """The top ``top_n`` hits: by rerank score when ``scores`` are given, else in first-stage order."""
        points = candidates.points
        if scores is None:
            order = list(range(len(points)))
        else:
            if len(scores) != len(points):
                raise ValueError(f"{len(scores)} scores for {len(points)} candidates")
            order = sorted(range(len(points)), key=lambda i: -scores[i])
        hits = tuple(
            _hit(rank, i + 1, points[i], None if scores is None else scores[i])
            for rank, i in enumerate(order[:top_n], start=1)
        )
        return SearchResult(hits=hits, candidates=len(points), timings_ms=dict(candidates.timings_ms))

    # -- stages ---------------------------------------------------------------------------------------

    def _query_vectors(self, content: Content) -> dict[str, list[float]]:
        vectors: dict[str, list[float]] = {}
        if self.embedder.accepts(content):
            vectors[CONTENT_VECTOR] = self.embedder.embed_queries([content])[0].tolist()
        elif content.texts and "text" in self.embedder.modalities:
            # A text-only collection asked with an image and text: the text is what it can match.
            vectors[CONTENT_VECTOR] = self.embedder.embed_queries([Content(texts=content.texts)])[0].tolist()
        if self.text_embedder is not None and content.texts:
            text = Content(texts=content.texts)
            vectors[TEXT_VECTOR] = self.text_embedder.embed_queries([text])[0].tolist()
        if not vectors:
            raise InvalidInputError(
                f"this collection's embedder ({self.embedder.name}) reads only "
                f"{', '.join(sorted(self.embedder.modalities))}; "
                f"the query has {', '.join(content.modalities)}"
            )
        return vectors

    def _recall(self, vectors: dict[str, list[float]], filters: SearchFilters, k: int) -> list[Any]:
        from qdrant_client import models

        schema = self.store.schema()
        if schema is None:
            return []  # nothing indexed yet
        usable = {name: v for name, v in vectors.items() if name in schema}
        flt = build_filter(filters)
        client, collection = self.store.client, self.store.collection
        if len(usable) == 1:
            ((name, vector),) = usable.items()
            response = client.query_points(
                collection,
                query=vector,
                using=name,
                query_filter=flt,
                limit=k,
                with_payload=True,
                **self.store.read_options(),
            )
        else:
            prefetch = [
                models.Prefetch(query=vector, using=name, filter=flt, limit=k)
                for name, vector in usable.items()
            ]
            response = client.query_points(
                collection,
                prefetch=prefetch,
                query=models.FusionQuery(fusion=models.Fusion.RRF),
                query_filter=flt,
                limit=k,
                with_payload=True,
                **self.store.read_options(),
            )
        return list(response.points)

    def document(self, payload: dict[str, Any], video_as_images: bool = False) -> Content:
        """What the reranker reads of a stored unit: its picture(s) from the media store, or its text."""
        # Pictures are decoded here, so "hydrate" times the reads and the reranker gets pixels.
        modality = payload.get("modality")
        if modality == VIDEO and payload.get("frames"):
            frames = tuple(self._picture(f) for f in payload["frames"])
            return Content(images=frames) if video_as_images else Content(videos=(frames,))
        if modality in (PAGE, IMAGE) and payload.get("image"):
            return Content(images=(self._picture(payload["image"]),))
        return Content(texts=(payload.get("text") or payload.get("title") or "",))

    def _picture(self, ref: str) -> Any:
        with Image.open(self.media.resolve(ref)) as image:
            return image.convert("RGB")


def build_filter(filters: SearchFilters) -> Any:
    """The Qdrant filter for :class:`SearchFilters`; None when nothing is restricted."""
    from qdrant_client import models

    must: list[Any] = []
    unknown = set(filters.modalities) - set(MODALITIES)
    if unknown:
        raise InvalidInputError(f"unknown modality {sorted(unknown)}; use {', '.join(MODALITIES)}")
    if filters.modalities:
        must.append(
            models.FieldCondition(key="modality", match=models.MatchAny(any=list(filters.modalities)))
        )
    if filters.doc_ids:
        must.append(models.FieldCondition(key="doc_id", match=models.MatchAny(any=list(filters.doc_ids))))
    if filters.tags:
        must.append(models.FieldCondition(key="tags", match=models.MatchAny(any=list(filters.tags))))
    if filters.source_prefix:
        prefix = filters.source_prefix.rstrip("/") or "/"
        # A folder matches every file below it (source_dirs holds each unit's ancestors); a file, itself.
        must.append(
            models.Filter(
                should=[
                    models.FieldCondition(key="source_dirs", match=models.MatchValue(value=prefix)),
                    models.FieldCondition(key="source", match=models.MatchValue(value=prefix)),
                ]
            )
        )
    if filters.ingested_after or filters.ingested_before:
        must.append(
            models.FieldCondition(
                key="ingested_at",
                range=models.DatetimeRange(gte=filters.ingested_after, lte=filters.ingested_before),
            )
        )
    return models.Filter(must=must) if must else None


def _hit(rank: int, first_rank: int, point: Any, score: float | None) -> Hit:
    p = point.payload or {}
    return Hit(
        unit_id=str(point.id),
        doc_id=p.get("doc_id", ""),
        rank=rank,
        first_stage_rank=first_rank,
        first_stage_score=float(point.score),
        rerank_score=None if score is None else float(score),
        modality=p.get("modality", ""),
        title=p.get("title", ""),
        source=p.get("source", ""),
        snippet=p.get("snippet", ""),
        page=p.get("page"),
        start_s=p.get("start_s"),
        end_s=p.get("end_s"),
        image=p.get("image"),
        thumbnail=p.get("thumbnail"),
        frames=tuple(p.get("frames") or ()),
        frame_times=tuple(float(t) for t in p.get("timestamps") or ()) if p.get("frames") else (),
        tags=tuple(p.get("tags") or ()),
    )


@contextmanager
def timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Record the block's duration in milliseconds as ``timings[stage]``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = (time.perf_counter() - started) * 1000
