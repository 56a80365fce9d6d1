"""Two-stage search: embed the query, recall k candidates from Qdrant, rerank them, keep the top n.

Stage one has legs: the collection's own embedder (``content``), a text embedder where the collection
has a ``text`` vector, and the keyword leg (``bm25``, Qdrant's BM25 with IDF) for query text. The legs
a request switches on and the collection has are fused by weighted reciprocal rank fusion inside the
engine. Stage two loads each candidate's content from the media store (a page's render, an image, a
segment's keyframes, a chunk's text) and lets the Qwen3-VL reranker order them. With a group size,
no document takes more than that many places among the candidates and among the hits. Last, the hits
returned (only those) get the query's matches: boxes on their page or picture and spans in their
snippet (:mod:`retriever.highlight`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image

from core.content import Content, StoredImage, parse_content
from core.errors import InvalidInputError
from core.media import check_stored_image
from core.settings import LEG_WEIGHTS, RRF_K
from indexer.embedders.base import Embedder
from indexer.media_store import MediaStore, words_from
from indexer.store import (
    BM25_VECTOR,
    CONTENT_VECTOR,
    LEGS,
    TEXT_VECTOR,
    DateRange,
    Filter,
    Fusion,
    Leg,
    Match,
    ScoredUnit,
    VectorStore,
    bm25,
)
from indexer.units import IMAGE, MODALITIES, PAGE, VIDEO
from retriever.highlight import QueryTerms, page_highlights, text_spans
from retriever.types import Hit, HitGroup, SearchFilters, SearchResult

logger = logging.getLogger(__name__)

STAGES = ("embed", "search", "hydrate", "rerank")


@dataclass
class Candidates:
    """Stage one's output: the cleaned query, Qdrant's points best first, and the stage timings (ms)."""

    query: Content
    points: list[ScoredUnit]
    timings_ms: dict[str, float] = field(default_factory=dict)
    legs: tuple[str, ...] = ()  # the legs that answered
    # Filled by hydrate: a note per candidate whose media could not be read, and the ids of those that
    # were scored from their text instead (the others were left out of ``points``).
    warnings: list[str] = field(default_factory=list)
    degraded: set[str] = field(default_factory=set)


class Retriever:
    """Searches one collection.

    Args:
        store: the open vector store.
        media: the media store the collection's units were written to.
        embedder: the collection's ``content`` embedder.
        reranker: any :class:`reranker.base.Reranker` (``score(query, documents, instruction=)``);
            None serves the first-stage order.
        text_embedder: the collection's ``text`` embedder, if it has one.
        legs: the legs recall uses by default (where the collection has them).
        weights: each leg's weight in the fusion (None: core.settings.LEG_WEIGHTS; 1 for a leg not named).
        rrf_k: the reciprocal rank fusion constant.
    """

    def __init__(
        self,
        store: VectorStore,
        media: MediaStore,
        embedder: Embedder,
        reranker: Any = None,
        text_embedder: Embedder | None = None,
        *,
        legs: Sequence[str] = LEGS,
        weights: dict[str, float] | None = None,
        rrf_k: int = RRF_K,
    ) -> None:
        self.store = store
        self.media = media
        self.embedder = embedder
        self.reranker = reranker
        self.text_embedder = text_embedder
        self.legs = tuple(check_legs(legs))
        self.weights = dict(LEG_WEIGHTS if weights is None else weights)
        self.fusion = Fusion(k=rrf_k)

    @classmethod
    def from_settings(
        cls,
        settings: Any,
        store: VectorStore,
        media: MediaStore,
        embedder: Embedder,
        reranker: Any = None,
        text_embedder: Embedder | None = None,
    ) -> Retriever:
        """A retriever with the recall settings (legs, weights, RRF constant) of ``settings``."""
        return cls(
            store,
            media,
            embedder,
            reranker,
            text_embedder,
            legs=settings.search_legs,
            weights=settings.leg_weights,
            rrf_k=settings.rrf_k,
        )

    def search(
        self,
        query: Any,
        filters: SearchFilters | None = None,
        *,
        k: int = 50,
        top_n: int = 10,
        rerank: bool = True,
        instruction: str | None = None,
        legs: Sequence[str] | None = None,
        group_size: int | None = None,
        min_score: float | None = None,
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
            legs: the recall legs to use (default: the retriever's).
            group_size: group hits by document: at most this many per document, and ``top_n``
                documents.
            min_score: drop reranked hits scored below this.

        Raises:
            InvalidInputError: an empty query, k/top_n/group_size below 1, or an unknown leg.
            MediaError: a query image or video that cannot be read.
        """
        if top_n < 1:
            raise InvalidInputError(f"top_n must be at least 1, got {top_n}")
        candidates = self.recall(query, filters, k=k, legs=legs, group_size=group_size)
        if not (rerank and self.reranker is not None and candidates.points):
            return self.highlight(self.order(candidates, None, top_n, group_size=group_size), candidates)
        documents = self.hydrate(candidates)
        with timed(candidates.timings_ms, "rerank"):
            scores = list(self.reranker.score(candidates.query, documents, instruction=instruction))
        result = self.order(candidates, scores, top_n, group_size=group_size, min_score=min_score)
        return self.highlight(result, candidates)

    def recall(
        self,
        query: Any,
        filters: SearchFilters | None = None,
        *,
        k: int = 50,
        legs: Sequence[str] | None = None,
        group_size: int | None = None,
    ) -> Candidates:
        """Stage one: embed the query and take ``k`` candidates from Qdrant (times ``embed``, ``search``),
        at most ``group_size`` of them from any one document when given.

        Raises:
            InvalidInputError: an empty query, k or group_size below 1, or an unknown leg.
        """
        if k < 1:
            raise InvalidInputError(f"k must be at least 1, got {k}")
        if group_size is not None and group_size < 1:
            raise InvalidInputError(f"group_size must be at least 1, got {group_size}")
        wanted = self.legs if legs is None else tuple(check_legs(legs))
        content = query if isinstance(query, Content) else parse_content(query, where="query")
        content = Content(tuple(t for t in content.texts if t.strip()), content.images, content.videos)
        if content.is_empty:
            raise InvalidInputError("query is empty: give it text, an image or a video")
        flt = build_filter(filters or SearchFilters())  # checked before any model work
        timings: dict[str, float] = {}
        with timed(timings, "embed"):
            query_legs = self._query_legs(content, wanted)
        with timed(timings, "search"):
            if not query_legs:
                points: list[ScoredUnit] = []
            elif group_size is not None:
                points = self.store.query_per_group(query_legs, flt, k, group_size, self.fusion)
            else:
                points = self.store.query(query_legs, flt, k, self.fusion)
        return Candidates(content, points, timings, tuple(leg.using for leg in query_legs))

    def hydrate(self, candidates: Candidates, reranker: Any = None) -> list[Content]:
        """What ``reranker`` (default: this retriever's) reads of each candidate, in first-stage order
        (times ``hydrate``). A reranker that reads pictures but not video (``reads_video`` False, as
        jina-reranker-m0) gets a video segment as its keyframes in time order.

        A candidate whose media file is gone or unreadable (deleted from the media store after recall,
        a corrupt file) never fails the search: it is scored from its text when it has some (its id
        goes to ``candidates.degraded``), else it is removed from ``candidates.points``; either way
        ``candidates.warnings`` says so and the log has a warning.
        """
        reader = reranker if reranker is not None else self.reranker
        as_images = not getattr(reader, "reads_video", True)
        with timed(candidates.timings_ms, "hydrate"):
            kept, documents = [], []
            for point in candidates.points:
                document = self._hydrate_one(point, as_images, candidates)
                if document is not None:
                    kept.append(point)
                    documents.append(document)
            candidates.points = kept  # the scores that follow line up with what is left
            return documents

    def _hydrate_one(self, point: ScoredUnit, as_images: bool, candidates: Candidates) -> Content | None:
        payload = point.payload or {}
        try:
            return self.document(payload, as_images, unit_id=str(point.id))
        except Exception as exc:  # any reason one stored file cannot be read is this candidate's alone
            reason = "is missing" if isinstance(exc, FileNotFoundError) else "cannot be read"
            what = f"unit {point.id} ({payload.get('source', '?')}, {payload.get('modality', '?')})"
            text = payload.get("text") or ""
            outcome = "ranked by its text" if text.strip() else "left out"
            note = f"{what}: its media file {reason}; {outcome}"
            logger.warning("%s (%s: %s)", note, type(exc).__name__, exc)
            candidates.warnings.append(note)
            if not text.strip():
                return None
            candidates.degraded.add(str(point.id))
            return Content(texts=(text,))

    def order(
        self,
        candidates: Candidates,
        scores: Sequence[float] | None,
        top_n: int,
        *,
        group_size: int | None = None,
        min_score: float | None = None,
    ) -> SearchResult:
        """The top ``top_n`` hits: by rerank score when ``scores`` are given, else in first-stage order.

        With ``group_size``, hits are grouped by document: the best ``top_n`` documents, each with at
        most ``group_size`` hits. ``min_score`` drops hits whose rerank score is below it.
        """
        points = candidates.points
        if scores is None:
            order = list(range(len(points)))
        else:
            if len(scores) != len(points):
                raise ValueError(f"{len(scores)} scores for {len(points)} candidates")
            order = sorted(range(len(points)), key=lambda i: -scores[i])
            if min_score is not None:
                order = [i for i in order if scores[i] >= min_score]
        groups: dict[str, list[int]] = {}
        if group_size is not None:
            for i in order:
                doc = str(points[i].payload.get("doc_id", ""))
                members = groups.get(doc)
                if members is None and len(groups) < top_n:
                    members = groups[doc] = []
                if members is not None and len(members) < group_size:
                    members.append(i)
            chosen = set().union(*groups.values()) if groups else set()
            order = [i for i in order if i in chosen]
        else:
            order = order[:top_n]
        ranks = {i: rank for rank, i in enumerate(order, start=1)}
        hits = tuple(_hit(ranks[i], i + 1, points[i], None if scores is None else scores[i]) for i in order)
        by_unit = {h.unit_id: h for h in hits}
        grouped = tuple(
            HitGroup(doc, tuple(by_unit[str(points[i].id)] for i in members))
            for doc, members in groups.items()
        )
        return SearchResult(
            hits=hits,
            candidates=len(points),
            timings_ms=dict(candidates.timings_ms),
            groups=grouped,
            legs=candidates.legs,
        )

    def highlight(self, result: SearchResult, candidates: Candidates) -> SearchResult:
        """``result`` with each hit's matches of the query's text: ``highlights`` (boxes on a page or
        picture, from the words the media store keeps beside it) and ``snippet_spans``.

        Only the hits returned are read (a small words file each). A hit without words (a text
        chunk, a video, a page indexed before words were kept, a missing or damaged words file)
        gets spans alone or nothing; a unit whose payload still holds its words (stores written
        before the words moved to the media store) is marked from those. Never raises for a hit.
        """
        terms = QueryTerms.of(" ".join(candidates.query.texts))
        if terms.empty or not result.hits:
            return result
        payloads = {str(p.id): p.payload or {} for p in candidates.points}
        marked = {h.unit_id: self._mark(h, payloads.get(h.unit_id, {}), terms) for h in result.hits}
        return replace(
            result,
            hits=tuple(marked[h.unit_id] for h in result.hits),
            groups=tuple(
                HitGroup(g.doc_id, tuple(marked.get(h.unit_id, h) for h in g.hits)) for g in result.groups
            ),
        )

    def _mark(self, hit: Hit, payload: dict[str, Any], terms: QueryTerms) -> Hit:
        try:
            boxes: tuple[Any, ...] = ()
            if hit.modality in (PAGE, IMAGE):
                ref = payload.get("words_file")
                words = self.media.words(ref) if ref else words_from(payload.get("words"))
                boxes = page_highlights(words, terms)
            return replace(hit, highlights=boxes, snippet_spans=text_spans(hit.snippet, terms))
        except Exception:  # a highlight only decorates a hit: never fail the search for it
            logger.warning("unit %s: its matches could not be marked", hit.unit_id, exc_info=True)
            return hit

    # -- stages ---------------------------------------------------------------------------------------

    def _query_legs(self, content: Content, wanted: Sequence[str]) -> list[Leg]:
        """One leg per wanted leg the collection has and the query can feed, dense legs first."""
        available = self.store.legs()
        if not available:
            return []  # nothing indexed yet
        legs: list[Leg] = []
        text = Content(texts=content.texts)
        if CONTENT_VECTOR in wanted and CONTENT_VECTOR in available:
            if self.embedder.accepts(content):
                legs.append(self._dense(CONTENT_VECTOR, self.embedder, content))
            elif content.texts and "text" in self.embedder.modalities:
                # A text-only collection asked with an image and text: the text is what it can match.
                legs.append(self._dense(CONTENT_VECTOR, self.embedder, text))
        if TEXT_VECTOR in wanted and TEXT_VECTOR in available and self.text_embedder and content.texts:
            legs.append(self._dense(TEXT_VECTOR, self.text_embedder, text))
        if BM25_VECTOR in wanted and BM25_VECTOR in available and content.texts:
            sparse = bm25.query_vector(" ".join(content.texts))
            if sparse is not None:  # only stop-words or punctuation: the dense legs answer
                legs.append(Leg(BM25_VECTOR, sparse, self.weights.get(BM25_VECTOR, 1.0)))
        if not legs and CONTENT_VECTOR in wanted and not content.texts:
            raise InvalidInputError(
                f"this collection's embedder ({self.embedder.name}) reads only "
                f"{', '.join(sorted(self.embedder.modalities))}; "
                f"the query has {', '.join(content.modalities)}"
            )
        return legs

    def _dense(self, name: str, embedder: Embedder, content: Content) -> Leg:
        return Leg(name, embedder.embed_queries([content])[0].tolist(), self.weights.get(name, 1.0))

    def document(
        self, payload: dict[str, Any], video_as_images: bool = False, *, unit_id: str | None = None
    ) -> Content:
        """What the reranker reads of a stored unit: its picture(s) from the media store, or its text.

        A page or image is a :class:`core.content.StoredImage` named by ``unit_id`` (default: the
        payload's ``unit_id``, else its reference), the file's size and ``mtime_ns``: checked here
        (present, a readable header, not truncated) but decoded only by a reader that needs the
        pixels, so a page whose vision features are cached is never decoded nor hashed. Keyframes
        are decoded here.
        """
        modality = payload.get("modality")
        if modality == VIDEO and payload.get("frames"):
            frames = tuple(self._picture(f) for f in payload["frames"])
            return Content(images=frames) if video_as_images else Content(videos=(frames,))
        if modality in (PAGE, IMAGE) and payload.get("image"):
            ref = payload["image"]
            return Content(images=(self._stored(ref, unit_id or str(payload.get("unit_id") or ref)),))
        return Content(texts=(payload.get("text") or payload.get("title") or "",))

    def _stored(self, ref: str, unit_id: str) -> StoredImage:
        path = self.media.resolve(ref)
        info = os.stat(path)  # FileNotFoundError: the candidate's media file is missing
        check_stored_image(path)  # MediaDecodeError: unreadable or truncated
        return StoredImage(str(path), f"{unit_id}:{info.st_size}:{info.st_mtime_ns}")

    def _picture(self, ref: str) -> Any:
        with Image.open(self.media.resolve(ref)) as image:
            return image.convert("RGB")


