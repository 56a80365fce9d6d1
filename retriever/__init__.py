"""Two-stage search: query embedding, Qdrant recall with filters (and fusion), hydration, reranking."""

from __future__ import annotations

from retriever.search import Candidates, Retriever, build_filter, timed
from retriever.types import Hit, SearchFilters, SearchResult

__all__ = ["Candidates", "Hit", "Retriever", "SearchFilters", "SearchResult", "build_filter", "timed"]
