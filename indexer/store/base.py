"""The store interface: units (named vectors + payload) and document records, one class per engine.

A backend implements the primitives (schema, record access, upsert, scroll, retrieve, delete, set
payload, count, query); everything built on them (document deletion, stale units, grouping hits by
document) lives here once, so both engines answer it the same way.
"""

from __future__ import annotations

import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from core.errors import SchemaMismatchError
from indexer.store.types import (
    BM25_VECTOR,
    STAGED,
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

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: a bm25 sparse vector beside the dense ones
PAGE = 256  # points per scroll request
MAX_GROUP_FETCH = 10_000  # most candidates read to fill the groups of one query


class VectorStore(ABC):
    """Units and document records of one collection. Close it when done (or use ``with``)."""

    collection: str
    #: True for a Qdrant server or cluster (shared by processes), False for the embedded engine.
    is_server: bool = False

    # -- lifecycle ------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        *,
        path: Any = None,
        url: str | None = None,
        api_key: str | None = None,
        location: str | None = None,
        collection: str = "mmsearch",
        **options: Any,
    ) -> VectorStore:
        """The embedded engine in a folder (``path``), a Qdrant server (``url``), or qdrant-client's
        in-memory stand-in of the server API (``location=":memory:"``, tests and one-off runs).

        Raises:
            StoreLockedError: another process holds the embedded folder.
            LegacyStoreError: the folder was written by the old engine (``mmsearch store migrate``).
            StoreError: the server cannot be reached, or not exactly one place was given.
        """
        from core.errors import StoreError

        if sum(x is not None for x in (path, url, location)) != 1:
            raise StoreError("give exactly one of path, url or location to open a store")
        if path is not None:
            from indexer.store.edge import EdgeStore

            return EdgeStore.open(path, collection=collection, **options)
        from indexer.store.server import ServerStore

        return ServerStore.open(url=url, api_key=api_key, location=location, collection=collection, **options)

    @abstractmethod
    def close(self) -> None:
        """Release the store (and the embedded folder's lock)."""

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def optimize(self) -> None:  # noqa: B027 (a server indexes by itself: nothing to do by default)
        """Build the search index of what was written (the embedded engine; a server does it itself)."""

    # -- schema ---------------------------------------------------------------------------------------

    @abstractmethod
    def schema(self) -> dict[str, VectorSpec] | None:
        """The dense vectors of the unit collection, or None when it does not exist yet."""

    @property
    @abstractmethod
    def has_keyword_leg(self) -> bool:
        """Whether the unit collection holds the bm25 sparse vector."""

    @abstractmethod
    def _create(self, vectors: dict[str, VectorSpec]) -> None:
        """Create the unit and document collections (with the bm25 vector and payload indexes)."""

    def legs(self) -> tuple[str, ...]:
        """The recall legs this collection can answer: its dense vectors, then bm25."""
        schema = self.schema() or {}
        return (*schema, *((BM25_VECTOR,) if schema and self.has_keyword_leg else ()))

    def ensure_collections(self, vectors: dict[str, VectorSpec]) -> None:
        """Create the collections on first use, or check that the existing one matches ``vectors``.

        Raises:
            SchemaMismatchError: the collection was built by another model or with other sizes.
        """
        existing = self.schema()
        if existing is None:
            self._create(vectors)
            logger.info("created collection %s with vectors %s", self.collection, describe(vectors))
        elif existing != vectors:
            raise SchemaMismatchError(
                f"collection {self.collection!r} holds vectors {describe(existing)} but this run makes "
                f"{describe(vectors)}. Mixing them would corrupt search. Use the embedder the collection "
                "was built with, or index into another collection (MMSEARCH_COLLECTION), or delete the "
                "store and re-ingest."
            )

    # -- documents ------------------------------------------------------------------------------------

    @abstractmethod
    def get_document(self, doc_id: str) -> DocumentRecord | None:
        """The record of one document, or None."""

    @abstractmethod
    def put_document(self, record: DocumentRecord) -> None:
        """Write (or replace) a document record."""

    @abstractmethod
    def documents(self) -> Iterator[DocumentRecord]:
        """Every document record."""

    @abstractmethod
    def _delete_record(self, doc_id: str) -> None:
        """Remove one document record (nothing when there is none)."""

    def delete_document(self, doc_id: str) -> list[str]:
        """Remove a document's units and record; returns the ids of the units removed."""
        ids = self.unit_ids(doc_id)
        self.delete_units(ids)
        self._delete_record(doc_id)
        return ids

    # -- jobs: the API's ingestion jobs, kept beside the index so they outlive a restart --------------
    # (and every API replica of one Qdrant server sees the same jobs). A job id is a UUID string.

    @abstractmethod
    def get_job(self, job_id: str) -> dict[str, Any] | None:
        """A job's saved state, or None."""

    @abstractmethod
    def put_job(self, job_id: str, state: dict[str, Any]) -> None:
        """Save (or replace) a job's state: a JSON-able dict."""

    @abstractmethod
    def jobs(self) -> Iterator[dict[str, Any]]:
        """Every saved job's state."""

    @abstractmethod
    def delete_job(self, job_id: str) -> None:
        """Forget one job (nothing when there is none)."""

    # -- units: primitives ----------------------------------------------------------------------------

    @abstractmethod
    def upsert_units(self, points: Sequence[UnitPoint]) -> None:
        """Write units; the same id overwrites, so repeating a write never duplicates."""

    @abstractmethod
    def scroll(
        self,
        flt: Filter | None = None,
        *,
        fields: Sequence[str] | bool = True,
        with_vectors: bool = False,
        offset: str | None = None,
        limit: int = PAGE,
    ) -> tuple[list[UnitPoint], str | None]:
        """One page of units in id order, from ``offset``; returns the page and the next offset."""

    @abstractmethod
    def retrieve(self, ids: Sequence[str], fields: Sequence[str] | bool = True) -> list[UnitPoint]:
        """The units with these ids that exist (payload ``fields``, or all of it), without vectors."""

    @abstractmethod
    def delete_units(self, ids: Iterable[str]) -> None:
        """Remove units by id."""

    @abstractmethod
    def set_payload(self, flt: Filter, payload: dict[str, Any]) -> None:
        """Set payload keys on every unit matching ``flt``."""

    @abstractmethod
    def count(self, doc_id: str | None = None, flt: Filter | None = None) -> int:
        """Number of units, in total, of one document, or matching ``flt``."""

    @abstractmethod
    def query(self, legs: Sequence[Leg], flt: Filter | None, limit: int, fusion: Fusion) -> list[ScoredUnit]:
        """The best ``limit`` units under ``flt``: by one leg's similarity, or several legs fused by RRF."""

    # -- units: built on the primitives ---------------------------------------------------------------

    def iter_units(
        self, flt: Filter | None = None, *, fields: Sequence[str] | bool = True, with_vectors: bool = False
    ) -> Iterator[UnitPoint]:
        """Every unit matching ``flt`` (all of them by default), page by page."""
        if self.schema() is None:
            return
        offset = None
        while True:
            page, offset = self.scroll(flt, fields=fields, with_vectors=with_vectors, offset=offset)
            yield from page
            if offset is None:
                return

    def units(self, *, with_vectors: bool = False) -> Iterator[UnitPoint]:
        """Every unit (id, payload and optionally vectors)."""
        return self.iter_units(with_vectors=with_vectors)

    def unit_ids(self, doc_id: str, *, sha256: str | None = None) -> list[str]:
        """Ids of a document's units (only those of one file version when ``sha256`` is given)."""
        conditions = [Match("doc_id", (doc_id,))]
        if sha256 is not None:
            conditions.append(Match("sha256", (sha256,)))
        return [p.id for p in self.iter_units(Filter.of(*conditions), fields=False)]

    def all_unit_ids(self) -> set[str]:
        """Ids of every unit in the collection."""
        return {p.id for p in self.iter_units(fields=False)}

    def get_unit_payload(self, unit_id: str, fields: Sequence[str] | None = None) -> dict[str, Any] | None:
        """One unit's payload (only ``fields`` when given), or None when there is no such unit."""
        if self.schema() is None:
            return None
        found = self.retrieve([unit_id], list(fields) if fields is not None else True)
        return dict(found[0].payload) if found else None

    def stale_unit_ids(self, doc_id: str, sha256: str, unit_count: int) -> list[str]:
        """A document's units that a complete index of version ``sha256`` with ``unit_count`` units lacks."""
        stale = []
        wanted = ["sha256", "unit_index"]  # not the texts: this runs once per ingested file
        for point in self.iter_units(Filter.of(Match("doc_id", (doc_id,))), fields=wanted):
            if point.payload.get("sha256") != sha256 or point.payload.get("unit_index", 0) >= unit_count:
                stale.append(point.id)
        return stale

    def set_tags(self, doc_id: str, tags: Sequence[str]) -> None:
        """Replace the tags of every unit of a document."""
        self.set_payload(Filter.of(Match("doc_id", (doc_id,))), {"tags": list(tags)})

    def query_groups(
        self,
        legs: Sequence[Leg],
        flt: Filter | None,
        groups: int,
        group_size: int,
        fusion: Fusion,
        *,
        key: str = "doc_id",
    ) -> list[Group]:
        """The best ``groups`` groups (units sharing payload ``key``), each with its best ``group_size``
        units, ordered by their best unit.
        """
        if groups < 1 or group_size < 1:
            raise ValueError("groups and group_size must be at least 1")

        def full(found: list[Group]) -> bool:
            return len(found) == groups and all(len(g.units) == group_size for g in found)

        return self._fill(
            legs,
            flt,
            fusion,
            groups * group_size * 2,
            lambda r: group_units(r, groups, group_size, key),
            full,
        )

    def query_per_group(
        self,
        legs: Sequence[Leg],
        flt: Filter | None,
        limit: int,
        group_size: int,
        fusion: Fusion,
        *,
        key: str = "doc_id",
    ) -> list[ScoredUnit]:
        """The best ``limit`` units, best first, with at most ``group_size`` of any one group."""
        if limit < 1 or group_size < 1:
            raise ValueError("limit and group_size must be at least 1")

        def pick(ranked: list[ScoredUnit]) -> list[ScoredUnit]:
            return cap_per_group(ranked, group_size, key)[:limit]

        return self._fill(legs, flt, fusion, limit * 2, pick, lambda kept: len(kept) == limit)

    def _fill(
        self,
        legs: Sequence[Leg],
        flt: Filter | None,
        fusion: Fusion,
        fetch: int,
        pick: Callable[[list[ScoredUnit]], Any],
        enough: Callable[[Any], bool],
    ) -> Any:
        # Neither engine has a group query that fuses legs (Edge has none at all), so both read ranked
        # units, more each round, until the picks are complete or the ranking is exhausted.
        fetch = min(fetch, MAX_GROUP_FETCH)
        while True:
            ranked = self.query(legs, flt, fetch, fusion)
            picked = pick(ranked)
            if enough(picked) or len(ranked) < fetch or fetch >= MAX_GROUP_FETCH:
                return picked
            fetch = min(fetch * 4, MAX_GROUP_FETCH)


