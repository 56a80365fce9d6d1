"""Health, readiness, metrics, API-key auth, JSON 404s, and a schemathesis run over the whole schema."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.app.conftest import API_KEY

DOCS = ["Quarterly revenue grew by 12 percent.", "The cat sat on the mat."]


def test_health_and_ready(client, tiny_embedder, tiny_reranker):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"
    assert ready.json()["reranker"] == tiny_reranker.model_name
    assert ready.json()["units"] == 0


def test_unknown_route_is_a_json_404(client):
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["status"] == 404


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition ``text`` (0 when absent)."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or match[1] != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match[2] or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match[3])
    return 0.0


def test_metrics_count_routes_and_stages(client):
    for _ in range(2):
        assert client.post("/v1/rerank", json={"query": "revenue", "documents": DOCS}).status_code == 200
    assert client.post("/v1/rerank", json={"query": "", "documents": DOCS}).status_code == 422
    client.get("/v1/does-not-exist")
    client.get("/health")

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    requests = "mmsearch_http_requests_total"
    assert metric_value(text, requests, method="POST", route="/v1/rerank", status="200") == 2
    assert metric_value(text, requests, method="POST", route="/v1/rerank", status="422") == 1
    assert metric_value(text, requests, method="GET", route="/health", status="200") == 1
    # Unknown paths share one label, whatever their path.
    assert metric_value(text, requests, method="GET", route="<unmatched>", status="404") == 1
    latency = "mmsearch_http_request_duration_seconds_count"
    assert metric_value(text, latency, method="POST", route="/v1/rerank", status="200") == 2
    for stage in ("rerank", "rerank_encode", "rerank_forward"):
        assert metric_value(text, "mmsearch_stage_seconds_count", stage=stage) == 2, stage


def test_observe_stage_is_per_app(api_services, services_factory):
    from app.api.main import create_app
    from app.api.metrics import observe_stage

    first, second = create_app(services=api_services), create_app(services=services_factory())
    observe_stage(first, "embed", 0.5)
    with TestClient(first) as one, TestClient(second) as two:
        assert metric_value(one.get("/metrics").text, "mmsearch_stage_seconds_sum", stage="embed") == 0.5
        assert metric_value(two.get("/metrics").text, "mmsearch_stage_seconds_count", stage="embed") == 0


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/ready", None),
        ("GET", "/metrics", None),
        ("POST", "/v1/rerank", {"query": "q", "documents": DOCS}),
        ("POST", "/v2/rerank", {"query": "q", "documents": DOCS}),
    ],
)
def test_api_key_is_required_when_set(auth_client, method, path, body):
    def call(headers: dict[str, str]):
        return auth_client.request(method, path, json=body, headers=headers)

    missing = call({})
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "Unauthorized"
    assert missing.headers["www-authenticate"] == "Bearer"
    assert call({"Authorization": "Bearer wrong"}).status_code == 403
    assert call({"X-API-Key": "wrong"}).status_code == 403
    assert call({"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    assert call({"X-API-Key": API_KEY}).status_code == 200


def test_health_needs_no_key(auth_client):
    assert auth_client.get("/health").status_code == 200


def test_no_key_needed_when_none_is_set(client):
    assert client.get("/metrics").status_code == 200
    assert client.post("/v1/rerank", json={"query": "q", "documents": DOCS}).status_code == 200


def test_openapi_lists_the_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/ready", "/metrics", "/v1/rerank", "/v2/rerank"} <= set(paths)


def test_schemathesis_finds_no_server_errors(client):
    """Generated requests (valid and invalid) against every operation never get a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.generation import GenerationMode

    # from_asgi reads the schema from the running app; cases are sent to the same app object, whose
    # services the `client` fixture's lifespan attached.
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/rerank", "/metrics"}
    checked = 0
    for operation in operations:
        # Invalid data needs something to be invalid: a body or parameters (GET /health has neither).
        has_input = operation.method.upper() == "POST"
        modes = (
            (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if has_input else (GenerationMode.POSITIVE,)
        )
        for mode in modes:

            @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case) -> None:
                response = case.call()
                assert response.status_code < 500, (case.method, case.path, case.body, response.text)
                if response.status_code >= 400:
                    assert "error" in response.json()

            check()
            checked += 1
    assert checked > len(operations)
