"""The Qdrant store: one collection of units (named vectors + payload) and one of document records.

The same code runs on the three ``QdrantClient`` modes: an embedded on-disk folder (the default), an
in-memory store (tests) and a Qdrant server or cluster (``url`` + ``api_key``).

Units live in the collection ``<name>``: vector ``content`` from the main embedder, optionally
``text`` from a text-only embedder, and a payload describing the unit. Each document has a record in
``<name>_documents`` (a collection without vectors) saying which version of the file is indexed and
whether it was indexed completely; the ingest pipeline writes it first as ``partial`` and last as
``complete``, which is what makes a killed run resumable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import SchemaMismatchError, StoreError, StoreLockedError

logger = logging.getLogger(__name__)

CONTENT_VECTOR = "content"
TEXT_VECTOR = "text"
SCHEMA_VERSION = 1
_PAGE = 256  # points per scroll request

# Payload fields filtered on; a server gets an index for each.
KEYWORD_FIELDS = ("doc_id", "sha256", "modality", "tags", "source", "source_dirs")


@dataclass(frozen=True)
class VectorSpec:
    """What a named vector holds: the model that made it and its size."""

    model: str
    dim: int


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
    """One unit ready to write: its id, vectors by name, payload."""

    id: str
    vectors: dict[str, list[float]]
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterOptions:
    """How a collection is spread over a Qdrant cluster; None leaves a choice to the server.

    Only a server uses these: the embedded store is one process on one machine.
    """

    shard_number: int | None = None
    replication_factor: int | None = None
    write_consistency_factor: int | None = None
    read_consistency: str | None = None  # "all", "majority", "quorum", or a number of replicas

    def collection_options(self) -> dict[str, int]:
        """Keyword arguments of ``create_collection`` for the options that are set."""
        values = {
            "shard_number": self.shard_number,
            "replication_factor": self.replication_factor,
            "write_consistency_factor": self.write_consistency_factor,
        }
        return {name: value for name, value in values.items() if value is not None}


class VectorStore:
    """Units and document records in Qdrant. Open it with :meth:`open`; close it when done."""

    def __init__(
        self,
        client: Any,
        collection: str,
        *,
        is_server: bool,
        quantization: bool = False,
        cluster: ClusterOptions | None = None,
    ) -> None:
        self.client = client
        self.collection = collection
        self.documents_collection = f"{collection}_documents"
        self.is_server = is_server
        self.quantization = quantization
        self.cluster = cluster if is_server and cluster is not None else ClusterOptions()

    def read_options(self) -> dict[str, Any]:
        """Keyword arguments for reads (``query_points``): the read consistency of a cluster, if set."""
        from qdrant_client import models

        consistency = self.cluster.read_consistency
        if consistency is None:
            return {}
        if consistency.isdigit():
            return {"consistency": int(consistency)}
        return {"consistency": models.ReadConsistencyType(consistency)}

    @classmethod
    def open(
        cls,
        *,
        path: str | Path | None = None,
        url: str | None = None,
        api_key: str | None = None,
        location: str | None = None,
        collection: str = "mmsearch",
        quantization: bool = False,
        cluster: ClusterOptions | None = None,
    ) -> VectorStore:
        """Connect to a server (``url``), an in-memory store (``location=":memory:"``) or a folder (``path``).

        Raises:
            StoreLockedError: another process holds the embedded folder.
            StoreError: the server cannot be reached.
        """
        from qdrant_client import QdrantClient

        if sum(x is not None for x in (path, url, location)) != 1:
            raise StoreError("give exactly one of path, url or location to open a store")
        if url is not None:
            client = QdrantClient(url=url, api_key=api_key)
            try:
                client.get_collections()
            except Exception as exc:
                raise StoreError(f"cannot reach the Qdrant server at {url}: {exc}") from exc
            return cls(client, collection, is_server=True, quantization=quantization, cluster=cluster)
        if location is not None:
            return cls(QdrantClient(location=location), collection, is_server=False)
        folder = Path(path)  # type: ignore[arg-type]
        try:
            client = QdrantClient(path=str(folder))
        except RuntimeError as exc:
            if "already accessed" not in str(exc):
                raise
            raise StoreLockedError(
                f"the local store {folder} is open in another process (an ingest, the API server or the "
                "UI's server). Stop that process and try again, or run a Qdrant server and set "
                "MMSEARCH_QDRANT_URL so that several processes can share one store."
            ) from None
        return cls(client, collection, is_server=False)

    def close(self) -> None:
        """Release the store (and the embedded folder's lock)."""
        self.client.close()

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ---------------------------------------------------------------------------------------

    def schema(self) -> dict[str, VectorSpec] | None:
        """The named vectors of the existing unit collection, or None when it does not exist yet."""
        if not self.client.collection_exists(self.collection):
            return None
        info = self.client.get_collection(self.collection)
        sizes = info.config.params.vectors
        if not isinstance(sizes, dict):
            raise SchemaMismatchError(
                f"collection {self.collection!r} was not made by mmsearch (it has one unnamed vector); "
                "choose another collection name (MMSEARCH_COLLECTION)"
            )
        models = (info.config.metadata or {}).get("vectors", {})
        return {
            name: VectorSpec(models.get(name, {}).get("model", "?"), params.size)
            for name, params in sizes.items()
        }

    def ensure_collections(self, vectors: dict[str, VectorSpec]) -> None:
        """Create the collections on first use, or check that the existing one matches ``vectors``.

        Raises:
            SchemaMismatchError: the collection was built by another model or with other sizes.
        """
        from qdrant_client import models

        existing = self.schema()
        if existing is None:
            self.client.create_collection(
                self.collection,
                vectors_config={
                    name: models.VectorParams(size=spec.dim, distance=models.Distance.COSINE)
                    for name, spec in vectors.items()
                },
                quantization_config=(
                    models.ScalarQuantization(
                        scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, always_ram=True)
                    )
                    if self.is_server and self.quantization
                    else None
                ),
                metadata={
                    "schema_version": SCHEMA_VERSION,
                    "vectors": {name: asdict(spec) for name, spec in vectors.items()},
                },
                **self.cluster.collection_options(),
            )
            if self.is_server:
                self._create_payload_indexes()
            logger.info("created collection %s with vectors %s", self.collection, vectors)
        elif existing != vectors:
            raise SchemaMismatchError(
                f"collection {self.collection!r} holds vectors {_describe(existing)} but this run makes "
                f"{_describe(vectors)}. Mixing them would corrupt search. Use the embedder the collection "
                "was built with, or index into another collection (MMSEARCH_COLLECTION), or delete the "
                "store and re-ingest."
            )
        if not self.client.collection_exists(self.documents_collection):
            self.client.create_collection(
                self.documents_collection, vectors_config={}, **self.cluster.collection_options()
            )

    def _create_payload_indexes(self) -> None:
        from qdrant_client import models

        for name in KEYWORD_FIELDS:
            self.client.create_payload_index(self.collection, name, models.PayloadSchemaType.KEYWORD)
        self.client.create_payload_index(self.collection, "unit_index", models.PayloadSchemaType.INTEGER)
        self.client.create_payload_index(self.collection, "ingested_at", models.PayloadSchemaType.DATETIME)

    # -- documents ------------------------------------------------------------------------------------

    def get_document(self, doc_id: str) -> DocumentRecord | None:
        """The record of one document, or None."""
        if not self.client.collection_exists(self.documents_collection):
            return None
        found = self.client.retrieve(self.documents_collection, [doc_id], with_payload=True)
        return DocumentRecord.from_payload(found[0].payload) if found else None

    def put_document(self, record: DocumentRecord) -> None:
        """Write (or replace) a document record."""
        from qdrant_client import models

        point = models.PointStruct(id=record.doc_id, vector={}, payload=record.payload())
        self.client.upsert(self.documents_collection, [point], wait=True)

    def documents(self) -> Iterator[DocumentRecord]:
        """Every document record."""
        if not self.client.collection_exists(self.documents_collection):
            return
        for point in self._scroll(self.documents_collection, None, with_payload=True):
            yield DocumentRecord.from_payload(point.payload)

    def delete_document(self, doc_id: str) -> list[str]:
        """Remove a document's units and record; returns the ids of the units removed."""
        ids = self.unit_ids(doc_id)
        self.delete_units(ids)
        if self.client.collection_exists(self.documents_collection):
            self.client.delete(self.documents_collection, [doc_id], wait=True)
        return ids

    # -- units ----------------------------------------------------------------------------------------

    def upsert_units(self, points: Sequence[UnitPoint]) -> None:
        """Write units; the same id overwrites, so repeating a write never duplicates."""
        from qdrant_client import models

        if points:
            self.client.upsert(
                self.collection,
                [models.PointStruct(id=p.id, vector=p.vectors, payload=p.payload) for p in points],
                wait=True,
            )

    def unit_ids(self, doc_id: str, *, sha256: str | None = None) -> list[str]:
        """Ids of a document's units (only those of one file version when ``sha256`` is given)."""
        conditions = [_match("doc_id", doc_id)]
        if sha256 is not None:
            conditions.append(_match("sha256", sha256))
        return [str(p.id) for p in self._scroll(self.collection, conditions, with_payload=False)]

    def get_unit_payload(self, unit_id: str, fields: Sequence[str] | None = None) -> dict[str, Any] | None:
        """One unit's payload (only ``fields`` when given), or None when there is no such unit."""
        if not self.client.collection_exists(self.collection):
            return None
        found = self.client.retrieve(
            self.collection, [unit_id], with_payload=list(fields) if fields is not None else True
        )
        return dict(found[0].payload or {}) if found else None

    def all_unit_ids(self) -> set[str]:
        """Ids of every unit in the collection."""
        if not self.client.collection_exists(self.collection):
            return set()
        return {str(p.id) for p in self._scroll(self.collection, None, with_payload=False)}

    def stale_unit_ids(self, doc_id: str, sha256: str, unit_count: int) -> list[str]:
        """A document's units that a complete index of version ``sha256`` with ``unit_count`` units lacks."""
        stale = []
        wanted = ["sha256", "unit_index"]  # not the texts: this runs once per ingested file
        for point in self._scroll(self.collection, [_match("doc_id", doc_id)], with_payload=wanted):
            payload = point.payload or {}
            if payload.get("sha256") != sha256 or payload.get("unit_index", 0) >= unit_count:
                stale.append(str(point.id))
        return stale

    def delete_units(self, ids: Iterable[str]) -> None:
        """Remove units by id."""
        ids = list(ids)
        for start in range(0, len(ids), 1000):
            self.client.delete(self.collection, ids[start : start + 1000], wait=True)

    def set_tags(self, doc_id: str, tags: Sequence[str]) -> None:
        """Replace the tags of every unit of a document."""
        from qdrant_client import models

        self.client.set_payload(
            self.collection,
            {"tags": list(tags)},
            points=models.Filter(must=[_match("doc_id", doc_id)]),
            wait=True,
        )

    def count(self, doc_id: str | None = None) -> int:
        """Number of units, in total or of one document."""
        if not self.client.collection_exists(self.collection):
            return 0
        flt = None
        if doc_id is not None:
            from qdrant_client import models

            flt = models.Filter(must=[_match("doc_id", doc_id)])
        return self.client.count(self.collection, count_filter=flt, exact=True).count

    def units(self, *, with_vectors: bool = False) -> Iterator[Any]:
        """Every unit point (id, payload and optionally vectors)."""
        if self.client.collection_exists(self.collection):
            yield from self._scroll(self.collection, None, with_payload=True, with_vectors=with_vectors)

    def _scroll(
        self,
        collection: str,
        conditions: list[Any] | None,
        *,
        with_payload: bool | list[str],
        with_vectors: bool = False,
    ) -> Iterator[Any]:
        from qdrant_client import models

        flt = models.Filter(must=conditions) if conditions else None
        offset = None
        while True:
            points, offset = self.client.scroll(
                collection,
                scroll_filter=flt,
                limit=_PAGE,
                offset=offset,
                with_payload=with_payload,
                with_vectors=with_vectors,
            )
            yield from points
            if offset is None:
                return


def _match(key: str, value: str) -> Any:
    from qdrant_client import models

    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _describe(vectors: dict[str, VectorSpec]) -> str:
    return ", ".join(f"{name}={spec.model} ({spec.dim} dims)" for name, spec in sorted(vectors.items()))
