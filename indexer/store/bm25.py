"""The keyword leg's sparse vectors, made by Qdrant Edge's own BM25 model.

Documents get term-frequency weights (k, b and the average length of the model's config); queries get
weight 1 per distinct token. The IDF factor is applied by the engine at query time (the ``bm25``
vector is stored with Qdrant's IDF modifier), so the same vectors rank the same in an embedded store
and in a server collection.
"""

from __future__ import annotations

from functools import lru_cache

from indexer.store.types import SparseVector


@lru_cache(maxsize=1)
def _model():  # type: ignore[no-untyped-def]
    from qdrant_edge import Bm25, Bm25Config

    # English tokenisation, stop-words and stemming: the manuals and reports people keep.
    return Bm25(Bm25Config(language="english"))


def document_vector(text: str) -> SparseVector | None:
    """The bm25 vector of a unit's text; None when it has no indexable word (empty, stop-words)."""
    return _convert(_model().embed_document(_clean(text))) if text and text.strip() else None


def query_vector(text: str) -> SparseVector | None:
    """The bm25 vector of a query's text; None when only stop-words or punctuation remain."""
    return _convert(_model().embed_query(_clean(text))) if text and text.strip() else None


def _clean(text: str) -> str:
    # Lone surrogates (from a broken decoder) cannot cross into Rust: drop them rather than fail.
    return text.encode("utf-8", "replace").decode("utf-8")


def _convert(vector) -> SparseVector | None:  # type: ignore[no-untyped-def]
    if not vector.indices:
        return None
    pairs = sorted(zip(vector.indices, vector.values, strict=True))
    return SparseVector(tuple(i for i, _ in pairs), tuple(float(v) for _, v in pairs))
