"""POST /v1/search and /v1/search/upload over an ingested corpus, through the real app."""

from __future__ import annotations

import base64
import itertools
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from indexer.ingest import Ingestor
from indexer.loaders.base import LoadOptions
from indexer.media_store import MediaStore
from indexer.store import VectorStore
from retriever import Retriever

OPTIONS = LoadOptions(image_max_pixels=48 * 32 * 32, frame_max_pixels=8 * 32 * 32, segment_seconds=4.0)


@pytest.fixture(scope="module")
def indexed_data(tmp_path_factory, corpus, tiny_embedder, minilm) -> Path:
    """A data folder (store + media) with the corpus ingested once for the whole module."""
    data = tmp_path_factory.mktemp("indexed") / "data"
    with VectorStore.open(path=data / "qdrant") as store:
        Ingestor(store, MediaStore(data / "media"), tiny_embedder, minilm, options=OPTIONS).ingest(
            [corpus.root / "docs", corpus.root / "media"], recursive=True
        )
    return data


@pytest.fixture
def indexed_services(tmp_path, services_factory, indexed_data, minilm):
    copies = itertools.count()

    def build(**overrides):
        # Each server gets its own copy, so nothing one test does can leak into another.
        data = shutil.copytree(indexed_data, tmp_path / f"indexed-{next(copies)}")
        services = services_factory(data_dir=data, **overrides)
        services.text_embedder = minilm
        return services

    return build


@pytest.fixture
def search_client(indexed_services):
    with TestClient(create_app(services=indexed_services())) as client:
        yield client


def b64(path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_text_search_returns_ranked_hits_with_links(search_client):
    response = search_client.post("/v1/search", json={"query": "quarterly revenue", "k": 10, "top_n": 4})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["candidates"] == 10 and len(body["hits"]) == 4
    assert set(body["timings_ms"]) == {"embed", "search", "hydrate", "rerank"}
    scores = [h["rerank_score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)
    pictures = [h for h in body["hits"] if h["thumbnail_url"]]
    for hit in pictures:
        thumb = search_client.get(hit["thumbnail_url"])
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"


def test_image_queries_as_base64_data_uri_and_upload(search_client, corpus):
    encoded = b64(corpus.screenshot_png)
    plain = search_client.post("/v1/search", json={"query": {"image": encoded}, "top_n": 3})
    data_uri = search_client.post(
        "/v1/search", json={"query": {"image": f"data:image/png;base64,{encoded}"}, "top_n": 3}
    )
    with corpus.screenshot_png.open("rb") as f:
        upload = search_client.post(
            "/v1/search/upload", files={"image": ("shot.png", f, "image/png")}, data={"top_n": "3"}
        )
    assert plain.status_code == data_uri.status_code == upload.status_code == 200, upload.text
    ids = [[h["unit_id"] for h in r.json()["hits"]] for r in (plain, data_uri, upload)]
    assert ids[0] == ids[1] == ids[2] and len(ids[0]) == 3


def test_filters_and_first_stage_only(search_client):
    body = {"query": "anything", "filters": {"modalities": ["video"]}, "rerank": False, "top_n": 20}
    hits = search_client.post("/v1/search", json=body).json()["hits"]
    assert hits and all(h["modality"] == "video" and h["rerank_score"] is None for h in hits)
    assert [h["first_stage_rank"] for h in hits] == list(range(1, len(hits) + 1))


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        ({"image": "http://169.254.169.254/latest/meta-data"}, 422, "not allowed"),
        ({"image": "/etc/passwd"}, 422, "not a path"),
        ({"image": "file:///etc/passwd"}, 422, "not a path"),
        ({"image": "bm90IGFuIGltYWdl"}, 422, "image"),  # valid base64 of "not an image"
        ({"image": "%%%"}, 422, "base64"),
        ({"text": "   "}, 422, "empty"),
        ({"audio": "x"}, 422, "audio"),
    ],
    ids=["ssrf", "path", "file-uri", "not-an-image", "bad-base64", "blank", "unknown-field"],
)
def test_bad_queries_get_a_clear_4xx(search_client, query, status, words):
    response = search_client.post("/v1/search", json={"query": query})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert words in error["message"] and "Traceback" not in response.text


def test_limits(indexed_services, corpus):
    services = indexed_services(max_search_k=20, max_image_bytes=1000, max_query_chars=50)
    with TestClient(create_app(services=services)) as client:
        assert client.post("/v1/search", json={"query": "x", "k": 21}).status_code == 422
        assert client.post("/v1/search", json={"query": "x" * 51}).status_code == 422
        with corpus.photo_jpg.open("rb") as f:
            big = client.post("/v1/search/upload", files={"image": ("p.jpg", f, "image/jpeg")})
        assert big.status_code == 413, big.text
        assert client.post("/v1/search", json={"query": "x", "top_n": 0}).status_code == 422


def test_twenty_concurrent_searches_all_succeed(search_client):
    def one(i: int) -> int:
        body = {"query": f"question number {i}", "k": 8, "top_n": 3}
        return search_client.post("/v1/search", json=body).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(one, range(20)))
    assert statuses == [200] * 20


