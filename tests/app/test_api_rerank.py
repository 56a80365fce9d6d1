"""POST /v1/rerank and /v2/rerank: schema, ranking parity with the library, media safety, limits, the
official Cohere SDK as a client, and cross-request batching."""

from __future__ import annotations

import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.qwen_vl.batching import plan_batches

DOCS = [
    "Quarterly revenue grew by 12 percent.",
    "The cat sat on the mat.",
    "Revenue growth slowed in the second half.",
    "A recipe for banana bread.",
]


def b64(path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def tiny_reranker_name(reranker) -> str:
    from reranker.registry import default_name

    return default_name(reranker.model_name)


def assert_error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["status"] == status
    assert "Traceback" not in response.text
    return error


def test_text_ranking_matches_the_library(client, tiny_reranker):
    response = client.post("/v1/rerank", json={"query": "revenue growth", "documents": DOCS})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = tiny_reranker.rank("revenue growth", DOCS)
    assert [r["index"] for r in body["results"]] == [hit.index for hit in expected]
    for result, hit in zip(body["results"], expected, strict=True):
        assert result["relevance_score"] == pytest.approx(hit.score, abs=1e-4)
        assert "document" not in result
    assert body["id"] and body["model"] == tiny_reranker_name(tiny_reranker)
    assert body["meta"]["api_version"] == {"version": "1"}
    assert body["meta"]["billed_units"] == {"search_units": 1}
    assert body["meta"]["tokens"]["input_tokens"] > 0


def test_top_n_and_return_documents(client, tiny_reranker):
    docs = [*DOCS[:2], {"text": DOCS[2]}, DOCS[3]]
    response = client.post(
        "/v1/rerank",
        json={"query": "revenue growth", "documents": docs, "top_n": 2, "return_documents": True},
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    expected = tiny_reranker.rank("revenue growth", DOCS, top_n=2)
    assert [r["index"] for r in results] == [hit.index for hit in expected]
    # Strings come back as {"text": ...}, as Cohere returns them; objects come back as sent.
    assert [r["document"] for r in results] == [{"text": DOCS[hit.index]} for hit in expected]


def test_top_n_beyond_the_documents_returns_all(client):
    response = client.post("/v1/rerank", json={"query": "q", "documents": DOCS, "top_n": 50})
    assert sorted(r["index"] for r in response.json()["results"]) == [0, 1, 2, 3]


def test_extra_cohere_fields_are_accepted(client, tiny_reranker):
    body = {
        "model": tiny_reranker.model_name,  # the model id works as well as the name
        "query": "revenue growth",
        "documents": DOCS,
        "max_tokens_per_doc": 512,
        "rank_fields": ["text"],
        "priority": 0,
    }
    response = client.post("/v2/rerank", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == tiny_reranker_name(tiny_reranker)  # the name it is loaded under
    assert response.json()["meta"]["api_version"] == {"version": "2"}


def test_instruction_changes_the_scores(client, tiny_reranker):
    body = {"query": "revenue growth", "documents": DOCS[:2], "instruction": "Find recipes."}
    results = client.post("/v1/rerank", json=body).json()["results"]
    expected = tiny_reranker.score("revenue growth", DOCS[:2], instruction="Find recipes.")
    assert {r["index"]: r["relevance_score"] for r in results} == pytest.approx(dict(enumerate(expected)))


def test_images_as_base64_and_data_uri(client, tiny_reranker, media):
    docs = [
        {"image": b64(media["chart"])},
        {"text": "a photo", "image": "data:image/jpeg;base64," + b64(media["photo"])},
        "plain text",
    ]
    query = {"text": "bar chart", "image": b64(media["wide"])}
    response = client.post("/v1/rerank", json={"query": query, "documents": docs, "return_documents": True})
    assert response.status_code == 200, response.text
    expected = tiny_reranker.score(
        {"text": "bar chart", "image": str(media["wide"])},
        [{"image": str(media["chart"])}, {"text": "a photo", "image": str(media["photo"])}, "plain text"],
    )
    scores = {r["index"]: r["relevance_score"] for r in response.json()["results"]}
    assert [scores[i] for i in range(3)] == pytest.approx(expected, abs=1e-4)
    assert response.json()["results"][0]["document"] == docs[response.json()["results"][0]["index"]]


def test_video_document(client, tiny_reranker, media):
    response = client.post(
        "/v1/rerank", json={"query": "colours", "documents": [{"video": b64(media["clip"])}, "text"]}
    )
    assert response.status_code == 200, response.text
    expected = tiny_reranker.score("colours", [{"video": str(media["clip"])}, "text"])
    scores = {r["index"]: r["relevance_score"] for r in response.json()["results"]}
    assert [scores[0], scores[1]] == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    "image",
    [
        "/etc/passwd",
        "file:///etc/passwd",
        "../secret.png",
        "http://169.254.169.254/latest/meta-data/",
        "https://example.com/a.png",
    ],
)
def test_local_paths_and_unlisted_urls_are_refused(client, image):
    response = client.post("/v1/rerank", json={"query": "q", "documents": ["ok", {"image": image}]})
    error = assert_error(response, 422)
    assert "document 1" in error["message"]


def test_bad_base64_is_422(client):
    response = client.post("/v1/rerank", json={"query": "q", "documents": [{"image": "not base64 !!"}]})
    assert "document 0" in assert_error(response, 422)["message"]


def test_undecodable_image_is_an_error_not_a_score(client, media):
    response = client.post(
        "/v1/rerank", json={"query": "q", "documents": ["ok", {"image": b64(media["corrupt"])}]}
    )
    assert response.status_code in (415, 422), response.text
    assert "document 1" in response.json()["error"]["message"]


@pytest.mark.parametrize("query", ["", "   ", {}, {"text": ""}])
def test_empty_query_is_422(client, query):
    assert_error(client.post("/v1/rerank", json={"query": query, "documents": DOCS}), 422)


@pytest.mark.parametrize(
    "body",
    [
        {"documents": DOCS},
        {"query": "q"},
        {"query": "q", "documents": "not a list"},
        {"query": "q", "documents": DOCS, "top_n": 0},
        {"query": "q", "documents": [{"txt": "typo"}]},
        {"query": 5, "documents": DOCS},
    ],
)
def test_malformed_requests_are_422(client, body):
    assert_error(client.post("/v1/rerank", json=body), 422)


def test_empty_documents_give_no_results(client):
    response = client.post("/v1/rerank", json={"query": "q", "documents": []})
    assert response.status_code == 200, response.text
    assert response.json()["results"] == []


def test_too_many_documents_is_413(services_factory):
    from fastapi.testclient import TestClient

    from app.api.main import create_app

    with TestClient(create_app(services=services_factory(max_rerank_documents=3))) as small:
        error = assert_error(small.post("/v1/rerank", json={"query": "q", "documents": DOCS}), 413)
        assert "limit is 3" in error["message"]
        assert small.post("/v1/rerank", json={"query": "q", "documents": DOCS[:3]}).status_code == 200


def test_text_over_the_limit_is_422(services_factory):
    from fastapi.testclient import TestClient

    from app.api.main import create_app

    with TestClient(create_app(services=services_factory(max_query_chars=20))) as small:
        response = small.post("/v1/rerank", json={"query": "q", "documents": ["x" * 21]})
        assert "limit is 20" in assert_error(response, 422)["message"]
        response = small.post("/v1/rerank", json={"query": "q" * 21, "documents": ["x"]})
        assert_error(response, 422)


# The SDK passes a timeout per request, which the in-process TestClient ignores (and warns about).
_SDK_WARNING = pytest.mark.filterwarnings("ignore:You should not use the 'timeout' argument")


@_SDK_WARNING
def test_cohere_sdk_v1_and_v2(client, tiny_reranker):
    """The official SDK, unchanged, with its base_url (and http client) pointing at the app."""
    import cohere

    expected = tiny_reranker.rank("revenue growth", DOCS, top_n=3)
    # TestClient is an httpx.Client bound to the in-process app; base_url is where the SDK sends.
    name = tiny_reranker_name(tiny_reranker)  # the name GET /v1/models lists
    v1 = cohere.Client(api_key="unused", base_url=str(client.base_url), httpx_client=client)
    response = v1.rerank(query="revenue growth", documents=DOCS, top_n=3, return_documents=True, model=name)
    assert [r.index for r in response.results] == [hit.index for hit in expected]
    assert [r.relevance_score for r in response.results] == pytest.approx(
        [h.score for h in expected], abs=1e-4
    )
    assert response.results[0].document.text == DOCS[expected[0].index]
    assert response.meta.billed_units.search_units == 1

    v2 = cohere.ClientV2(api_key="unused", base_url=str(client.base_url), httpx_client=client)
    response = v2.rerank(model=name, query="revenue growth", documents=DOCS, top_n=3, max_tokens_per_doc=64)
    assert [r.index for r in response.results] == [hit.index for hit in expected]
    assert response.meta.api_version.version == "2"


@_SDK_WARNING
def test_cohere_sdk_sends_the_api_key(auth_client):
    import cohere

    from tests.app.conftest import API_KEY

    good = cohere.Client(api_key=API_KEY, base_url=str(auth_client.base_url), httpx_client=auth_client)
    assert len(good.rerank(query="q", documents=DOCS).results) == len(DOCS)
    bad = cohere.Client(api_key="wrong", base_url=str(auth_client.base_url), httpx_client=auth_client)
    with pytest.raises(cohere.errors.ForbiddenError):
        bad.rerank(query="q", documents=DOCS)


def test_concurrent_requests_share_forward_passes(client, api_services, tiny_reranker, media):
    """Requests that wait together are scored in one round: fewer forward passes than requests, the same
    scores as scoring each alone, and a request with a broken image fails alone."""
    requests = [
        {"query": f"query {n}", "documents": [f"document {n}.{i}" for i in range(n % 3 + 1)]}
        for n in range(6)
    ]
    requests.append({"query": "chart", "documents": ["text", {"image": b64(media["chart"])}]})
    broken = {"query": "q", "documents": ["fine", {"image": b64(media["corrupt"])}]}
    bodies = [*requests, broken]

    # Hold the model thread, so every request is queued before the batcher's first round runs.
    gate = threading.Event()
    api_services.model_executor.submit(gate.wait, 30)
    with ThreadPoolExecutor(len(bodies)) as pool:
        futures = [pool.submit(client.post, "/v1/rerank", json=body) for body in bodies]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            batcher = api_services.extras.get(f"rerank_batcher:{tiny_reranker_name(api_services.reranker)}")
            if batcher is not None and batcher.pending == len(bodies):
                break
            time.sleep(0.01)
        else:
            gate.set()
            pytest.fail("the requests never all reached the batcher")
        gate.set()
        responses = [f.result(timeout=60) for f in futures]

    *good, bad = responses
    assert bad.status_code in (415, 422) and "document 1" in bad.json()["error"]["message"]
    for body, response in zip(requests, good, strict=True):
        assert response.status_code == 200, response.text
        docs = [d if isinstance(d, str) else {"image": str(media["chart"])} for d in body["documents"]]
        expected = tiny_reranker.score(body["query"], docs)
        scores = {r["index"]: r["relevance_score"] for r in response.json()["results"]}
        assert [scores[i] for i in range(len(docs))] == pytest.approx(expected, abs=1e-4)

    stats = batcher.stats
    pairs = sum(len(body["documents"]) for body in requests)
    assert stats.rounds == 1 and stats.requests == len(bodies)
    assert stats.pairs == pairs
    assert stats.forward_passes < len(requests)
    # The passes are exactly what the token budget allows over all pairs of all requests together.
    assert stats.forward_passes >= len(plan_batches([1] * pairs, tiny_reranker.batch_tokens))


def test_several_rerankers_are_served_and_picked_by_name(services_factory, tiny_reranker, tiny_jina, media):
    from fastapi.testclient import TestClient

    from app.api.main import create_app

    services = services_factory()
    services.other_rerankers = {"jina": tiny_jina}
    default = tiny_reranker_name(tiny_reranker)
    chart = "data:image/png;base64," + b64(media["chart"])
    docs = ["Revenue grew.", {"image": chart}]
    expected = {
        default: tiny_reranker.score("revenue", ["Revenue grew.", {"image": str(media["chart"])}]),
        "jina": tiny_jina.score("revenue", ["Revenue grew.", {"image": str(media["chart"])}]),
    }
    assert expected[default] != pytest.approx(expected["jina"])  # two models, two sets of scores
    with TestClient(create_app(services=services)) as api:
        listed = api.get("/v1/models").json()
        assert [(m["id"], m["backend"], m["default"]) for m in listed["data"]] == [
            (default, "qwen3-vl", True),
            ("jina", "jina-m0", False),
        ]
        assert api.get("/ready").json()["rerankers"] == [default, "jina"]
        for model, name in ((None, default), ("Jina", "jina"), (tiny_jina.model_name, "jina")):
            response = api.post("/v1/rerank", json={"model": model, "query": "revenue", "documents": docs})
            assert response.status_code == 200, response.text
            assert response.json()["model"] == name
            got = {r["index"]: r["relevance_score"] for r in response.json()["results"]}
            assert [got[0], got[1]] == pytest.approx(expected[name], abs=1e-5)
        # Each reranker has its own batcher; the default's saw one request, jina's two.
        assert services.extras[f"rerank_batcher:{default}"].stats.requests == 1
        assert services.extras["rerank_batcher:jina"].stats.requests == 2

        unknown = api.post("/v1/rerank", json={"model": "rerank-v3.5", "query": "q", "documents": ["d"]})
        error = assert_error(unknown, 404)
        assert "rerank-v3.5" in error["message"] and f"loaded: {default}, jina" in error["message"]
        # jina-reranker-m0 reads no video: the reason comes back, not a failure of the server.
        video = api.post("/v1/rerank", json={"model": "jina", "query": "q", "documents": [{"video": chart}]})
        assert video.status_code == 422 and "not video" in video.json()["error"]["message"]
