"""Nothing indexed is lost: an old embedded store migrates into Qdrant Edge, an Edge store pushes to a
server (qdrant-client's in-memory stand-in), both without re-embedding, both resumable."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from core.errors import LegacyStoreError
from indexer.store import BM25_VECTOR, CONTENT_VECTOR, DocumentRecord, Fusion, Leg, VectorStore, bm25
from indexer.store.server import ServerStore
from indexer.store.transfer import migrate_legacy, push

N = 600  # more than two scroll pages


def _id(n: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"u{n}"))


def _doc(n: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"d{n % 12}"))


def write_old_store(folder) -> dict[str, list[float]]:
    """A store as the earlier mmsearch wrote it: qdrant-client local mode, dense vectors only."""
    rng = np.random.default_rng(3)
    client = QdrantClient(path=str(folder))
    client.create_collection(
        "mmsearch",
        vectors_config={CONTENT_VECTOR: models.VectorParams(size=8, distance=models.Distance.COSINE)},
        metadata={"schema_version": 1, "vectors": {CONTENT_VECTOR: {"model": "m", "dim": 8}}},
    )
    client.create_collection("mmsearch_documents", vectors_config={})
    vectors = {}
    points = []
    for n in range(N):
        v = rng.normal(size=8)
        vectors[_id(n)] = (v / np.linalg.norm(v)).tolist()
        text = f"page {n} about valgrind memcheck" if n % 3 else ""
        payload = {"doc_id": _doc(n), "sha256": "s", "unit_index": n, "text": text, "modality": "page"}
        points.append(
            models.PointStruct(id=_id(n), vector={CONTENT_VECTOR: vectors[_id(n)]}, payload=payload)
        )
    client.upsert("mmsearch", points)
    for d in range(12):
        record = DocumentRecord(_doc(d), f"/docs/{d}.pdf", "s", "page", f"D{d}", 50, complete=True)
        client.upsert(
            "mmsearch_documents", [models.PointStruct(id=_doc(d), vector={}, payload=record.payload())]
        )
    client.close()
    return vectors


class Interrupt(Exception):
    pass


def stop_after(pages: int):
    seen = []

    def progress(name: str, done: int, total: int) -> None:
        seen.append(done)
        if len(seen) == pages:
            raise Interrupt

    return progress


def test_an_old_store_is_named_then_migrated_resumably_without_re_embedding(tmp_path):
    folder = tmp_path / "qdrant"
    vectors = write_old_store(folder)
    with pytest.raises(LegacyStoreError, match="mmsearch store migrate"):
        VectorStore.open(path=folder, collection="mmsearch")
    with pytest.raises(Interrupt):  # killed after the first page
        migrate_legacy(folder, progress=stop_after(1))
    with pytest.raises(LegacyStoreError):  # still not migrated: still said so
        VectorStore.open(path=folder, collection="mmsearch")
    report = migrate_legacy(folder)
    assert report.resumed and report.units == {"mmsearch": N} and report.documents == {"mmsearch": 12}
    with VectorStore.open(path=folder, collection="mmsearch") as store:
        units = {u.id: u for u in store.iter_units(with_vectors=True)}
        assert len(units) == N and store.schema()[CONTENT_VECTOR].dim == 8
        for uid, unit in units.items():
            np.testing.assert_allclose(unit.vectors[CONTENT_VECTOR], vectors[uid], atol=1e-6)
            assert (BM25_VECTOR in unit.vectors) == bool(unit.payload["text"])
        assert len(list(store.documents())) == 12 and all(d.complete for d in store.documents())
        hits = store.query([Leg(BM25_VECTOR, bm25.query_vector("memcheck page 7"))], None, 1, Fusion())
        assert hits[0].id == _id(7)


def test_the_migrate_command_names_what_it_did_and_can_remove_the_old_files(tmp_path):
    folder = tmp_path / "qdrant"
    write_old_store(folder)
    out = subprocess.run(
        [sys.executable, "-m", "app", "store", "migrate", "--path", str(folder), "--remove-old"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"mmsearch: {N} units and 12 documents migrated" in out.stderr
    assert not (folder / "collection").exists() and not (folder / "meta.json").exists()
    with VectorStore.open(path=folder, collection="mmsearch") as store:
        assert store.count() == N


def migrated_store_and_server(tmp_path):
    """An embedded store (migrated from an old one) and an empty server stand-in."""
    folder = tmp_path / "qdrant"
    write_old_store(folder)
    migrate_legacy(folder)
    return folder, ServerStore(QdrantClient(location=":memory:"), "mmsearch", is_server=False)


def test_push_copies_the_embedded_index_to_a_server_idempotently_and_resumably(tmp_path):
    folder, server = migrated_store_and_server(tmp_path)
    with VectorStore.open(path=folder, collection="mmsearch") as local:
        with pytest.raises(Interrupt):
            push(local, "http://stand-in", target=server, progress=stop_after(2))
        assert 0 < server.count() < N and list(server.documents()) == []  # records come after units
        report = push(local, "http://stand-in", target=server)
        assert report.resumed and server.count() == N and len(list(server.documents())) == 12
        again = push(local, "http://stand-in", target=server)  # once more: nothing duplicated
        assert not again.resumed and server.count() == N
        legs = [
            Leg(CONTENT_VECTOR, [1.0, 0, 0, 0, 0, 0, 0, 0]),
            Leg(BM25_VECTOR, bm25.query_vector("42")),
        ]
        for fusion in (Fusion(k=60), Fusion(k=5)):
            a, b = (s.query(legs, None, 20, fusion) for s in (local, server))
            assert [u.id for u in a] == [u.id for u in b]
            assert [u.score for u in a] == pytest.approx([u.score for u in b], abs=1e-5)


def test_a_second_push_deletes_on_the_server_what_the_embedded_index_dropped(tmp_path):
    folder, server = migrated_store_and_server(tmp_path)
    with VectorStore.open(path=folder, collection="mmsearch") as local:
        push(local, "http://stand-in", target=server)
        gone = local.delete_document(_doc(3))  # a document removed (or re-indexed under new ids)
        assert gone and server.count() == N
        kept = push(local, "http://stand-in", target=server, prune=False)
        assert server.count() == N and kept.pruned_units == {}  # --keep-extra: the server keeps it
        report = push(local, "http://stand-in", target=server)
        assert report.pruned_units == {"mmsearch": len(gone)} and report.pruned_documents == {"mmsearch": 1}
        assert server.count() == local.count() == N - len(gone)
        assert server.count(_doc(3)) == 0 and server.get_document(_doc(3)) is None
        assert {r.doc_id for r in server.documents()} == {r.doc_id for r in local.documents()}
        assert not server.retrieve(gone, fields=False)


@pytest.mark.parametrize("command", [["documents"], ["store", "info"], ["delete", "x"]])
def test_every_command_that_meets_an_old_store_names_the_migration(tmp_path, command):
    write_old_store(tmp_path / "data" / "qdrant")
    env = {**os.environ, "MMSEARCH_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "app", *command], capture_output=True, text=True, timeout=300, env=env
    )
    assert out.returncode == 2, out.stderr
    assert "mmsearch store migrate" in out.stderr and "Traceback" not in out.stderr