def test_the_api_reranks_through_the_batcher_and_agrees_with_the_library(indexed_services):
    services = indexed_services()
    with TestClient(create_app(services=services)) as client:
        # k over the corpus's size: every unit is a candidate, so no tie at the k-th fused score can
        # make the engine pick a different last candidate for the two searches.
        body = client.post("/v1/search", json={"query": "board minutes", "k": 200, "top_n": 8}).json()
    name = next(iter(services.rerankers()))
    assert body["reranker"] == name and services.extras[f"rerank_batcher:{name}"].stats.requests == 1
    library = Retriever.from_settings(  # the server's recall settings (legs and their weights)
        services.settings,
        services.store,
        services.media,
        services.embedder,
        services.reranker,
        services.text_embedder,
    )
    direct = library.search("board minutes", k=200, top_n=8)
    assert [h["unit_id"] for h in body["hits"]] == [h.unit_id for h in direct.hits]
    for api_hit, hit in zip(body["hits"], direct.hits, strict=True):
        assert api_hit["rerank_score"] == pytest.approx(hit.rerank_score, abs=1e-4)
        assert api_hit["first_stage_score"] == pytest.approx(hit.first_stage_score, abs=1e-6)
    # Candidates whose fused scores tie may come in either order from the engine: a hit's first-stage
    # rank is any of the ranks its score shares among all candidates.
    scores = [
        h.first_stage_score for h in library.search("board minutes", k=200, top_n=200, rerank=False).hits
    ]
    for api_hit, hit in zip(body["hits"], direct.hits, strict=True):
        tied = [rank for rank, s in enumerate(scores, start=1) if abs(s - hit.first_stage_score) < 1e-9]
        assert api_hit["first_stage_rank"] in tied and hit.first_stage_rank in tied


def test_a_search_names_the_reranker_it_wants(indexed_services, tiny_jina):
    services = indexed_services()
    services.other_rerankers = {"jina": tiny_jina}
    # Every unit a candidate (k over the corpus's size): a tie at the k-th fused score cannot give
    # the API and the library different candidates.
    query = {"query": "board minutes", "k": 200, "top_n": 8}
    with TestClient(create_app(services=services)) as client:
        body = client.post("/v1/search", json={**query, "reranker": "jina"}).json()
        first_stage = client.post("/v1/search", json={**query, "rerank": False}).json()
        unknown = client.post("/v1/search", json={**query, "reranker": "nope"})
        form = client.post("/v1/search/upload", data={"text": "board minutes", "k": 200, "reranker": "jina"})
        videos = {"query": "a clip", "k": 50, "reranker": "jina", "filters": {"modalities": ["video"]}}
        clips = client.post("/v1/search", json=videos)
    assert body["reranker"] == "jina" and first_stage["reranker"] is None
    assert services.extras["rerank_batcher:jina"].stats.requests == 3  # two JSON searches and the form
    direct = Retriever(services.store, services.media, services.embedder, tiny_jina, services.text_embedder)
    expected = direct.search("board minutes", k=200, top_n=8)
    assert [h["unit_id"] for h in body["hits"]] == [h.unit_id for h in expected.hits]
    assert [h["rerank_score"] for h in body["hits"]] == pytest.approx(
        [h.rerank_score for h in expected.hits], abs=1e-4
    )
    assert form.status_code == 200 and form.json()["reranker"] == "jina"
    # jina-reranker-m0 reads no video: it scores a segment by its keyframes, as pictures.
    assert clips.status_code == 200, clips.text
    hits = clips.json()["hits"]
    assert hits and all(h["modality"] == "video" for h in hits)
    frames = direct.document(services.store.get_unit_payload(hits[0]["unit_id"]), video_as_images=True)
    assert len(frames.images) == hits[0]["frame_count"] > 1 and not frames.videos
    assert hits[0]["rerank_score"] == pytest.approx(tiny_jina.score("a clip", [frames])[0], abs=1e-4)
    assert unknown.status_code == 404 and "loaded: " in unknown.json()["error"]["message"]


