"""Auth and body limits before any work (RequestGuard), and the offline docs routes.

Three levels: the ASGI app driven directly (so a test sees exactly which ``receive`` calls were made),
the in-process TestClient, and a real uvicorn server spoken to over raw sockets, for what needs a
network: a stalled body, a chunked stream, a Content-Length that lies.
"""

from __future__ import annotations

import asyncio
import json
import re
import select
import time

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from tests.app.conftest import API_KEY
from tests.app.servers import (
    PeakRss,
    closed_by_peer,
    metric,
    open_request,
    read_response,
    uvicorn_server,
)

MiB = 2**20
AUTH = {"Authorization": f"Bearer {API_KEY}"}


# -- the ASGI app driven directly: which receive calls happen -----------------------------------------


def asgi_call(app, path: str, headers: dict[str, str], chunks: list[bytes], *, stall: bool = False):
    """Run one request through ``app``. The body is ``chunks`` (then a stall, when asked): returns the
    status, the JSON body, and how many times the app called ``receive``."""
    calls = 0

    async def receive() -> dict:
        nonlocal calls
        calls += 1
        if calls <= len(chunks):
            more = calls < len(chunks) or stall
            return {"type": "http.request", "body": chunks[calls - 1], "more_body": more}
        await asyncio.sleep(3600)  # a client that sends nothing more (and never hangs up)
        raise AssertionError("unreachable")

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=30))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), calls


@pytest.fixture
def guarded_app(services_factory):
    services = services_factory(
        api_key=API_KEY, max_json_body_bytes=1000, max_upload_bytes=4000, body_read_timeout_s=0.3
    )
    app = create_app(services=services)
    app.state.services = services  # what the lifespan does; these calls run without one
    return app


def test_no_key_is_401_before_a_byte_of_the_body_is_read(guarded_app):
    headers = {"content-type": "application/json", "content-length": str(300 * MiB)}
    status, body, calls = asgi_call(guarded_app, "/v1/search", headers, [b"{" * 1000])
    assert (status, body["error"]["type"], calls) == (401, "Unauthorized", 0)
    # A wrong key is 403, also unread; and a small body without a key is 401 all the same.
    wrong = headers | {"x-api-key": "nope"}
    assert asgi_call(guarded_app, "/v1/rerank", wrong, [b"{}"])[::2] == (403, 0)
    assert asgi_call(guarded_app, "/v1/documents", {"content-length": "2"}, [b"{}"])[::2] == (401, 0)


def test_a_body_announced_over_the_limit_is_413_unread(guarded_app):
    headers = AUTH | {"content-type": "application/json", "content-length": "1001"}
    status, body, calls = asgi_call(guarded_app, "/v1/search", headers, [b" " * 1001])
    assert (status, calls) == (413, 0)
    assert body["error"] == {
        "status": 413,
        "type": "TooLarge",
        "message": "the request body is 1001 bytes; this route takes at most 1000 bytes",
    }


def test_a_streamed_body_is_refused_as_soon_as_it_passes_the_limit(guarded_app):
    # No Content-Length (chunked): ten 300-byte chunks against a 1000-byte limit.
    chunks = [b" " * 300] * 10
    for path in ("/v1/search", "/v1/rerank", "/v2/rerank"):
        status, body, calls = asgi_call(guarded_app, path, AUTH | {"transfer-encoding": "chunked"}, chunks)
        assert (status, body["error"]["type"], calls) == (413, "TooLarge", 4), path
    # Uploads keep their own (larger) limit: 4000 bytes here, passed at the 14th chunk.
    multipart = AUTH | {"content-type": "multipart/form-data; boundary=x", "transfer-encoding": "chunked"}
    head = b'--x\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n\r\n'
    chunks = [head.ljust(300, b"a")] + [b"a" * 300] * 20
    status, body, calls = asgi_call(guarded_app, "/v1/documents", multipart, chunks)
    assert (status, body["error"]["type"], calls) == (413, "TooLarge", 14)
    assert not (guarded_app.state.settings.data_dir / "uploads").exists() or not any(
        (guarded_app.state.settings.data_dir / "uploads").iterdir()
    )


def test_a_stalled_body_is_408_after_the_read_timeout(guarded_app):
    headers = AUTH | {"content-type": "application/json", "content-length": "900"}
    started = time.monotonic()
    status, body, calls = asgi_call(guarded_app, "/v1/search", headers, [b'{"query": '], stall=True)
    elapsed = time.monotonic() - started
    assert (status, body["error"]["type"], calls) == (408, "Timeout", 2)
    assert "MMSEARCH_BODY_READ_TIMEOUT_S" in body["error"]["message"]
    assert 0.25 < elapsed < 5


