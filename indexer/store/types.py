"""mmsearch's own store types: what the layers above the store write, ask and get back.

Nothing here imports an engine: each backend translates these into its own objects, so the ingest
pipeline, the retriever, the API and eval never build qdrant-client or qdrant-edge objects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Union

from core.settings import LEGS as SETTINGS_LEGS

CONTENT_VECTOR = "content"
TEXT_VECTOR = "text"
BM25_VECTOR = "bm25"
LEGS = (CONTENT_VECTOR, TEXT_VECTOR, BM25_VECTOR)  # every leg recall may fuse
assert LEGS == SETTINGS_LEGS, "core.settings.LEGS names the same legs"

# Payload fields filtered on; every backend indexes them.
KEYWORD_FIELDS = ("doc_id", "sha256", "modality", "tags", "source", "source_dirs", "state")
# A unit's ``state``: "staged" while its document's new version is being written (never searched),
# "live" once the version is complete. Units written before staging existed have no state (live).
STAGED, LIVE = "staged", "live"
INTEGER_FIELDS = ("unit_index",)
DATETIME_FIELDS = ("ingested_at",)


@dataclass(frozen=True)
class VectorSpec:
    """What a named dense vector holds: the model that made it and its size."""

    model: str
    dim: int


@dataclass(frozen=True)
class SparseVector:
    """A sparse vector (the bm25 leg): token ids and their weights."""

    indices: tuple[int, ...]
    values: tuple[float, ...]

    def __bool__(self) -> bool:
        return bool(self.indices)


Vector = list[float] | SparseVector


@dataclass(frozen=True)
class DocumentRecord:
    """The indexed state of one source file."""

    doc_id: str
    source: str
    sha256: str
    modality: str
    title: str
    unit_count: int
    tags: tuple[str, ...] = ()
    ingested_at: str = ""
    fingerprint: str = ""  # loader and embedder settings the units were made with
    complete: bool = False

    def payload(self) -> dict[str, Any]:
        data = asdict(self)
        data["tags"] = list(self.tags)
        return data

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> DocumentRecord:
        known = {k: payload[k] for k in cls.__dataclass_fields__ if k in payload}
        known["tags"] = tuple(known.get("tags", ()))
        return cls(**known)


@dataclass(frozen=True)
class UnitPoint:
    """One unit to write, or one read back: its id, vectors by name (dense or sparse), payload."""

    id: str
    vectors: dict[str, Vector]
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoredUnit:
    """A unit that recall found: id, score (similarity, or the fused rank score), payload."""

    id: str
    score: float
    payload: dict[str, Any]


# -- filters ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """``key`` equals one of ``values`` (for a list field: any element does)."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class DateRange:
    """``key`` (an ISO-8601 datetime) lies within [gte, lte]; None leaves a side open."""

    key: str
    gte: str | None = None
    lte: str | None = None


@dataclass(frozen=True)
class Filter:
    """Every ``must`` condition holds, no ``must_not`` one does and, when ``should`` is given, at
    least one of those."""

    must: tuple[Condition, ...] = ()
    should: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.must or self.should or self.must_not)

    @staticmethod
    def of(*conditions: Condition) -> Filter:
        return Filter(must=tuple(conditions))


Condition = Union["Match", "DateRange", "Filter"]


# -- queries ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leg:
    """One recall leg: a query vector for one named vector, and its weight in the fusion."""

    using: str
    vector: Vector
    weight: float = 1.0


@dataclass(frozen=True)
class Fusion:
    """How several legs are fused: weighted reciprocal rank fusion with constant ``k``, as Qdrant
    computes it: a leg's hit at rank r (1 = best) adds ``1 / (r / weight + k - 1)``, so a weight w
    counts the leg's r-th hit as an unweighted (r / w)-th.

    A leg's candidates are its best ``prefetch`` (at least the query's limit).
    """

    k: int = 2
    prefetch: int = 0  # 0: the query's limit


@dataclass(frozen=True)
class Group:
    """The best units of one group (a document), best first."""

    key: str
    units: tuple[ScoredUnit, ...]