def test_video_hits_link_their_keyframes_and_source(search_client, corpus):
    body = {"query": "a clip", "k": 50, "top_n": 50, "rerank": False, "filters": {"modalities": ["video"]}}
    hits = search_client.post("/v1/search", json=body).json()["hits"]
    assert hits and all(h["modality"] == "video" for h in hits)
    hit = hits[0]
    assert len(hit["frame_urls"]) == len(hit["frame_times"]) == hit["frame_count"] > 0
    assert hit["frame_times"] == sorted(hit["frame_times"])
    assert hit["start_s"] <= hit["frame_times"][0] <= hit["frame_times"][-1] <= hit["end_s"]
    frame = search_client.get(hit["frame_urls"][-1])
    assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"
    assert frame.content[:2] == b"\xff\xd8"
    missing = hit["frame_urls"][0].rsplit("/", 1)[0] + f"/{hit['frame_count']}"
    assert search_client.get(missing).status_code == 404
    source = search_client.get(hit["source_url"])
    assert source.status_code == 200 and source.headers["content-type"] == "video/mp4"
    assert source.content == Path(hit["source"]).read_bytes()
    # Range requests let a player seek without downloading the whole file.
    part = search_client.get(hit["source_url"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100


def test_pages_have_no_keyframes_and_unknown_sources_are_404(search_client):
    body = {"query": "revenue", "k": 20, "top_n": 20, "rerank": False, "filters": {"modalities": ["page"]}}
    hit = search_client.post("/v1/search", json=body).json()["hits"][0]
    assert hit["frame_urls"] == [] and hit["frame_times"] == []
    assert search_client.get(f"/v1/units/{hit['unit_id']}/frames/0").status_code == 404
    pdf = search_client.get(hit["source_url"])
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert search_client.get("/v1/documents/00000000-0000-0000-0000-000000000000/source").status_code == 404
    assert search_client.get("/v1/documents/not-a-uuid/source").status_code == 404


def test_legs_can_be_switched_per_request_and_are_reported(search_client):
    both = search_client.post("/v1/search", json={"query": "quarterly revenue", "k": 10, "rerank": False})
    assert both.status_code == 200 and both.json()["legs"] == ["content", "text", "bm25"]
    for legs in (["bm25"], ["content"], ["text", "bm25"]):
        body = {"query": "quarterly revenue", "k": 10, "rerank": False, "legs": legs}
        response = search_client.post("/v1/search", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["legs"] == legs and response.json()["hits"]
    keyword_only = search_client.post(
        "/v1/search", json={"query": "quarterly revenue", "rerank": False, "legs": ["bm25"], "top_n": 3}
    ).json()
    for hit in keyword_only["hits"]:  # every keyword hit holds a query word (stemmed: "quarter")
        seen = (hit["snippet"] + hit["title"]).lower()
        assert "revenue" in seen or "quarter" in seen, hit


def test_a_query_of_stop_words_is_answered_by_the_dense_legs(search_client):
    response = search_client.post("/v1/search", json={"query": "the of and !!! ...", "rerank": False})
    assert response.status_code == 200, response.text
    assert response.json()["legs"] == ["content", "text"] and response.json()["hits"]
    only_keywords = {"query": "the of and", "rerank": False, "legs": ["bm25"]}
    response = search_client.post("/v1/search", json=only_keywords)
    assert response.status_code == 200 and response.json()["hits"] == [] and response.json()["legs"] == []


def test_hits_grouped_by_document(search_client):
    body = {"query": "report", "k": 40, "top_n": 3, "group_by": "document", "group_size": 1}
    response = search_client.post("/v1/search", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    docs = [h["doc_id"] for h in result["hits"]]
    assert len(docs) == len(set(docs)) == len(result["groups"]) <= 3
    assert [g["doc_id"] for g in result["groups"]] == docs
    two = search_client.post("/v1/search", json={**body, "group_size": 2, "rerank": False}).json()
    counts = {g["doc_id"]: len(g["hits"]) for g in two["groups"]}
    assert max(counts.values()) <= 2 and sum(counts.values()) == len(two["hits"])
    for group in two["groups"]:
        assert all(two["hits"][i]["doc_id"] == group["doc_id"] for i in group["hits"])
    plain = search_client.post("/v1/search", json={"query": "report", "k": 40, "top_n": 3}).json()
    assert plain["groups"] is None


def test_min_score_cuts_reranked_hits(search_client):
    everything = search_client.post("/v1/search", json={"query": "revenue", "k": 10, "top_n": 10}).json()
    scores = sorted(h["rerank_score"] for h in everything["hits"])
    cut = scores[len(scores) // 2]
    kept = search_client.post(
        "/v1/search", json={"query": "revenue", "k": 10, "top_n": 10, "min_score": cut}
    ).json()
    assert kept["hits"] and all(h["rerank_score"] >= cut for h in kept["hits"])
    assert len(kept["hits"]) == sum(1 for s in scores if s >= cut)


@pytest.mark.parametrize(
    "body",
    [
        {"query": "x", "group_by": "document", "group_size": 0},
        {"query": "x", "group_by": "document", "group_size": 10_000},
        {"query": "x", "group_by": "page"},
        {"query": "x", "legs": []},
        {"query": "x", "legs": ["dense"]},
        {"query": "x", "min_score": 2},
        {"query": "x" * 10_000},
        {"query": "x", "filters": {"modalities": ["hologram"]}},
    ],
    ids=["size-0", "size-10000", "by-page", "no-legs", "unknown-leg", "min-score", "10k-chars", "modality"],
)  # fmt: skip
def test_bad_search_options_are_422_with_the_reason(search_client, body):
    response = search_client.post("/v1/search", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"]


def test_filters_that_match_nothing_give_no_hits(search_client):
    for filters in ({"tags": ["no-such-tag"]}, {"doc_ids": ["00000000-0000-0000-0000-000000000000"]},
                    {"source_prefix": "/nowhere"}, {"ingested_after": "2100-01-01T00:00:00Z"}):  # fmt: skip
        response = search_client.post("/v1/search", json={"query": "revenue", "filters": filters})
        assert response.status_code == 200 and response.json()["hits"] == [], filters


def test_the_upload_form_takes_legs_and_groups(search_client):
    form = {"text": "revenue", "legs": "bm25", "group_by": "document", "group_size": "1", "rerank": "false"}
    response = search_client.post("/v1/search/upload", data=form)
    assert response.status_code == 200, response.text
    assert response.json()["legs"] == ["bm25"] and response.json()["groups"] is not None
    bad = search_client.post("/v1/search/upload", data={**form, "legs": "dense"})
    assert bad.status_code == 422 and "dense" in bad.json()["error"]["message"]


def test_hits_carry_the_query_s_matches_on_the_page_and_in_the_snippet(search_client, corpus):
    from tests.corpus import REPORT_PHRASES

    body = {
        "query": "revenue grew 12 percent",
        "filters": {"source_prefix": str(corpus.report_pdf)},
        "rerank": False,
        "top_n": 3,
    }
    response = search_client.post("/v1/search", json=body)
    assert response.status_code == 200, response.text
    hits = response.json()["hits"]
    page_one = next(h for h in hits if h["page"] == 1)
    assert REPORT_PHRASES[0].startswith("Revenue grew 12 percent")
    phrases = [h for h in page_one["highlights"] if h["kind"] == "phrase"]
    assert [p["text"] for p in phrases] == ["Revenue grew 12 percent"]
    assert {h["text"] for h in page_one["highlights"] if h["kind"] == "term"} >= {
        "Revenue",
        "grew",
        "12",
        "percent",
    }
    for hit in hits:
        for mark in hit["highlights"]:
            x0, y0, x1, y1 = mark["box"]
            assert 0 <= x0 <= x1 <= 1 and 0 <= y0 <= y1 <= 1 and mark["kind"] in ("term", "phrase")
        for span in hit["snippet_spans"]:
            assert 0 <= span["start"] < span["end"] <= len(hit["snippet"])
    marked = [page_one["snippet"][s["start"] : s["end"]] for s in page_one["snippet_spans"]]
    assert marked[0] == "Revenue grew 12 percent" and "percent" in marked[1:]
    schema = search_client.get("/openapi.json").json()["components"]["schemas"]
    assert schema["Highlight"]["properties"]["kind"]["enum"] == ["term", "phrase"]
    assert set(schema["SnippetSpan"]["required"]) == {"start", "end", "kind"}


@pytest.mark.parametrize(
    "query",
    [
        "the of and",
        "x" * 4096,
        ".*+?[](){}|^$\\ (?P<x>a)\\1 %s {0}",
        "\u202erevenue\u202c 👩‍👩‍👧 e\u0301 \u200b 𝔯𝔢𝔳𝔢𝔫𝔲𝔢 日本語のテキスト",
        "revenue " * 500,
    ],
    ids=["stop-words", "longest", "regex", "unicode", "repeated"],
)
def test_odd_queries_are_marked_without_errors(search_client, query):
    response = search_client.post("/v1/search", json={"query": query, "rerank": False, "top_n": 5})
    assert response.status_code == 200, response.text
    for hit in response.json()["hits"]:
        assert all(0 <= v <= 1 for h in hit["highlights"] for v in h["box"])
        assert all(0 <= s["start"] < s["end"] <= len(hit["snippet"]) for s in hit["snippet_spans"])
    too_long = search_client.post("/v1/search", json={"query": "x" * 10_000, "rerank": False})
    assert too_long.status_code == 422 and "Traceback" not in too_long.text
