"""The store interface on both engines (Qdrant Edge in a folder, and qdrant-client's in-memory stand-in
of the server API), plus what only the embedded folder does: locks, reopening, old stores."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from core.errors import SchemaMismatchError, StoreError, StoreLockedError
from indexer.store import (
    BM25_VECTOR,
    CONTENT_VECTOR,
    TEXT_VECTOR,
    DocumentRecord,
    Filter,
    Fusion,
    Leg,
    Match,
    UnitPoint,
    VectorSpec,
    VectorStore,
)

SPEC = {CONTENT_VECTOR: VectorSpec("tiny-model", 8), TEXT_VECTOR: VectorSpec("minilm", 4)}


def _vector(seed: int, dim: int) -> list[float]:
    v = np.random.default_rng(seed).normal(size=dim)
    return (v / np.linalg.norm(v)).tolist()


def _point(n: int, doc: str = "00000000-0000-0000-0000-00000000000a", sha: str = "s1") -> UnitPoint:
    pid = f"00000000-0000-0000-0000-{n:012d}"
    vectors = {CONTENT_VECTOR: _vector(n, 8)}
    if n % 2 == 0:  # only some units have text
        vectors[TEXT_VECTOR] = _vector(n + 100, 4)
    return UnitPoint(pid, vectors, {"doc_id": doc, "sha256": sha, "unit_index": n, "tags": ["a"]})


def open_engine(engine: str, folder) -> VectorStore:
    if engine == "edge":
        return VectorStore.open(path=folder, collection="units")
    return VectorStore.open(location=":memory:", collection="units")


@pytest.fixture(params=["edge", "server-api"])
def store(request, tmp_path):
    with open_engine(request.param, tmp_path / "q") as s:
        s.ensure_collections(SPEC)
        yield s


def test_collection_is_created_with_named_vectors_sized_from_the_embedders(store):
    assert store.schema() == SPEC
    assert store.legs() == (CONTENT_VECTOR, TEXT_VECTOR, BM25_VECTOR)
    store.ensure_collections(SPEC)  # a second time: checked, nothing created
    assert store.schema() == SPEC


def test_same_ids_overwrite_instead_of_duplicating(store):
    store.upsert_units([_point(i) for i in range(5)])
    store.upsert_units([_point(i) for i in range(5)])
    assert store.count() == 5
    assert store.count("00000000-0000-0000-0000-00000000000a") == 5


def test_units_without_a_text_vector_are_stored_and_searchable(store):
    store.upsert_units([_point(i) for i in range(4)])
    hits = store.query([Leg(CONTENT_VECTOR, _vector(3, 8))], None, 1, Fusion())
    assert hits[0].id.endswith("3") and hits[0].score == pytest.approx(1.0, abs=1e-5)
    text_hits = store.query([Leg(TEXT_VECTOR, _vector(102, 4))], None, 10, Fusion())
    assert {int(h.id[-2:]) for h in text_hits} == {0, 2}


def test_stale_units_are_other_versions_and_surplus_indexes(store):
    doc = "00000000-0000-0000-0000-00000000000a"
    store.upsert_units([_point(i, sha="old") for i in range(3)] + [_point(i, sha="new") for i in range(3, 6)])
    stale = store.stale_unit_ids(doc, "new", unit_count=5)
    assert sorted(int(s[-2:]) for s in stale) == [0, 1, 2, 5]
    assert len(store.unit_ids(doc, sha256="new")) == 3


def test_document_records_round_trip_and_delete_removes_units(store):
    doc = "00000000-0000-0000-0000-00000000000a"
    record = DocumentRecord(
        doc, "/x/report.pdf", "s1", "page", "Report", 3, ("a", "b"), "2026-01-01", "fp", True
    )
    store.put_document(record)
    store.upsert_units([_point(i) for i in range(3)])
    assert store.get_document(doc) == record
    assert list(store.documents()) == [record]
    removed = store.delete_document(doc)
    assert len(removed) == 3
    assert store.get_document(doc) is None and store.count() == 0


def test_set_tags_rewrites_every_unit_of_the_document(store):
    store.upsert_units([_point(i) for i in range(3)])
    store.set_tags("00000000-0000-0000-0000-00000000000a", ["q3", "finance"])
    assert {tuple(p.payload["tags"]) for p in store.units()} == {("q3", "finance")}


@pytest.mark.parametrize(
    "other",
    [
        {CONTENT_VECTOR: VectorSpec("tiny-model", 16), TEXT_VECTOR: VectorSpec("minilm", 4)},
        {CONTENT_VECTOR: VectorSpec("another-model", 8), TEXT_VECTOR: VectorSpec("minilm", 4)},
        {CONTENT_VECTOR: VectorSpec("tiny-model", 8)},
    ],
    ids=["dimension", "model", "missing-text-vector"],
)
def test_a_different_embedder_is_refused(store, other):
    store.upsert_units([_point(1)])
    with pytest.raises(SchemaMismatchError, match="MMSEARCH_COLLECTION") as info:
        store.ensure_collections(other)
    assert "tiny-model (8 dims)" in str(info.value)
    assert store.count() == 1  # nothing was touched


def test_open_needs_exactly_one_location():
    with pytest.raises(StoreError, match="exactly one"):
        VectorStore.open()


def test_unreachable_server_is_a_clear_error():
    with pytest.raises(StoreError, match="cannot reach the Qdrant server"):
        VectorStore.open(url="http://127.0.0.1:9")


def test_a_locked_folder_says_what_to_do(tmp_path):
    with VectorStore.open(path=tmp_path / "q"), pytest.raises(StoreLockedError) as info:
        VectorStore.open(path=tmp_path / "q")
    message = str(info.value)
    assert "another process" in message and "MMSEARCH_QDRANT_URL" in message


def test_a_locked_folder_from_another_process(tmp_path):
    with VectorStore.open(path=tmp_path / "q"):
        code = textwrap.dedent(
            f"""
            from core.errors import StoreLockedError
            from indexer.store import VectorStore
            try:
                VectorStore.open(path={str(tmp_path / "q")!r})
            except StoreLockedError as exc:
                print("LOCKED", exc)
            """
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("LOCKED")


def test_on_disk_store_is_found_again_by_a_new_process(tmp_path):
    with VectorStore.open(path=tmp_path / "q", collection="units") as s:
        s.ensure_collections(SPEC)
        s.upsert_units([_point(i) for i in range(7)])
        s.put_document(DocumentRecord("00000000-0000-0000-0000-00000000000a", "/a", "s1", "page", "A", 7))
    code = textwrap.dedent(
        f"""
        from indexer.store import VectorStore
        with VectorStore.open(path={str(tmp_path / "q")!r}, collection="units") as s:
            print(s.count(), len(list(s.documents())), sorted(s.schema()))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["7", "1", "['content',", "'text']"]