def check_legs(legs: Sequence[str]) -> list[str]:
    """``legs`` when every one is known.

    Raises:
        InvalidInputError: an unknown leg, or none at all.
    """
    legs = list(dict.fromkeys(legs))
    unknown = sorted(set(legs) - set(LEGS))
    if unknown:
        raise InvalidInputError(f"unknown leg {', '.join(unknown)}; legs are {', '.join(LEGS)}")
    if not legs:
        raise InvalidInputError(f"give at least one leg ({', '.join(LEGS)})")
    return legs


def build_filter(filters: SearchFilters) -> Filter | None:
    """The store filter for :class:`SearchFilters`; None when nothing is restricted.

    Raises:
        InvalidInputError: an unknown modality.
    """
    must: list[Any] = []
    unknown = set(filters.modalities) - set(MODALITIES)
    if unknown:
        raise InvalidInputError(f"unknown modality {sorted(unknown)}; use {', '.join(MODALITIES)}")
    if filters.modalities:
        must.append(Match("modality", tuple(filters.modalities)))
    if filters.doc_ids:
        must.append(Match("doc_id", tuple(filters.doc_ids)))
    if filters.tags:
        must.append(Match("tags", tuple(filters.tags)))
    if filters.source_prefix:
        prefix = filters.source_prefix.rstrip("/") or "/"
        # A folder matches every file below it (source_dirs holds each unit's ancestors); a file, itself.
        must.append(Filter(should=(Match("source_dirs", (prefix,)), Match("source", (prefix,)))))
    if filters.ingested_after or filters.ingested_before:
        must.append(
            DateRange("ingested_at", gte=_iso(filters.ingested_after), lte=_iso(filters.ingested_before))
        )
    return Filter(must=tuple(must)) if must else None


def _iso(moment: Any) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        from datetime import timezone

        moment = moment.replace(tzinfo=timezone.utc)  # stored times are UTC
    return moment.isoformat()


def _hit(rank: int, first_rank: int, point: ScoredUnit, score: float | None) -> Hit:
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
