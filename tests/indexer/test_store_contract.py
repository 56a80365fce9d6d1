"""The store contract: the same operations on both engines give the same answers.

Qdrant Edge in a temporary folder (the embedded default) and qdrant-client's in-memory stand-in of the
server API (``QdrantClient(":memory:")``; no server binary runs here) get identical writes; every read
is then compared by one helper: ids in order and scores within 1e-5 (units whose scores tie may come in
either order).
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from indexer.store import (
    BM25_VECTOR,
    CONTENT_VECTOR,
    TEXT_VECTOR,
    DateRange,
    DocumentRecord,
    Filter,
    Fusion,
    Leg,
    Match,
    UnitPoint,
    VectorSpec,
    VectorStore,
    bm25,
)

SPEC = {CONTENT_VECTOR: VectorSpec("m", 16), TEXT_VECTOR: VectorSpec("t", 8)}
WORDS = (
    "valgrind",
    "memcheck",
    "leak",
    "heap",
    "block",
    "allocation",
    "fontconfig",
    "pattern",
    "weight",
    "slant",
    "nettle",
    "sha256",
    "digest",
    "cipher",
    "bzip2",
    "compress",
    "block",
    "sort",
    "huffman",
    "option",
    "verbose",
    "error",
    "suppression",
    "thread",
    "cache",
    "font",
    "match",
)
MODALITIES = ("page", "image", "text", "video")
N = 240


def _doc(i: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"doc{i}"))


def _units() -> list[UnitPoint]:
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(6, 16))
    units = []
    for n in range(N):
        v = centres[n % 6] + 0.6 * rng.normal(size=16)
        t = rng.normal(size=8)
        # Every text has its own length, so no two bm25 scores tie (ties are ordered as each engine likes).
        words = rng.choice(WORDS, size=3 + n)
        text = f"unit{n} " + " ".join(words) if n % 7 else ""  # some units have no text at all
        vectors = {CONTENT_VECTOR: (v / np.linalg.norm(v)).tolist()}
        if text:
            vectors[TEXT_VECTOR] = (t / np.linalg.norm(t)).tolist()
            vectors[BM25_VECTOR] = bm25.document_vector(text)
        doc = n % 17
        payload = {
            "doc_id": _doc(doc),
            "sha256": f"sha{doc}",
            "unit_index": n // 17,
            "modality": MODALITIES[n % 4],
            "tags": [f"t{n % 5}", f"t{n % 3 + 10}"],
            "source": f"/corpus/{'a' if doc % 2 else 'b'}/file{doc}.pdf",
            "source_dirs": ["/", "/corpus", f"/corpus/{'a' if doc % 2 else 'b'}"],
            "ingested_at": f"2026-0{1 + doc % 9}-15T10:00:00+00:00",
            "text": text,
        }
        units.append(UnitPoint(str(uuid.uuid5(uuid.NAMESPACE_URL, f"unit{n}")), vectors, payload))
    return units


@pytest.fixture
def engines(tmp_path):
    """Both engines holding the same units and document records."""
    stores = [
        VectorStore.open(path=tmp_path / "edge", collection="units"),
        VectorStore.open(location=":memory:", collection="units"),
    ]
    units = _units()
    for store in stores:
        store.ensure_collections(SPEC)
        for start in range(0, N, 50):
            store.upsert_units(units[start : start + 50])
        for d in range(17):
            store.put_document(DocumentRecord(_doc(d), f"/corpus/file{d}.pdf", f"sha{d}", "page", f"D{d}", 3))
    stores[0].optimize()
    yield stores
    for store in stores:
        store.close()


def same(answers: list) -> None:
    """Both engines' answers agree: ids in order, scores within 1e-5 (ties in any order)."""
    edge, server = answers
    assert len(edge) == len(server)
    for a, b in zip(edge, server, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-5)

    # Within a run of equal scores the order is the engine's own: compare those runs as sets.
    def runs(units):
        out, current, last = [], [], None
        for u in units:
            if last is not None and abs(u.score - last) > 1e-5:
                out.append(sorted(current))
                current = []
            current.append(u.id)
            last = u.score
        return [*out, sorted(current)] if current else out

    # The last run may be cut by the limit: which of its tied units made the cut is the engine's choice.
    edge_runs, server_runs = runs(edge), runs(server)
    assert edge_runs[:-1] == server_runs[:-1]
    assert [len(r) for r in edge_runs[-1:]] == [len(r) for r in server_runs[-1:]]
    payloads = {b.id: b.payload for b in server}
    for a in edge:
        if a.id in payloads:
            assert a.payload == payloads[a.id]