def test_one_units_payload_by_id(store):
    store.upsert_units([_point(3)])
    assert store.get_unit_payload("00000000-0000-0000-0000-000000000003", ["unit_index"]) == {"unit_index": 3}
    assert store.get_unit_payload("00000000-0000-0000-0000-000000000004") is None


def test_cluster_options_apply_to_servers_only():
    from qdrant_client import QdrantClient

    from indexer.store import ClusterOptions
    from indexer.store.server import ServerStore

    options = ClusterOptions(
        shard_number=6, replication_factor=2, write_consistency_factor=1, read_consistency="2"
    )
    assert options.collection_options() == {
        "shard_number": 6,
        "replication_factor": 2,
        "write_consistency_factor": 1,
    }
    assert ClusterOptions().collection_options() == {}
    server = ServerStore(QdrantClient(location=":memory:"), "c", cluster=options)
    assert server.read_options() == {"consistency": 2}
    majority = ServerStore(
        QdrantClient(location=":memory:"), "c", cluster=ClusterOptions(read_consistency="majority")
    )
    assert majority.read_options() == {"consistency": "majority"}  # a str enum: equal to its value
    assert ServerStore(QdrantClient(location=":memory:"), "c").read_options() == {}


def test_the_embedded_store_is_qdrant_edge_in_its_own_layout(tmp_path):
    from indexer.store.edge import EdgeStore

    with VectorStore.open(path=tmp_path / "q", collection="units") as s:
        assert isinstance(s, EdgeStore) and not s.is_server
        assert s.schema() is None and s.count() == 0 and list(s.documents()) == []
        s.ensure_collections(SPEC)
        s.upsert_units([_point(i) for i in range(3)])
    folder = tmp_path / "q" / "edge" / "units"
    assert {p.name for p in folder.iterdir()} >= {"units", "documents", "schema.json"}


