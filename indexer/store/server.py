"""A Qdrant server or cluster through ``QdrantClient(url=..., api_key=...)``.

Units live in the collection ``<name>`` (dense vectors ``content`` and optionally ``text``, the sparse
``bm25`` with Qdrant's IDF modifier, payload indexes on every filtered field), document records in
``<name>_documents`` (no vectors). ``QdrantClient(":memory:")`` speaks the same API in this process:
the tests use it as the server's stand-in, since no server binary can run here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from core.errors import SchemaMismatchError, StoreError
from core.settings import HNSW_FULL_SCAN_KB
from indexer.store.base import (
    PAGE,
    SCHEMA_VERSION,
    VectorStore,
    is_point_id,
    search_width,
    searchable,
    unit_point,
)
from indexer.store.types import (
    BM25_VECTOR,
    DATETIME_FIELDS,
    INTEGER_FIELDS,
    KEYWORD_FIELDS,
    DateRange,
    DocumentRecord,
    Filter,
    Fusion,
    Leg,
    Match,
    ScoredUnit,
    SparseVector,
    UnitPoint,
    VectorSpec,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterOptions:
    """How a collection is spread over a Qdrant cluster; None leaves a choice to the server."""

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


class ServerStore(VectorStore):
    """A collection on a Qdrant server (or qdrant-client's in-memory stand-in of its API)."""

    def __init__(
        self,
        client: Any,
        collection: str,
        *,
        is_server: bool = True,
        quantization: str = "none",
        cluster: ClusterOptions | None = None,
        hnsw_ef: int = 256,
        hnsw_ef_filtered: int | None = 128,
        acorn: bool = True,
        full_scan_kb: int = HNSW_FULL_SCAN_KB,
    ) -> None:
        self.client = client
        self.collection = collection
        self.documents_collection = f"{collection}_documents"
        self.jobs_collection = f"{collection}_jobs"
        self.is_server = is_server
        self.quantization = quantization
        self.hnsw_ef = hnsw_ef
        self.hnsw_ef_filtered = hnsw_ef_filtered
        self.acorn = acorn
        self.full_scan_kb = full_scan_kb
        self.cluster = cluster if cluster is not None else ClusterOptions()
        self._schema_cache: tuple[dict[str, VectorSpec], bool] | None = None

    @classmethod
    def open(
        cls,
        *,
        url: str | None = None,
        api_key: str | None = None,
        location: str | None = None,
        collection: str = "mmsearch",
        quantization: str = "none",
        cluster: ClusterOptions | None = None,
        hnsw_ef: int = 256,
        hnsw_ef_filtered: int | None = 128,
        acorn: bool = True,
        full_scan_kb: int = HNSW_FULL_SCAN_KB,
        **_: Any,
    ) -> ServerStore:
        """Connect to ``url`` (checked at once), or start an in-memory stand-in (``location``).

        Raises:
            StoreError: the server cannot be reached.
        """
        from qdrant_client import QdrantClient

        if url is None:
            return cls(QdrantClient(location=location or ":memory:"), collection, is_server=False)
        client = QdrantClient(url=url, api_key=api_key)
        try:
            client.get_collections()
        except Exception as exc:
            raise StoreError(f"cannot reach the Qdrant server at {url}: {exc}") from exc
        return cls(
            client,
            collection,
            quantization=quantization,
            cluster=cluster,
            hnsw_ef=hnsw_ef,
            hnsw_ef_filtered=hnsw_ef_filtered,
            acorn=acorn,
            full_scan_kb=full_scan_kb,
        )

    def close(self) -> None:
        self.client.close()

    def read_options(self) -> dict[str, Any]:
        """Keyword arguments for reads: the read consistency of a cluster, if set."""
        from qdrant_client import models

        consistency = self.cluster.read_consistency
        if consistency is None:
            return {}
        if consistency.isdigit():
            return {"consistency": int(consistency)}
        return {"consistency": models.ReadConsistencyType(consistency)}

    # -- schema ---------------------------------------------------------------------------------------

    def _described(self) -> tuple[dict[str, VectorSpec], bool] | None:
        if self._schema_cache is not None:
            return self._schema_cache
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
        schema = {
            name: VectorSpec(models.get(name, {}).get("model", "?"), params.size)
            for name, params in sizes.items()
        }
        sparse = info.config.params.sparse_vectors or {}
        self._schema_cache = (schema, BM25_VECTOR in sparse)
        return self._schema_cache

    def schema(self) -> dict[str, VectorSpec] | None:
        described = self._described()
        return dict(described[0]) if described else None

    @property
    def has_keyword_leg(self) -> bool:
        described = self._described()
        return bool(described and described[1])

    def _create(self, vectors: dict[str, VectorSpec]) -> None:
        from qdrant_client import models

        quantization = {
            "none": None,
            "int8": models.ScalarQuantization(
                scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, always_ram=True)
            ),
            "binary": models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=True)),
        }[self.quantization]
        self.client.create_collection(
            self.collection,
            vectors_config={
                name: models.VectorParams(size=spec.dim, distance=models.Distance.COSINE)
                for name, spec in vectors.items()
            },
            sparse_vectors_config={BM25_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            quantization_config=quantization,
            # Like the embedded store: a filter's matches scored directly below this many KB.
            hnsw_config=models.HnswConfigDiff(full_scan_threshold=self.full_scan_kb),
            metadata={
                "schema_version": SCHEMA_VERSION,
                "vectors": {name: asdict(spec) for name, spec in vectors.items()},
            },
            **self.cluster.collection_options(),
        )
        if self.is_server:  # the in-memory stand-in has no payload indexes (it says so in a warning)
            indexes = [
                *((n, models.PayloadSchemaType.KEYWORD) for n in KEYWORD_FIELDS),
                *((n, models.PayloadSchemaType.INTEGER) for n in INTEGER_FIELDS),
                *((n, models.PayloadSchemaType.DATETIME) for n in DATETIME_FIELDS),
            ]
            for name, kind in indexes:
                self.client.create_payload_index(self.collection, name, kind)
        self._schema_cache = None

    def ensure_collections(self, vectors: dict[str, VectorSpec]) -> None:
        super().ensure_collections(vectors)
        if self.is_server:
            # Keyword fields added since the collection was made (``state``) get their index.
            from qdrant_client import models

            indexed = set(self.client.get_collection(self.collection).payload_schema or {})
            for name in set(KEYWORD_FIELDS) - indexed:
                self.client.create_payload_index(self.collection, name, models.PayloadSchemaType.KEYWORD)
        if not self.has_keyword_leg:
            # A collection of an earlier mmsearch: give it the keyword leg (its units get bm25 vectors
            # when re-indexed, or at once with `mmsearch store migrate`).
            from qdrant_client import models

            self.client.update_collection(
                self.collection,
                sparse_vectors_config={BM25_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            )
            self._schema_cache = None
        if not self.client.collection_exists(self.documents_collection):
            self.client.create_collection(
                self.documents_collection, vectors_config={}, **self.cluster.collection_options()
            )

    # -- documents ------------------------------------------------------------------------------------

    def get_document(self, doc_id: str) -> DocumentRecord | None:
        if not is_point_id(doc_id) or not self.client.collection_exists(self.documents_collection):
            return None
        found = self.client.retrieve(self.documents_collection, [doc_id], with_payload=True)
        return DocumentRecord.from_payload(found[0].payload) if found else None

    def put_document(self, record: DocumentRecord) -> None:
        from qdrant_client import models

        if not self.client.collection_exists(self.documents_collection):
            self.client.create_collection(
                self.documents_collection, vectors_config={}, **self.cluster.collection_options()
            )
        point = models.PointStruct(id=record.doc_id, vector={}, payload=record.payload())
        self.client.upsert(self.documents_collection, [point], wait=True)

    def documents(self) -> Iterator[DocumentRecord]:
        for payload in self._payloads(self.documents_collection):
            yield DocumentRecord.from_payload(payload)

    def _payloads(self, collection: str) -> Iterator[dict[str, Any]]:
        """Every point's payload in a payload-only collection (none when it does not exist)."""
        if not self.client.collection_exists(collection):
            return
        offset = None
        while True:
            points, offset = self.client.scroll(collection, limit=PAGE, offset=offset, with_payload=True)
            for point in points:
                yield dict(point.payload or {})
            if offset is None:
                return

    def _delete_record(self, doc_id: str) -> None:
        if is_point_id(doc_id) and self.client.collection_exists(self.documents_collection):
            self.client.delete(self.documents_collection, [doc_id], wait=True)

    # -- jobs -----------------------------------------------------------------------------------------

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        if not is_point_id(job_id) or not self.client.collection_exists(self.jobs_collection):
            return None
        found = self.client.retrieve(self.jobs_collection, [job_id], with_payload=True)
        return dict(found[0].payload or {}) if found else None

    def put_job(self, job_id: str, state: dict[str, Any]) -> None:
        from qdrant_client import models

        if not self.client.collection_exists(self.jobs_collection):
            self.client.create_collection(
                self.jobs_collection, vectors_config={}, **self.cluster.collection_options()
            )
        self.client.upsert(
            self.jobs_collection, [models.PointStruct(id=job_id, vector={}, payload=state)], wait=True
        )

    def jobs(self) -> Iterator[dict[str, Any]]:
        return self._payloads(self.jobs_collection)

    def delete_job(self, job_id: str) -> None:
        if is_point_id(job_id) and self.client.collection_exists(self.jobs_collection):
            self.client.delete(self.jobs_collection, [job_id], wait=True)

    # -- units ----------------------------------------------------------------------------------------

    def upsert_units(self, points: Sequence[UnitPoint]) -> None:
        from qdrant_client import models

        if points:
            self.client.upsert(
                self.collection,
                [
                    models.PointStruct(id=p.id, vector=_client_vectors(p.vectors), payload=p.payload)
                    for p in points
                ],
                wait=True,
            )

    def scroll(
        self,
        flt: Filter | None = None,
        *,
        fields: Sequence[str] | bool = True,
        with_vectors: bool = False,
        offset: str | None = None,
        limit: int = PAGE,
    ) -> tuple[list[UnitPoint], str | None]:
        if self.schema() is None:
            return [], None
        points, next_offset = self.client.scroll(
            self.collection,
            scroll_filter=client_filter(flt),
            limit=limit,
            offset=offset,
            with_payload=list(fields) if not isinstance(fields, bool) else fields,
            with_vectors=with_vectors,
        )
        return [unit_point(p, with_vectors) for p in points], None if next_offset is None else str(
            next_offset
        )

    def retrieve(self, ids: Sequence[str], fields: Sequence[str] | bool = True) -> list[UnitPoint]:
        ids = [i for i in ids if is_point_id(i)]
        if not ids or self.schema() is None:
            return []
        found = self.client.retrieve(
            self.collection, ids, with_payload=list(fields) if not isinstance(fields, bool) else fields
        )
        return [unit_point(p, False) for p in found]

    def delete_units(self, ids: Iterable[str]) -> None:
        ids = [i for i in ids if is_point_id(i)]
        for start in range(0, len(ids), 1000):
            self.client.delete(self.collection, ids[start : start + 1000], wait=True)

    def set_payload(self, flt: Filter, payload: dict[str, Any]) -> None:
        if self.schema() is not None:
            self.client.set_payload(self.collection, payload, points=client_filter(flt), wait=True)

    def count(self, doc_id: str | None = None, flt: Filter | None = None) -> int:
        if self.schema() is None:
            return 0
        if doc_id is not None:
            flt = Filter(must=(Match("doc_id", (doc_id,)), *((flt,) if flt else ())))
        return self.client.count(self.collection, count_filter=client_filter(flt), exact=True).count

    def query(self, legs: Sequence[Leg], flt: Filter | None, limit: int, fusion: Fusion) -> list[ScoredUnit]:
        from qdrant_client import models

        if not legs or self.schema() is None:
            return []
        condition = client_filter(searchable(flt))
        quantization = (
            models.QuantizationSearchParams(rescore=True, oversampling=2.0)
            if self.quantization != "none"
            else None
        )
        # ACORN: a selective filter's search also walks past filtered-out points (see EdgeStore).
        acorn = models.AcornSearchParams(enable=True) if self.acorn else None
        ef = search_width(self.hnsw_ef, self.hnsw_ef_filtered, acorn=self.acorn, filtered=bool(flt))
        params = (
            models.SearchParams(hnsw_ef=ef or None, quantization=quantization, acorn=acorn)
            if quantization is not None or ef or acorn
            else None
        )
        if len(legs) == 1:
            response = self.client.query_points(
                self.collection,
                query=_client_query(legs[0].vector),
                using=legs[0].using,
                query_filter=condition,
                search_params=params,
                limit=limit,
                with_payload=True,
                **self.read_options(),
            )
        else:
            prefetch = max(limit, fusion.prefetch)
            response = self.client.query_points(
                self.collection,
                prefetch=[
                    models.Prefetch(
                        query=_client_query(leg.vector),
                        using=leg.using,
                        filter=condition,
                        limit=prefetch,
                        params=params,
                    )
                    for leg in legs
                ],
                query=models.RrfQuery(
                    rrf=models.Rrf(k=fusion.k, weights=[float(leg.weight) for leg in legs])
                ),
                query_filter=condition,
                limit=limit,
                with_payload=True,
                **self.read_options(),
            )
        return [ScoredUnit(str(p.id), float(p.score), dict(p.payload or {})) for p in response.points]


def client_filter(flt: Filter | None) -> Any:
    """Our :class:`Filter` as a qdrant-client ``Filter`` (None when nothing is restricted)."""
    from qdrant_client import models

    if not flt:
        return None

    def condition(c: Any) -> Any:
        if isinstance(c, Match):
            match = (
                models.MatchValue(value=c.values[0])
                if len(c.values) == 1
                else models.MatchAny(any=list(c.values))
            )
            return models.FieldCondition(key=c.key, match=match)
        if isinstance(c, DateRange):
            return models.FieldCondition(key=c.key, range=models.DatetimeRange(gte=c.gte, lte=c.lte))
        return client_filter(c)

    return models.Filter(
        must=[condition(c) for c in flt.must] or None,
        should=[condition(c) for c in flt.should] or None,
        must_not=[condition(c) for c in flt.must_not] or None,
    )


def _client_query(vector: Any) -> Any:
    from qdrant_client import models

    if isinstance(vector, SparseVector):
        return models.SparseVector(indices=list(vector.indices), values=list(vector.values))
    return list(vector)


def _client_vectors(vectors: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, vector in vectors.items():
        if isinstance(vector, SparseVector):
            if vector:
                out[name] = _client_query(vector)
        else:
            out[name] = list(vector)
    return out