def query_vector(seed: int, dim: int) -> list[float]:
    v = np.random.default_rng(seed).normal(size=dim)
    return (v / np.linalg.norm(v)).tolist()


FILTERS = {
    "none": None,
    "modality": Filter.of(Match("modality", ("page",))),
    "modality+tag": Filter.of(Match("modality", ("page", "text")), Match("tags", ("t1",))),
    "source-prefix": Filter.of(
        Filter(should=(Match("source_dirs", ("/corpus/a",)), Match("source", ("/x",))))
    ),
    "date-range": Filter.of(DateRange("ingested_at", gte="2026-03-01T00:00:00Z", lte="2026-06-30T00:00:00Z")),
    "matches-nothing": Filter.of(Match("tags", ("no-such-tag",))),
}


@pytest.mark.parametrize("name", list(FILTERS))
def test_each_leg_and_their_fusion_rank_alike(engines, name):
    flt = FILTERS[name]
    content = Leg(CONTENT_VECTOR, query_vector(1, 16))
    text = Leg(TEXT_VECTOR, query_vector(2, 8))
    keywords = Leg(BM25_VECTOR, bm25.query_vector("memcheck leak suppression"), 2.0)
    for legs in ([content], [text], [keywords], [content, keywords], [content, text, keywords]):
        for fusion in (Fusion(k=60), Fusion(k=2, prefetch=100)):
            same([s.query(legs, flt, 25, fusion) for s in engines])
    if name == "matches-nothing":
        assert engines[0].query([content, keywords], flt, 25, Fusion()) == []


def test_groups_and_capped_rankings_agree(engines):
    legs = [Leg(CONTENT_VECTOR, query_vector(3, 16)), Leg(BM25_VECTOR, bm25.query_vector("font match"), 1.5)]
    for groups, size in ((5, 2), (3, 1), (40, 3), (1, 10_000)):
        found = [s.query_groups(legs, None, groups, size, Fusion()) for s in engines]
        # Groups come in the order of their best units: groups whose best units tie, in any order.
        same([[g.units[0] for g in f] for f in found])
        server_groups = {g.key: g for g in found[1]}
        for a in found[0]:
            if a.key in server_groups:  # not so only for a tie cut at the last group
                same([list(a.units), list(server_groups[a.key].units)])
            assert len(a.units) <= size
        assert len(found[0]) == min(groups, 17)
    capped = [s.query_per_group(legs, FILTERS["modality"], 20, 2, Fusion()) for s in engines]
    same(capped)
    docs = [u.payload["doc_id"] for u in capped[0]]
    assert max(docs.count(d) for d in docs) <= 2


