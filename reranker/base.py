"""The reranker interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RankedDocument:
    """One entry of :meth:`Reranker.rank`: the document's input position, its score and the document."""

    index: int
    score: float
    document: Any


class Reranker(ABC):
    """Scores (query, document) pairs; higher means more relevant, scores lie in [0, 1]."""

    backend: str = ""  # which scoring rule: "qwen3-vl" or "jina-m0" (the reranker_backend setting)
    reads_video: bool = True  # False: search hands it a video segment's keyframes as images

    @abstractmethod
    def score(self, query: Any, documents: Sequence[Any], *, instruction: str | None = None) -> list[float]:
        """Return one relevance score per document, in input order."""

    def rank(
        self,
        query: Any,
        documents: Sequence[Any],
        top_n: int | None = None,
        *,
        instruction: str | None = None,
    ) -> list[RankedDocument]:
        """Score the documents and return the best ``top_n`` (all when None), best first.

        Ties keep input order, so the ranking is deterministic.
        """
        if top_n is not None and top_n < 0:
            raise ValueError(f"top_n must be >= 0, got {top_n}")
        scores = self.score(query, documents, instruction=instruction)
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        return [RankedDocument(i, scores[i], documents[i]) for i in order[:top_n]]
