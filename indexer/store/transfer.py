"""Copying an index between stores without re-embedding: ``mmsearch store migrate`` and ``store push``.

Points keep their ids, vectors and payloads, so a copy is idempotent (a repeated page overwrites
itself) and resumable: the scroll offset reached is saved after every page in a small state file,
and a later run continues from there. Units are copied before document records, so a target never
lists a document whose units it lacks. Units that lack a bm25 vector (those of the old engine) get one
from their payload text on the way.

A push makes the server collection a mirror of the embedded one: afterwards, units and document
records that the embedded store no longer holds (deleted documents, older versions of re-indexed
ones) are deleted on the server too, unless ``prune=False``; otherwise they would stay searchable there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import StoreError, StoreLockedError
from indexer.store import bm25
from indexer.store.base import PAGE, VectorStore
from indexer.store.edge import EdgeStore, _write_atomic
from indexer.store.legacy import MIGRATED_MARK, legacy_collections
from indexer.store.types import BM25_VECTOR, UnitPoint

logger = logging.getLogger(__name__)

#: Called after each page with (collection, units copied so far, units in all).
ProgressFn = Callable[[str, int, int], None]


@dataclass
class TransferReport:
    """What a copy did, per unit collection."""

    units: dict[str, int] = field(default_factory=dict)
    documents: dict[str, int] = field(default_factory=dict)
    pruned_units: dict[str, int] = field(default_factory=dict)
    pruned_documents: dict[str, int] = field(default_factory=dict)
    resumed: bool = False


def copy_collection(
    source: VectorStore,
    target: VectorStore,
    state_file: Path,
    *,
    progress: ProgressFn | None = None,
    report: TransferReport | None = None,
    prune: bool = False,
) -> TransferReport:
    """Copy every unit and document record of ``source`` into ``target`` (resuming from ``state_file``);
    with ``prune``, then delete what ``target`` holds beyond them.

    Raises:
        SchemaMismatchError: the target collection holds other vectors.
    """
    report = report or TransferReport()
    schema = source.schema()
    if schema is None:
        return report
    target.ensure_collections(schema)
    state = _read_state(state_file)
    report.resumed = report.resumed or bool(state.get("offset") or state.get("units_done"))
    total, copied = source.count(), int(state.get("copied", 0))
    offset = state.get("offset")
    while not state.get("units_done"):
        page, offset = source.scroll(with_vectors=True, offset=offset, limit=PAGE)
        target.upsert_units([_with_bm25(p) for p in page])
        copied += len(page)
        state = {"offset": offset, "copied": copied, "units_done": offset is None}
        _write_atomic(state_file, json.dumps(state))
        if progress is not None:
            progress(source.collection, copied, total)
    documents = 0
    for record in source.documents():
        target.put_document(record)
        documents += 1
    if prune:
        report.pruned_units[source.collection], report.pruned_documents[source.collection] = _prune(
            source, target
        )
    target.optimize()
    report.units[source.collection] = copied
    report.documents[source.collection] = documents
    _write_atomic(state_file, json.dumps({**state, "documents": documents, "done": True}))
    return report


def migrate_legacy(
    root: Path, *, progress: ProgressFn | None = None, remove_old: bool = False
) -> TransferReport:
    """Copy an old-engine store in ``root`` into Qdrant Edge in the same folder.

    Raises:
        StoreError: ``root`` holds no old-engine store.
        StoreLockedError: another process has the folder open.
    """
    from qdrant_client import QdrantClient

    from indexer.store.server import ServerStore

    names = legacy_collections(root)
    if not names:
        raise StoreError(f"{root} holds no store of the earlier engine: nothing to migrate")
    side = ("_documents", "_jobs")  # a unit collection's companions
    units = [n for n in names if not any(n.endswith(x) and n[: -len(x)] in names for x in side)]
    try:
        client = QdrantClient(path=str(root))
    except RuntimeError as exc:
        if "already accessed" not in str(exc):
            raise
        raise StoreLockedError(f"the local store {root} is open in another process; stop it first") from None
    report = TransferReport()
    try:
        for name in units:
            source = ServerStore(client, name, is_server=False)
            target = EdgeStore(root, name)
            target._lock()
            try:
                target._load()
                copy_collection(
                    source, target, target.folder / "migration.json", progress=progress, report=report
                )
            finally:
                target.close()
    finally:
        client.close()
    _write_atomic(
        root / "edge" / MIGRATED_MARK, json.dumps({"units": report.units, "documents": report.documents})
    )
    if remove_old:
        shutil.rmtree(root / "collection", ignore_errors=True)
        for name in ("meta.json", ".lock"):
            (root / name).unlink(missing_ok=True)
    return report


def push(
    source: EdgeStore,
    url: str,
    *,
    api_key: str | None = None,
    collection: str | None = None,
    restart: bool = False,
    prune: bool = True,
    progress: ProgressFn | None = None,
    target: VectorStore | None = None,
) -> TransferReport:
    """Copy the embedded store ``source`` into collection ``collection`` (default: the same name) of the
    Qdrant server at ``url``; ``target`` may be given instead of connecting (tests). With ``prune`` (the
    default) the server's units and records that ``source`` lacks are deleted afterwards.

    Raises:
        StoreError: the server cannot be reached.
        SchemaMismatchError: the server's collection holds other vectors.
    """
    from indexer.store.server import ServerStore

    name = collection or source.collection
    key = hashlib.sha256(f"{url}\n{name}".encode()).hexdigest()[:12]
    state_file = source.folder / f"push-{key}.json"
    if restart or _read_state(state_file).get("done"):
        state_file.unlink(missing_ok=True)  # a finished push is run again in full: it is idempotent
    own = target is None
    target = target or ServerStore.open(url=url, api_key=api_key, collection=name)
    try:
        return copy_collection(source, target, state_file, progress=progress, prune=prune)
    finally:
        if own:
            target.close()


def _prune(source: VectorStore, target: VectorStore) -> tuple[int, int]:
    """Delete the units and document records of ``target`` that ``source`` lacks; returns their counts.

    Runs after the copy, so a unit is only ever deleted on the target once its replacement is there.
    Page by page: neither side's ids are held all at once.
    """
    units, offset = 0, None
    while True:
        page, offset = target.scroll(fields=False, offset=offset, limit=PAGE)
        ids = [p.id for p in page]
        kept = {p.id for p in source.retrieve(ids, fields=False)}
        gone = [i for i in ids if i not in kept]
        if gone:
            # Deleting behind the scroll cursor leaves the points ahead of it (higher ids) in place.
            target.delete_units(gone)
            units += len(gone)
        if offset is None:
            break
    stale = [r.doc_id for r in target.documents() if source.get_document(r.doc_id) is None]
    for doc_id in stale:
        target.delete_document(doc_id)  # its units went in the pass above
    if units or stale:
        logger.info("pruned %d units and %d document records the source no longer holds", units, len(stale))
    return units, len(stale)


def _with_bm25(point: UnitPoint) -> UnitPoint:
    if BM25_VECTOR in point.vectors:
        return point
    sparse = bm25.document_vector(point.payload.get("text") or "")
    if sparse is None:
        return point
    return UnitPoint(point.id, {**point.vectors, BM25_VECTOR: sparse}, point.payload)


def _read_state(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
