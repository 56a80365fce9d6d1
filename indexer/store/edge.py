"""The embedded default: Qdrant Edge, Qdrant's own engine (segments, WAL, HNSW, payload indexes) in
this process.

Layout of ``<data_dir>/qdrant``::

    edge/<collection>/units/       Edge shard of the units (dense vectors, bm25, payload)
    edge/<collection>/documents/   Edge shard of the document records
    edge/<collection>/schema.json  what the units' vectors hold (Edge keeps no collection metadata)
    edge/.lock                     held while a process has the store open

Edge builds its HNSW index only when asked (``optimize``): that happens at the end of an ingest run
and whenever ``optimize_every`` points were written since the last build, never on the query path.
Until then new points are searched exactly (brute force over the unindexed segment).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from core.errors import SchemaMismatchError, StoreError, StoreLockedError
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

QUANTIZATIONS = ("none", "int8", "binary")
# Payload fields whose values get HNSW links of their own, so a search filtered on them stays fast
# and exact-ish: the ones users filter on. Ids, paths and dates filter too, but each of their values
# would add a subgraph to build and load for little gain (their filters are selective: exact).
FILTER_GRAPHS = ("modality", "tags")
# Payload indexes kept in RAM: the few-valued fields every search filters on. The others (ids, paths,
# hashes, numbers, dates: one value per document or per unit) stay memory-mapped (``Memory.Cold``):
# loading them into RAM was most of a 100k store's open time (malloc-bound map building), and only
# ingest and deletes filter on them.
HOT_INDEXES = ("modality", "tags", "state")
_NO_VECTOR = "none"  # the documents shard's placeholder sparse vector (Edge wants at least one)
# The HNSW graph's shape, Qdrant's defaults, named because Edge takes them with the full-scan threshold.
HNSW_M = 16
HNSW_EF_CONSTRUCT = 100
ENGINE_FULL_SCAN_KB = 10_000  # what a collection made before the setting existed was given

LOCKED_MESSAGE = (
    "the local store {folder} is open in another process (an ingest, the API server or the UI's "
    "server). Stop that process and try again, or run a Qdrant server and set MMSEARCH_QDRANT_URL so "
    "that several processes can share one store."
)


class EdgeStore(VectorStore):
    """A collection in an embedded Qdrant Edge folder. Open it with :meth:`open`.

    Args:
        root: the store folder (``<data_dir>/qdrant``).
        collection: the units' collection name.
        quantization: ``none``, ``int8`` (scalar) or ``binary``; searches rescore with full vectors.
        optimize_every: points written after which the HNSW index is rebuilt during an ingest.
        hnsw_ef: candidates the HNSW search keeps (0: the engine's default); more is slower and nearer
            exact, filtered searches gain most.
        hnsw_ef_filtered: the same for a search with a filter, when ACORN is on (None: ``hnsw_ef``).
            ACORN looks at the neighbours of neighbours, so each candidate it keeps costs more and a
            smaller width finds as much (bench/RESULTS.md, "HNSW search width").
        acorn: search a selective filter (one that matches under 40% of the points, say one modality
            and one tag) with ACORN, which also walks the neighbours of filtered-out points, so the
            graph stays connected under the filter: recall@50 0.975 -> 1.000 at 100k units (bench/RESULTS.md).
        full_scan_kb: below this many KB of vectors matching a filter (or in a segment, unfiltered),
            a search scores the matches directly instead of walking the HNSW graph (fixed when the
            collection is made). Qdrant's default is 10,000 (1,250 vectors of 2048 dims); scanning
            beat ACORN's walk up to ~12,000 such vectors on 2 cores (bench/RESULTS.md).
        vectors_on_disk: keep the full vectors memory-mapped instead of read into RAM at open (fixed
            when the collection is made): a faster open and a smaller RSS; the page cache holds what
            searches touch.
        min_free_bytes: writes are refused while the disk has less free space than this. The engine
            writes through memory maps, and a memory-mapped write to a full disk kills the process
            (SIGBUS) instead of raising an error, so the check comes first.
    """

    is_server = False

    def __init__(
        self,
        root: Path,
        collection: str,
        *,
        quantization: str = "none",
        optimize_every: int = 20_000,
        min_free_bytes: int = 256 * 2**20,
        hnsw_ef: int = 256,
        hnsw_ef_filtered: int | None = 128,
        filter_graphs: tuple[str, ...] = FILTER_GRAPHS,
        hot_indexes: tuple[str, ...] | None = HOT_INDEXES,
        vectors_on_disk: bool = False,
        acorn: bool = True,
        full_scan_kb: int = HNSW_FULL_SCAN_KB,
    ) -> None:
        if quantization not in QUANTIZATIONS:
            raise StoreError(f"unknown quantization {quantization!r}; use one of {', '.join(QUANTIZATIONS)}")
        self.root = root
        self.collection = collection
        self.folder = root / "edge" / collection
        self.quantization = quantization
        self.optimize_every = optimize_every
        self.min_free_bytes = min_free_bytes
        self.hnsw_ef = hnsw_ef
        self.hnsw_ef_filtered = hnsw_ef_filtered
        self.filter_graphs = filter_graphs
        self.hot_indexes = hot_indexes
        self.vectors_on_disk = vectors_on_disk
        self.acorn = acorn
        self.full_scan_kb = full_scan_kb
        self._lock_file: Any = None
        self._units: Any = None
        self._documents: Any = None
        self._jobs: Any = None  # ingestion jobs of the API (payload only), made on first use
        self._schema: dict[str, VectorSpec] | None = None
        self._has_bm25 = False
        self._unindexed = 0
        self._apparent = 0  # bytes the store's files span (sparse included), as last measured
        self._writes = 0

    @classmethod
    def open(cls, path: str | Path, *, collection: str = "mmsearch", **options: Any) -> EdgeStore:
        """Open (or start) the store in ``path``.

        Raises:
            StoreLockedError: another process has it open.
            LegacyStoreError: ``path`` holds a store of the old engine and no Edge store.
        """
        from indexer.store.legacy import check_not_legacy

        root = Path(path)
        check_not_legacy(root)
        store = cls(root, collection, **options)
        store._lock()
        try:
            store._load()
        except BaseException:
            store.close()
            raise
        return store

    def _lock(self) -> None:
        (self.root / "edge").mkdir(parents=True, exist_ok=True)
        handle = open(self.root / "edge" / ".lock", "a+")  # noqa: SIM115 (held until close)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise StoreLockedError(LOCKED_MESSAGE.format(folder=self.root)) from None
        self._lock_file = handle

    def _load(self) -> None:
        schema_file = self.folder / "schema.json"
        if (self.folder / "documents").exists():
            self._documents = _load_shard(self.folder / "documents", self.root)
        if (self.folder / "jobs").exists():
            self._jobs = _load_shard(self.folder / "jobs", self.root)
        if schema_file.exists():
            meta = json.loads(schema_file.read_text())
            if meta.get("schema_version", 0) > SCHEMA_VERSION:
                raise SchemaMismatchError(
                    f"{schema_file} was written by a newer mmsearch (schema {meta['schema_version']}); "
                    "upgrade mmsearch to open it"
                )
            self._schema = {name: VectorSpec(**spec) for name, spec in meta["vectors"].items()}
            self._has_bm25 = bool(meta.get("bm25", False))
            # Quantization is fixed when the collection is made: the shard keeps its own.
            self.quantization = meta.get("quantization", "none")
            self.vectors_on_disk = bool(meta.get("vectors_on_disk", False))
            self.full_scan_kb = int(meta.get("full_scan_kb", ENGINE_FULL_SCAN_KB))
            self._units = _load_shard(self.folder / "units", self.root)
            self._add_missing_indexes()
            self._unindexed = max(
                0, self._units.info().points_count - self._units.info().indexed_vectors_count
            )

    def close(self) -> None:
        for shard in (self._units, self._documents, self._jobs):
            if shard is not None:
                shard.close()
        self._units = self._documents = self._jobs = None
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None

    def optimize(self) -> None:
        """Build the HNSW index over every segment (blocks; seconds per 10,000 points on 2 cores)."""
        if self._units is not None:
            try:
                self._units.optimize()
            except Exception as exc:  # the engine's own error type: say what it means here
                hint = " (the disk is full: free some space, the index is built again next time)"
                raise StoreError(
                    f"building the search index in {self.root} failed{hint if _no_space(exc) else ''}: {exc}"
                ) from exc
            self._unindexed = 0

    def _check_space(self) -> None:
        """Refuse a write that could meet a full disk.

        The engine's files are sparse: memory maps of 32 MiB and more, filled as points arrive. What
        counts is the free space minus what those files may still claim, plus ``min_free_bytes``.
        """
        free = shutil.disk_usage(self.root).free
        self._writes += 1
        if free >= self._apparent + self.min_free_bytes and self._writes % 1000:
            return  # room for every file to fill up completely: no need to look closer
        claimed, apparent = 0, 0
        for path in (self.root / "edge").rglob("*"):
            try:
                stat = path.stat()
            except OSError:
                continue
            if path.is_file():
                apparent += stat.st_size
                claimed += max(0, stat.st_size - stat.st_blocks * 512)
        self._apparent = apparent
        if free - claimed < self.min_free_bytes:
            raise StoreError(
                f"writing to the store {self.root} failed: the disk is full ({free / 2**20:.0f} MiB free, "
                f"{claimed / 2**20:.0f} MiB of it promised to the store's files, "
                f"{self.min_free_bytes / 2**20:.0f} MiB kept in reserve). Free some space and run the "
                "command again: everything written so far is kept."
            )

    def _write(self, shard: Any, operation: Any) -> None:
        """Apply one update; once it returns, the WAL holds it (a killed process keeps it)."""
        self._check_space()
        try:
            shard.update(operation)
        except Exception as exc:
            hint = " (the disk is full: free some space and run the command again)" if _no_space(exc) else ""
            raise StoreError(f"writing to the store {self.root} failed{hint}: {exc}") from exc

    # -- schema ---------------------------------------------------------------------------------------

    def schema(self) -> dict[str, VectorSpec] | None:
        return dict(self._schema) if self._schema is not None else None

    @property
    def has_keyword_leg(self) -> bool:
        return self._has_bm25

    def _config(self, qe: Any, vectors: dict[str, VectorSpec]) -> Any:
        quantization = {
            "none": None,
            "int8": qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, always_ram=True),
            "binary": qe.BinaryQuantizationConfig(always_ram=True),
        }[self.quantization]
        memory = qe.Memory.Cold if self.vectors_on_disk else None
        return qe.EdgeConfig(
            vectors={
                name: qe.EdgeVectorParams(size=spec.dim, distance=qe.Distance.Cosine, memory=memory)
                for name, spec in vectors.items()
            },
            sparse_vectors={BM25_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            quantization_config=quantization,
            hnsw_config=qe.HnswIndexConfig(
                m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT, full_scan_threshold=self.full_scan_kb
            ),
        )

    def _create(self, vectors: dict[str, VectorSpec]) -> None:
        import qdrant_edge as qe

        self.folder.mkdir(parents=True, exist_ok=True)
        units = qe.EdgeShard.create(str(self.folder / "units"), self._config(qe, vectors))
        for name in (*KEYWORD_FIELDS, *INTEGER_FIELDS, *DATETIME_FIELDS):
            units.update(qe.UpdateOperation.create_field_index(name, self._index_params(qe, name)))
        units.flush()
        self._ensure_documents()
        # The schema file is written last: a folder without it is a creation that never finished.
        meta = {
            "schema_version": SCHEMA_VERSION,
            "vectors": {name: {"model": s.model, "dim": s.dim} for name, s in vectors.items()},
            "bm25": True,
            "quantization": self.quantization,
            "vectors_on_disk": self.vectors_on_disk,
            "full_scan_kb": self.full_scan_kb,
        }
        _write_atomic(self.folder / "schema.json", json.dumps(meta, indent=2))
        self._units, self._schema, self._has_bm25 = units, dict(vectors), True

    def _index_params(self, qe: Any, name: str) -> Any:
        """A payload index; only fields in ``filter_graphs`` get HNSW links of their own per value, only
        those in ``hot_indexes`` (None: every field) are read into RAM."""
        graphs = name in self.filter_graphs
        cold = self.hot_indexes is not None and name not in self.hot_indexes
        memory = qe.Memory.Cold if cold else None
        if name in KEYWORD_FIELDS:
            return qe.KeywordIndexParams(enable_hnsw=graphs, memory=memory)
        if name in INTEGER_FIELDS:
            return qe.IntegerIndexParams(lookup=True, range=True, enable_hnsw=graphs, memory=memory)
        return qe.DatetimeIndexParams(enable_hnsw=graphs, memory=memory)

    def _add_missing_indexes(self) -> None:
        """Index the keyword fields a store of an earlier mmsearch lacks (``state``, say): cheap, once."""
        import qdrant_edge as qe

        indexed = set(self._units.info().payload_schema or {})
        for name in KEYWORD_FIELDS:
            if name not in indexed:
                self._write(
                    self._units, qe.UpdateOperation.create_field_index(name, self._index_params(qe, name))
                )

    def ensure_collections(self, vectors: dict[str, VectorSpec]) -> None:
        if self._schema is None and (self.folder / "units").exists():
            # A creation killed before its schema file: nothing was written into it yet.
            shutil.rmtree(self.folder / "units")
        super().ensure_collections(vectors)

    def _ensure_documents(self) -> Any:
        if self._documents is None:
            self._documents = self._record_shard("documents")
        return self._documents

    def _record_shard(self, name: str) -> Any:
        """A new shard of payload-only records (document records, jobs)."""
        import qdrant_edge as qe

        self.folder.mkdir(parents=True, exist_ok=True)
        config = qe.EdgeConfig(sparse_vectors={_NO_VECTOR: qe.EdgeSparseVectorParams()})
        return qe.EdgeShard.create(str(self.folder / name), config)

    # -- documents ------------------------------------------------------------------------------------

    def get_document(self, doc_id: str) -> DocumentRecord | None:
        if self._documents is None or not is_point_id(doc_id):
            return None
        found = self._documents.retrieve([doc_id], True, False)
        return DocumentRecord.from_payload(found[0].payload) if found else None

    def put_document(self, record: DocumentRecord) -> None:
        import qdrant_edge as qe

        shard = self._ensure_documents()
        self._write(shard, qe.UpdateOperation.upsert_points([qe.Point(record.doc_id, {}, record.payload())]))

    def documents(self) -> Iterator[DocumentRecord]:
        for payload in _scroll_payloads(self._documents):
            yield DocumentRecord.from_payload(payload)

    def _delete_record(self, doc_id: str) -> None:
        import qdrant_edge as qe

        if self._documents is not None and is_point_id(doc_id):
            self._write(self._documents, qe.UpdateOperation.delete_points([doc_id]))

    # -- jobs -----------------------------------------------------------------------------------------

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        if self._jobs is None or not is_point_id(job_id):
            return None
        found = self._jobs.retrieve([job_id], True, False)
        return dict(found[0].payload or {}) if found else None

    def put_job(self, job_id: str, state: dict[str, Any]) -> None:
        import qdrant_edge as qe

        if self._jobs is None:
            self._jobs = self._record_shard("jobs")
        self._write(self._jobs, qe.UpdateOperation.upsert_points([qe.Point(job_id, {}, state)]))

    def jobs(self) -> Iterator[dict[str, Any]]:
        yield from _scroll_payloads(self._jobs)

    def delete_job(self, job_id: str) -> None:
        import qdrant_edge as qe

        if self._jobs is not None and is_point_id(job_id):
            self._write(self._jobs, qe.UpdateOperation.delete_points([job_id]))

    # -- units ----------------------------------------------------------------------------------------

    def upsert_units(self, points: Sequence[UnitPoint]) -> None:
        import qdrant_edge as qe

        if not points:
            return
        if self._units is None:
            raise StoreError("the unit collection does not exist yet (ensure_collections first)")
        self._write(
            self._units,
            qe.UpdateOperation.upsert_points(
                [qe.Point(p.id, _edge_vectors(qe, p.vectors), p.payload) for p in points]
            ),
        )
        self._unindexed += len(points)
        if self._unindexed >= self.optimize_every:
            logger.info("building the search index over %d new points", self._unindexed)
            self.optimize()

    def scroll(
        self,
        flt: Filter | None = None,
        *,
        fields: Sequence[str] | bool = True,
        with_vectors: bool = False,
        offset: str | None = None,
        limit: int = PAGE,
    ) -> tuple[list[UnitPoint], str | None]:
        import qdrant_edge as qe

        if self._units is None:
            return [], None
        records, next_offset = self._units.scroll(
            qe.ScrollRequest(
                offset=offset,
                limit=limit,
                filter=edge_filter(qe, flt),
                with_payload=_with_payload(fields),
                with_vector=with_vectors,
            )
        )
        offset = None if next_offset is None else str(next_offset)
        return [unit_point(r, with_vectors) for r in records], offset

    def retrieve(self, ids: Sequence[str], fields: Sequence[str] | bool = True) -> list[UnitPoint]:
        ids = [i for i in ids if is_point_id(i)]
        if self._units is None or not ids:
            return []
        return [unit_point(r, False) for r in self._units.retrieve(ids, _with_payload(fields), False)]

    def delete_units(self, ids: Iterable[str]) -> None:
        import qdrant_edge as qe

        ids = [i for i in ids if is_point_id(i)]
        if self._units is None:
            return
        for start in range(0, len(ids), 1000):
            self._write(self._units, qe.UpdateOperation.delete_points(ids[start : start + 1000]))

    def set_payload(self, flt: Filter, payload: dict[str, Any]) -> None:
        import qdrant_edge as qe

        if self._units is not None:
            self._write(self._units, qe.UpdateOperation.set_payload_by_filter(edge_filter(qe, flt), payload))

    def count(self, doc_id: str | None = None, flt: Filter | None = None) -> int:
        import qdrant_edge as qe

        if self._units is None:
            return 0
        if doc_id is not None:
            flt = Filter(must=(Match("doc_id", (doc_id,)), *((flt,) if flt else ())))
        return self._units.count(qe.CountRequest(exact=True, filter=edge_filter(qe, flt)))

    def query(self, legs: Sequence[Leg], flt: Filter | None, limit: int, fusion: Fusion) -> list[ScoredUnit]:
        import qdrant_edge as qe

        if self._units is None or not legs:
            return []
        condition = edge_filter(qe, searchable(flt))
        params = self._search_params(qe, filtered=bool(flt))
        if len(legs) == 1:
            request = qe.QueryRequest(
                limit=limit,
                query=_nearest(qe, legs[0]),
                filter=condition,
                params=params,
                with_payload=True,
            )
        else:
            prefetch = max(limit, fusion.prefetch)
            request = qe.QueryRequest(
                limit=limit,
                prefetches=[
                    qe.Prefetch(limit=prefetch, query=_nearest(qe, leg), filter=condition, params=params)
                    for leg in legs
                ],
                query=qe.Fusion.Rrf(k=fusion.k, weights=[float(leg.weight) for leg in legs]),
                filter=condition,
                with_payload=True,
            )
        return [
            ScoredUnit(str(p.id), float(p.score), dict(p.payload or {})) for p in self._units.query(request)
        ]

    def _search_params(self, qe: Any, *, filtered: bool) -> Any:
        quantization = (
            qe.QuantizationSearchParams(rescore=True, oversampling=2.0)
            if self.quantization != "none"
            else None
        )
        acorn = qe.AcornSearchParams(enable=True) if self.acorn else None
        ef = search_width(self.hnsw_ef, self.hnsw_ef_filtered, acorn=self.acorn, filtered=filtered)
        if quantization is None and not ef and acorn is None:
            return None
        return qe.SearchParams(hnsw_ef=ef or None, quantization=quantization, acorn=acorn)

    def info(self) -> dict[str, int]:
        """Points, indexed vectors and segments of the unit shard (for benchmarks and ``store info``)."""
        if self._units is None:
            return {"points": 0, "indexed_vectors": 0, "segments": 0}
        info = self._units.info()
        return {
            "points": info.points_count,
            "indexed_vectors": info.indexed_vectors_count,
            "segments": info.segments_count,
        }


def edge_filter(qe: Any, flt: Filter | None) -> Any:
    """Our :class:`Filter` as a qdrant-edge ``Filter`` (None when nothing is restricted)."""
    if not flt:
        return None

    def condition(c: Any) -> Any:
        if isinstance(c, Match):
            match = qe.MatchValue(c.values[0]) if len(c.values) == 1 else qe.MatchAny(list(c.values))
            return qe.FieldCondition(c.key, match=match)
        if isinstance(c, DateRange):
            return qe.FieldCondition(c.key, range=qe.RangeDateTime(gte=c.gte, lte=c.lte))
        return edge_filter(qe, c)

    return qe.Filter(
        must=[condition(c) for c in flt.must] or None,
        should=[condition(c) for c in flt.should] or None,
        must_not=[condition(c) for c in flt.must_not] or None,
    )


def _scroll_payloads(shard: Any) -> Iterator[dict[str, Any]]:
    """Every record's payload in a payload-only shard (none when the shard does not exist yet)."""
    import qdrant_edge as qe

    offset = None
    while shard is not None:
        records, offset = shard.scroll(
            qe.ScrollRequest(offset=offset, limit=PAGE, with_payload=True, with_vector=False)
        )
        for record in records:
            yield dict(record.payload or {})
        if offset is None:
            return


def _nearest(qe: Any, leg: Leg) -> Any:
    vector = leg.vector
    if isinstance(vector, SparseVector):
        vector = qe.SparseVector(list(vector.indices), list(vector.values))
    return qe.Query.Nearest(vector, using=leg.using)


def _edge_vectors(qe: Any, vectors: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, vector in vectors.items():
        if isinstance(vector, SparseVector):
            if vector:
                out[name] = qe.SparseVector(list(vector.indices), list(vector.values))
        else:
            out[name] = list(vector)
    return out


def _with_payload(fields: Sequence[str] | bool) -> Any:
    if isinstance(fields, bool):
        return fields
    import qdrant_edge as qe

    return qe.PayloadSelector.Include(list(fields))


def _load_shard(folder: Path, root: Path, config: Any = None) -> Any:
    import qdrant_edge as qe

    try:
        return qe.EdgeShard.load(str(folder), config)
    except Exception as exc:
        if "WouldBlock" in str(exc) or "lock" in str(exc).lower():
            raise StoreLockedError(LOCKED_MESSAGE.format(folder=root)) from None
        raise StoreError(f"cannot open the store shard {folder}: {exc}") from exc


def _no_space(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(words in text for words in ("no space", "not enough space", "os error 28", "disk is full"))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