def search_width(ef: int, ef_filtered: int | None, *, acorn: bool, filtered: bool) -> int:
    """The HNSW width of one search: ``ef_filtered`` for a filtered one under ACORN, if given."""
    return ef_filtered if filtered and acorn and ef_filtered is not None else ef


def searchable(flt: Filter | None) -> Filter:
    """``flt`` narrowed to units a search may return: never those of a version still being written."""
    staged = Match("state", (STAGED,))
    if not flt:
        return Filter(must_not=(staged,))
    return Filter(must=flt.must, should=flt.should, must_not=(*flt.must_not, staged))


def cap_per_group(ranked: Sequence[ScoredUnit], group_size: int, key: str) -> list[ScoredUnit]:
    """``ranked`` without the units past the first ``group_size`` of each payload ``key`` value."""
    seen: dict[str, int] = {}
    kept = []
    for unit in ranked:
        value = str(unit.payload.get(key, ""))
        if seen.get(value, 0) < group_size:
            seen[value] = seen.get(value, 0) + 1
            kept.append(unit)
    return kept


def group_units(ranked: Sequence[ScoredUnit], groups: int, group_size: int, key: str) -> list[Group]:
    """Ranked units grouped by payload ``key``: at most ``groups`` groups of at most ``group_size``."""
    found: dict[str, list[ScoredUnit]] = {}
    for unit in ranked:
        value = str(unit.payload.get(key, ""))
        members = found.get(value)
        if members is None:
            if len(found) == groups:
                continue
            members = found[value] = []
        if len(members) < group_size:
            members.append(unit)
    return [Group(value, tuple(members)) for value, members in found.items()]


def unit_point(record: Any, with_vectors: bool) -> UnitPoint:
    """A point read back by either engine (``id``, ``vector``, ``payload``) as a :class:`UnitPoint`."""
    vectors: dict[str, Any] = {}
    if with_vectors and isinstance(record.vector, dict):
        for name, value in record.vector.items():
            if hasattr(value, "indices"):
                vectors[name] = SparseVector(tuple(value.indices), tuple(float(v) for v in value.values))
            else:
                vectors[name] = list(value)
    return UnitPoint(str(record.id), vectors, dict(record.payload or {}))


def is_point_id(value: str) -> bool:
    """Whether ``value`` can name a point (mmsearch's ids are UUIDs); others simply match nothing."""
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def describe(vectors: dict[str, VectorSpec]) -> str:
    """``content=model (dims), ...`` for messages."""
    return ", ".join(f"{name}={spec.model} ({spec.dim} dims)" for name, spec in sorted(vectors.items()))
