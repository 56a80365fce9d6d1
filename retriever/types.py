"""What a search takes and returns: filters, hits with both scores, per-stage timings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class SearchFilters:
    """Restrict the first stage. Every field left empty matches everything.

    Attributes:
        modalities: unit kinds to keep ("page", "image", "video", "text").
        doc_ids: documents to search in.
        source_prefix: a folder (every file below it) or one file's absolute path.
        tags: keep units carrying any of these tags.
        ingested_after, ingested_before: ingestion time range (inclusive).
    """

    modalities: tuple[str, ...] = ()
    doc_ids: tuple[str, ...] = ()
    source_prefix: str | None = None
    tags: tuple[str, ...] = ()
    ingested_after: datetime | None = None
    ingested_before: datetime | None = None


TERM, PHRASE = "term", "phrase"  # what a highlight or a text span marks


@dataclass(frozen=True)
class Highlight:
    """Where a query matched on a hit's page or picture.

    Attributes:
        text: the words on the page, as the text layer or OCR has them.
        box: ``(x0, y0, x1, y1)`` normalised to the page or image (0..1, origin top left).
        kind: ``"term"`` (a word the keyword leg matches: the same tokens and stems) or
            ``"phrase"`` (consecutive query words found word for word; one box per line).
    """

    text: str
    box: tuple[float, float, float, float]
    kind: str


@dataclass(frozen=True)
class TextSpan:
    """A match in a hit's snippet: characters ``start`` to ``end`` (Python string offsets), and its kind."""

    start: int
    end: int
    kind: str


@dataclass(frozen=True)
class Hit:
    """One search result: the unit, both stages' scores, and what a UI needs to show it.

    ``image``, ``thumbnail`` and ``frames`` are media-store references (relative paths); the REST API
    turns them into URLs.
    """

    unit_id: str
    doc_id: str
    rank: int  # 1-based, final order
    first_stage_rank: int  # 1-based, order Qdrant returned
    first_stage_score: float
    rerank_score: float | None
    modality: str
    title: str
    source: str
    snippet: str
    page: int | None = None
    start_s: float | None = None
    end_s: float | None = None
    image: str | None = None
    thumbnail: str | None = None
    frames: tuple[str, ...] = ()
    frame_times: tuple[float, ...] = ()  # seconds into the video, one per keyframe
    tags: tuple[str, ...] = ()
    # The query's matches (see retriever.highlight): boxes on the page or picture, spans in the snippet.
    highlights: tuple[Highlight, ...] = ()
    snippet_spans: tuple[TextSpan, ...] = ()


@dataclass(frozen=True)
class HitGroup:
    """The hits of one document, best first (a search grouped by document)."""

    doc_id: str
    hits: tuple[Hit, ...]


@dataclass(frozen=True)
class SearchResult:
    """Hits best first, how many candidates the first stage gave, and milliseconds per stage.

    ``groups`` holds the same hits by document (best document first) when the search was grouped;
    ``legs`` names the recall legs that answered.
    """

    hits: tuple[Hit, ...]
    candidates: int
    timings_ms: dict[str, float] = field(default_factory=dict)
    groups: tuple[HitGroup, ...] = ()
    legs: tuple[str, ...] = ()
