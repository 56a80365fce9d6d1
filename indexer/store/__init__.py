"""The vector store: one interface (:class:`VectorStore`), one class per engine.

- :class:`~indexer.store.edge.EdgeStore`: Qdrant Edge embedded in this process (the default, a folder).
- :class:`~indexer.store.server.ServerStore`: a Qdrant server or cluster (``QdrantClient(url=...)``).

Layers above speak only the types of :mod:`indexer.store.types`; no qdrant object crosses this package.
"""

from indexer.store import bm25
from indexer.store.base import SCHEMA_VERSION, VectorStore, group_units
from indexer.store.server import ClusterOptions
from indexer.store.types import (
    BM25_VECTOR,
    CONTENT_VECTOR,
    KEYWORD_FIELDS,
    LEGS,
    LIVE,
    STAGED,
    TEXT_VECTOR,
    DateRange,
    DocumentRecord,
    Filter,
    Fusion,
    Group,
    Leg,
    Match,
    ScoredUnit,
    SparseVector,
    UnitPoint,
    VectorSpec,
)

__all__ = [
    "BM25_VECTOR",
    "CONTENT_VECTOR",
    "KEYWORD_FIELDS",
    "LEGS",
    "LIVE",
    "SCHEMA_VERSION",
    "STAGED",
    "TEXT_VECTOR",
    "ClusterOptions",
    "DateRange",
    "DocumentRecord",
    "Filter",
    "Fusion",
    "Group",
    "Leg",
    "Match",
    "ScoredUnit",
    "SparseVector",
    "UnitPoint",
    "VectorSpec",
    "VectorStore",
    "bm25",
    "group_units",
]
