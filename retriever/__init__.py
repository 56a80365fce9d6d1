"""Two-stage search: query embedding, Qdrant recall with filters (and fusion), hydration, reranking."""

from __future__ import annotations

from retriever.search import Candidates, Retriever, build_filter, check_legs, timed
from retriever.types import PHRASE, TERM, Highlight, Hit, HitGroup, SearchFilters, SearchResult, TextSpan

__all__ = [
    "PHRASE",
    "TERM",
    "Candidates",
    "Highlight",
    "Hit",
    "HitGroup",
    "Retriever",
    "SearchFilters",
    "SearchResult",
    "TextSpan",
    "build_filter",
    "check_legs",
    "timed",
]