def test_writes_deletes_counts_and_scrolls_agree(engines):
    doc = _doc(3)
    for s in engines:
        assert s.count() == N and s.count(doc_id=doc) == len(s.unit_ids(doc))
    assert [s.count(flt=FILTERS["modality+tag"]) for s in engines] == [
        engines[1].count(flt=FILTERS["modality+tag"])
    ] * 2
    for s in engines:
        s.set_tags(doc, ["renamed"])
        s.delete_document(_doc(4))
        s.delete_units(["not-a-uuid", str(uuid.uuid4())])  # unknown ids are no error
    edge, server = ({u.id: u for u in s.iter_units(with_vectors=True)} for s in engines)
    assert sorted(edge) == sorted(server) and len(edge) == N - len([n for n in range(N) if n % 17 == 4])
    for uid, unit in edge.items():
        other = server[uid]
        assert unit.payload == other.payload and set(unit.vectors) == set(other.vectors)
        for name, vector in unit.vectors.items():
            if name == BM25_VECTOR:
                assert vector.indices == other.vectors[name].indices
                np.testing.assert_allclose(vector.values, other.vectors[name].values, atol=1e-6)
            else:
                np.testing.assert_allclose(vector, other.vectors[name], atol=1e-6)
    for s in engines:
        assert {tuple(u.payload["tags"]) for u in s.iter_units(Filter.of(Match("doc_id", (doc,))))} == {
            ("renamed",)
        }
        assert s.get_document(_doc(4)) is None and s.get_document("not-a-uuid") is None
        assert s.count(flt=Filter.of(Match("tags", ("renamed",)))) == N // 17 + (1 if N % 17 > 3 else 0)
    assert sorted(d.doc_id for d in engines[0].documents()) == sorted(
        d.doc_id for d in engines[1].documents()
    )
    assert engines[0].stale_unit_ids(doc, "sha3", 5) == engines[1].stale_unit_ids(doc, "sha3", 5)
    # Dense scores after deletes agree. (bm25 scores do not: Edge's IDF statistics still count
    # deleted points until their segment is vacuumed, which small segments never are. Noted in README.)
    same([s.query([Leg(CONTENT_VECTOR, query_vector(9, 16))], None, 10, Fusion()) for s in engines])


def test_scrolling_pages_through_every_unit_once(engines):
    for s in engines:
        seen, offset = [], None
        while True:
            page, offset = s.scroll(limit=37, offset=offset, fields=["doc_id"])
            seen += [u.id for u in page]
            assert all(set(u.payload) == {"doc_id"} for u in page)
            if offset is None:
                break
        assert len(seen) == len(set(seen)) == N


def test_staged_units_are_never_searched_until_published(engines):
    doc = _doc(5)
    flt = Filter.of(Match("doc_id", (doc,)))
    legs = [Leg(CONTENT_VECTOR, query_vector(4, 16)), Leg(BM25_VECTOR, bm25.query_vector("memcheck heap"))]
    for s in engines:
        s.set_payload(flt, {"state": "staged"})  # as while a new version of the document is written
    for legs_used in ([legs[0]], legs):
        found = [s.query(legs_used, None, N, Fusion()) for s in engines]
        same(found)
        assert found[0] and doc not in {u.payload["doc_id"] for u in found[0]}
        grouped = [s.query_groups(legs_used, None, 20, 2, Fusion()) for s in engines]
        assert [g.key for g in grouped[0]] == [g.key for g in grouped[1]] and doc not in {
            g.key for g in grouped[0]
        }
    for s in engines:  # the writer still sees them
        assert s.count(doc_id=doc) == len(s.unit_ids(doc)) > 0
        s.set_payload(Filter.of(Match("doc_id", (doc,)), Match("state", ("staged",))), {"state": "live"})
    found = [s.query([legs[0]], flt, N, Fusion()) for s in engines]
    same(found)
    assert len(found[0]) == engines[0].count(doc_id=doc)


def test_jobs_are_saved_listed_and_forgotten_alike(engines):
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"job{i}")) for i in range(3)]
    for s in engines:
        assert s.get_job(ids[0]) is None and list(s.jobs()) == []
        for i, job_id in enumerate(ids):
            s.put_job(job_id, {"id": job_id, "state": "queued", "files": [{"name": f"f{i}.pdf", "units": i}]})
        s.put_job(ids[1], {"id": ids[1], "state": "running", "files": []})
        s.delete_job(ids[2])
        s.delete_job("not-a-uuid")
        assert s.get_job("not-a-uuid") is None
    listed = [sorted((j["id"], j["state"]) for j in s.jobs()) for s in engines]
    assert listed[0] == listed[1] == sorted([(ids[0], "queued"), (ids[1], "running")])
    assert engines[0].get_job(ids[0]) == engines[1].get_job(ids[0]) == {
        "id": ids[0], "state": "queued", "files": [{"name": "f0.pdf", "units": 0}]
    }  # fmt: skip
    assert all(s.count() == N for s in engines)  # jobs live beside the units, never among them