def test_optimize_builds_the_index_and_keeps_every_answer(tmp_path):
    with VectorStore.open(path=tmp_path / "q", collection="units", optimize_every=50) as s:
        s.ensure_collections(SPEC)
        for start in range(0, 120, 20):  # crosses optimize_every: the index is rebuilt on the way
            s.upsert_units([_point(i) for i in range(start, start + 20)])
        before = [u.id for u in s.query([Leg(CONTENT_VECTOR, _vector(7, 8))], None, 10, Fusion())]
        s.optimize()
        after = [u.id for u in s.query([Leg(CONTENT_VECTOR, _vector(7, 8))], None, 10, Fusion())]
        assert s.count() == 120 and after[0] == before[0] == "00000000-0000-0000-0000-000000000007"


@pytest.mark.parametrize("quantization", ["int8", "binary"])
def test_quantized_collections_rescore_to_the_exact_order(tmp_path, quantization):
    exact = VectorStore.open(path=tmp_path / "exact", collection="units")
    quantized = VectorStore.open(path=tmp_path / quantization, collection="units", quantization=quantization)
    for s in (exact, quantized):
        s.ensure_collections(SPEC)
        s.upsert_units([_point(i) for i in range(400)])
        s.optimize()
    quantized.close()
    with VectorStore.open(path=tmp_path / quantization, collection="units") as reopened:
        assert reopened.quantization == quantization  # fixed when the collection was made
        for seed in range(5):
            leg = [Leg(CONTENT_VECTOR, _vector(1000 + seed, 8))]
            a = exact.query(leg, None, 5, Fusion())
            b = reopened.query(leg, None, 5, Fusion())
            assert len(b) == 5
            if quantization == "int8":  # binary keeps 1 bit of these 8 dims: only its rescored top is exact
                assert [u.id for u in a][:3] == [u.id for u in b][:3]
            exact_scores = {u.id: u.score for u in exact.query(leg, None, 400, Fusion())}
            for unit in b:  # rescored: every score is the exact cosine
                assert unit.score == pytest.approx(exact_scores[unit.id], abs=1e-4)
    exact.close()


