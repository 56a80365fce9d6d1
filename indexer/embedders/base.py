"""One interface for every embedding model: documents and queries in, unit-length vectors out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from core.content import Content


class Embedder(ABC):
    """Embeds :class:`core.content.Content` into L2-normalised float32 vectors of size :attr:`dim`.

    Attributes:
        name: model id or path; recorded in the collection so another model cannot write into it.
        dim: vector size (after any Matryoshka truncation).
        modalities: the content kinds it reads, a subset of {"text", "image", "video"}.
    """

    name: str
    dim: int
    modalities: frozenset[str]

    def accepts(self, content: Content) -> bool:
        """Whether every kind in ``content`` is one this model reads."""
        return not content.is_empty and set(content.modalities) <= self.modalities

    @abstractmethod
    def embed_documents(self, items: Sequence[Content]) -> np.ndarray:
        """Embed documents for storage; returns an array of shape (len(items), dim)."""

    @abstractmethod
    def embed_queries(self, items: Sequence[Content], *, instruction: str | None = None) -> np.ndarray:
        """Embed queries (with the query instruction where the model has one); shape (len(items), dim)."""