def test_json_routes_have_their_own_limit_and_uploads_keep_theirs(services_factory):
    services = services_factory(max_json_body_bytes=2048, max_upload_bytes=64 * 1024)
    with TestClient(create_app(services=services)) as client:
        big = {"query": "revenue " * 300, "top_n": 1}  # about 2.4 KB of JSON
        refused = client.post("/v1/search", json=big)
        assert refused.status_code == 413, refused.text
        assert refused.json()["error"]["type"] == "TooLarge"
        assert client.post("/v1/rerank", json={"query": "q", "documents": ["x" * 3000]}).status_code == 413
        small = client.post("/v1/rerank", json={"query": "q", "documents": ["x" * 1000]})
        assert small.status_code == 200, small.text
        # A 10 KB upload is under the upload limit: it gets past the guard (and is 415 for its type).
        upload = client.post("/v1/documents", files={"files": ("a.exe", b"x" * 10_000)})
        assert upload.status_code == 415, upload.text
        too_big = client.post("/v1/documents", files={"files": ("a.txt", b"x" * 70_000)})
        assert too_big.status_code == 413


def test_health_needs_no_key_and_unknown_routes_need_one(auth_client):
    assert auth_client.get("/health").status_code == 200
    assert auth_client.get("/v1/nothing").status_code == 401  # no route is listed to a client without a key
    assert auth_client.get("/v1/nothing", headers=AUTH).status_code == 404


def test_refused_requests_are_counted_under_their_route(auth_client):
    assert auth_client.post("/v1/search", json={"query": "q"}).status_code == 401
    assert auth_client.get("/v1/units/abc/image", headers={"X-API-Key": "bad"}).status_code == 403
    text = auth_client.get("/metrics", headers=AUTH).text
    assert metric(text, "mmsearch_http_requests_total", route="/v1/search", status="401") == 1
    assert metric(text, "mmsearch_http_requests_total", route="/v1/units/{unit_id}/image", status="403") == 1


# -- a real server over sockets ----------------------------------------------------------------------


@pytest.fixture
def live(services_factory):
    """A real uvicorn server with small limits: JSON 64 KiB, uploads 64 MiB, a 1 s body timeout."""
    services = services_factory(
        api_key=API_KEY, max_json_body_bytes=64 * 1024, max_upload_bytes=64 * MiB, body_read_timeout_s=1.0
    )
    with uvicorn_server(create_app(services=services)) as port:
        yield port, services


def test_live_no_key_with_a_huge_body_is_answered_at_once_and_closed(live):
    port, _ = live
    with PeakRss() as rss:
        for method_path in (("POST", "/v1/search"), ("POST", "/v1/documents"), ("PUT", "/v1/rerank")):
            sock = open_request(port, *method_path, {"Content-Length": str(300 * MiB)})
            status, headers, body = read_response(sock, timeout=5)
            assert status == 401, body
            assert json.loads(body)["error"]["type"] == "Unauthorized"
            assert headers.get("connection") == "close"
            assert closed_by_peer(sock)
            sock.close()
    assert rss.growth < 64 * MiB, rss.growth


def test_live_chunked_body_without_a_key_is_refused_before_it_is_sent(live):
    port, _ = live
    sock = open_request(port, "POST", "/v1/search", {"Transfer-Encoding": "chunked"})
    # The answer comes on the head alone; were the server reading the body first, nothing would come.
    assert select.select([sock], [], [], 5)[0], "no answer to the request head"
    assert read_response(sock)[0] == 401
    sock.close()


def test_live_chunked_json_is_413_as_soon_as_it_passes_the_limit(live):
    port, _ = live
    limit, piece = 64 * 1024, b" " * 8192
    sock = open_request(port, "POST", "/v1/search", AUTH | {"Transfer-Encoding": "chunked"})
    sent = 0
    while sent <= limit:  # one chunk past the limit, and the body never ends
        sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        sent += len(piece)
        assert not select.select([sock], [], [], 0)[0] or sent > limit, "answered before the limit"
    # The answer must come now, from the bytes counted so far: a server waiting for the whole body
    # (the stream has no last chunk) would answer nothing, or the 408 of a stalled body.
    status, headers, body = read_response(sock, timeout=10)
    assert status == 413, body
    assert json.loads(body)["error"]["type"] == "TooLarge"
    assert headers.get("connection") == "close"
    sock.close()


