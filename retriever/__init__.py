"""Two-stage search: query embedding, Qdrant recall with filters (and fusion), hydration, reranking."""

from __future__ import annotations

from retriever.search import Candidates, Retriever, build_filter, check_legs, timed
from retriever.types import Hit, HitGroup, SearchFilters, SearchResult

__all__ = [
    "Candidates",
    "Hit",
    "HitGroup",
    "Retriever",
    "SearchFilters",
    "SearchResult",
    "build_filter",
    "check_legs",
    "timed",
]