def test_memory_layouts_answer_alike_and_on_disk_vectors_stay_chosen(tmp_path):
    """Cold payload indexes and memory-mapped vectors change where data lives, never an answer."""
    import json

    layouts = {
        "default": {},
        "every-index-in-ram": {"hot_indexes": None},
        "vectors-on-disk": {"vectors_on_disk": True},
    }
    docs = [f"00000000-0000-0000-0000-0000000000{d:02d}" for d in range(4)]
    answers = {}
    for name, options in layouts.items():
        with VectorStore.open(path=tmp_path / name, collection="units", **options) as s:
            s.ensure_collections(SPEC)
            s.upsert_units([_point(i, doc=docs[i % 4], sha=f"s{i % 4}") for i in range(300)])
            s.optimize()  # the indexed (immutable) segment is what loads each index its own way
        with VectorStore.open(path=tmp_path / name, collection="units") as s:
            assert s.vectors_on_disk == (name == "vectors-on-disk")  # kept from the collection's creation
            leg = [Leg(CONTENT_VECTOR, _vector(5, 8))]
            answers[name] = (
                [s.count(d) for d in docs],
                [(u.id, round(u.score, 5)) for u in s.query(leg, None, 10, Fusion())],
                sorted(p.id for p in s.scroll(Filter.of(Match("sha256", ("s2",))), fields=False)[0]),
            )
            s.delete_document(docs[1])
            assert s.count(docs[1]) == 0 and s.count() == 225
    assert answers["default"] == answers["every-index-in-ram"] == answers["vectors-on-disk"]
    assert answers["default"][0] == [75, 75, 75, 75]
    storage = {
        name: {
            json.loads(seg.read_text())["config"]["vector_data"][CONTENT_VECTOR]["storage_type"]
            for seg in (tmp_path / name / "edge" / "units" / "units" / "segments").glob("*/segment.json")
        }
        for name in layouts
    }
    # "InRam..." storages are read into RAM at open; the others are only mapped.
    assert all(t.startswith("InRam") for t in storage["default"])
    assert storage["vectors-on-disk"] and not any(t.startswith("InRam") for t in storage["vectors-on-disk"])


def test_below_the_full_scan_threshold_searches_are_exact_and_the_threshold_stays_chosen(tmp_path):
    """Under ``full_scan_kb`` the engine scores candidates one by one instead of walking the graph;
    the threshold is the collection's, fixed when it was made."""
    n, dim = 3000, 1024  # 12 MB of vectors: enough for the engine to build a graph at all
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    docs = [f"00000000-0000-0000-0000-0000000000{d:02d}" for d in range(10)]
    points = [
        UnitPoint(
            f"00000000-0000-0000-0000-{i:012d}",
            {CONTENT_VECTOR: vectors[i].tolist()},
            {"doc_id": docs[i % 10], "sha256": "s", "unit_index": i, "tags": ["a"]},
        )
        for i in range(n)
    ]
    queries = rng.normal(size=(10, dim))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    one_doc = np.arange(0, n, 10)
    recall = {}
    for kb in (1, 100_000):  # 1 KB: always the graph; 100,000 KB: 25,000 vectors of 1024 dims, all of these
        folder = tmp_path / str(kb)
        with VectorStore.open(path=folder, collection="u", full_scan_kb=kb, acorn=False, hnsw_ef=0) as s:
            s.ensure_collections({CONTENT_VECTOR: VectorSpec("m", dim)})
            s.upsert_units(points)
            s.optimize()
        with VectorStore.open(path=folder, collection="u", full_scan_kb=50, acorn=False, hnsw_ef=0) as s:
            assert s.full_scan_kb == kb  # reopened with another value: the collection keeps its own
            found = []
            for q in queries:
                got = s.query([Leg(CONTENT_VECTOR, q.tolist())], None, 50, Fusion())
                found.append(len({int(u.id[-12:]) for u in got} & set(np.argsort(-(vectors @ q))[:50])) / 50)
                if kb > 1:  # a filter's 300 matches are scored one by one: the exact order
                    flt = Filter.of(Match("doc_id", (docs[0],)))
                    got = s.query([Leg(CONTENT_VECTOR, q.tolist())], flt, 50, Fusion())
                    exact = one_doc[np.argsort(-(vectors[one_doc] @ q))[:50]]
                    assert [int(u.id[-12:]) for u in got] == exact.tolist()
            recall[kb] = float(np.mean(found))
    # Random 1024-d data is the graph's hardest case: at the engine's default width it misses a good
    # share of the top-50 (about 0.8 here); a scan misses nothing.
    assert recall[100_000] == 1.0 and recall[1] < 0.95