def test_live_a_body_that_stalls_gets_408_and_frees_the_handler(live):
    port, services = live
    uploads = services.settings.data_dir / "uploads"
    stalled = [
        # JSON: announces 30,000 bytes, sends 1 KiB.
        open_request(
            port,
            "POST",
            "/v1/search",
            AUTH | {"Content-Type": "application/json", "Content-Length": "30000"},
            b'{"query": "' + b"a" * 1013,
        ),
        # An upload that announces 30 MB and sends 1 KiB of its first file.
        open_request(
            port,
            "POST",
            "/v1/documents",
            AUTH | {"Content-Type": "multipart/form-data; boundary=XyZ", "Content-Length": str(30_000_000)},
            b'--XyZ\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n\r\n' + b"a" * 1024,
        ),
        # The head and nothing else.
        open_request(port, "POST", "/v1/rerank", AUTH | {"Content-Length": "500"}),
    ]
    started = time.monotonic()
    for sock in stalled:
        status, headers, body = read_response(sock, timeout=10)
        assert status == 408, body
        assert json.loads(body)["error"]["type"] == "Timeout"
        assert headers.get("connection") == "close"
        sock.close()
    assert time.monotonic() - started < 8
    # The handlers returned: each request is counted as finished with 408 under its route, the
    # half-written upload is gone, and the server still answers.
    sock = open_request(port, "GET", "/metrics", AUTH)
    status, _, text = read_response(sock)
    sock.close()
    for route in ("/v1/search", "/v1/documents", "/v1/rerank"):
        count = metric(text.decode(), "mmsearch_http_requests_total", route=route, status="408")
        assert count == 1, (route, text.decode())
    assert not uploads.exists() or not any(uploads.iterdir())
    sock = open_request(port, "GET", "/ready", AUTH)
    assert read_response(sock)[0] == 200
    sock.close()


def test_live_content_length_larger_than_the_body_then_hang_up(live):
    # The client announces more than it sends and goes away: the handler ends, the server goes on.
    port, _ = live
    sock = open_request(
        port,
        "POST",
        "/v1/search",
        AUTH | {"Content-Length": "5000", "Content-Type": "application/json"},
        b"{",
    )
    sock.close()
    time.sleep(0.2)
    check = open_request(port, "GET", "/ready", AUTH)
    assert read_response(check)[0] == 200
    check.close()


# -- the docs routes ---------------------------------------------------------------------------------


def test_docs_need_the_key_and_take_it_as_a_query_or_cookie(auth_client):
    for path in ("/openapi.json", "/docs", "/redoc", "/docs/assets/swagger-ui-bundle.js"):
        assert auth_client.get(path).status_code == 401, path
        assert auth_client.get(path, headers={"X-API-Key": "wrong"}).status_code == 403, path
        assert auth_client.get(path, headers=AUTH).status_code == 200, path
    assert auth_client.get("/openapi.json", params={"api_key": API_KEY}).status_code == 200
    assert auth_client.get("/openapi.json", params={"api_key": "wrong"}).status_code == 403
    # The query parameter and the cookie open the docs routes only.
    assert auth_client.get("/v1/models", params={"api_key": API_KEY}).status_code == 401
    assert auth_client.get("/metrics", headers={"Cookie": f"mmsearch_api_key={API_KEY}"}).status_code == 401
    assert (
        auth_client.get("/openapi.json", headers={"Cookie": f"mmsearch_api_key={API_KEY}"}).status_code == 200
    )


def test_a_browser_opens_the_docs_with_the_key_in_the_address(auth_client):
    first = auth_client.get("/docs", params={"api_key": API_KEY}, follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/docs"  # the key leaves the address bar
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"mmsearch_api_key={API_KEY};")
    assert "httponly" in cookie.lower()
    assert "samesite=strict" in cookie.lower()
    # The client now holds the cookie, as a browser would: the page, its schema and its assets load.
    page = auth_client.get("/docs")
    assert page.status_code == 200
    assert auth_client.get("/openapi.json").status_code == 200
    redoc = auth_client.get("/redoc")
    assert redoc.status_code == 200
    for html in (page.text, redoc.text):
        assert not re.search(r"https?://", html), "the docs pages must load nothing from the network"
        assets = re.findall(r"""(?:src|href)=["']?([^"'\s>]+)""", html)
        assert assets
        for url in assets:
            asset = auth_client.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 1000, url


def test_docs_are_open_without_a_key_and_list_the_key_schemes(client):
    assert client.get("/docs").status_code == 200
    assert client.get("/docs/assets/redoc.standalone.js").status_code == 200
    schema = client.get("/openapi.json").json()
    assert set(schema["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyHeader"}
    assert schema["paths"]["/v1/search"]["post"]["security"]


def test_docs_can_be_switched_off(services_factory):
    app = create_app(services=services_factory(api_key=API_KEY, api_docs=False))
    with TestClient(app) as client:
        for path in ("/openapi.json", "/docs", "/redoc", "/docs/assets/swagger-ui.css"):
            assert client.get(path, headers=AUTH).status_code == 404, path
        assert client.get("/ready", headers=AUTH).status_code == 200
