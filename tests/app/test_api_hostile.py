"""Hundreds of hostile requests at every route of a served, indexed API (examples/ with tiny models).

Whatever comes in (wrong types, huge or negative numbers, 10,000-character queries, odd Unicode with
lone surrogates, NUL and RTL marks, invalid or deeply nested JSON, wrong content types, bad base64,
data: and file: URLs, images that claim billions of pixels, path traversal in ids and file names,
unknown fields, empty and oversized bodies, missing and wrong keys), the server must answer with a
status under 500, in the API's JSON error shape, with no traceback; its memory must stay bounded, and
the index must be exactly what it was. Middleware behaviour that needs a socket (stalls, chunked
streams, lying Content-Length) is in test_api_guard.py.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from tests.app.conftest import API_KEY
from tests.app.servers import PeakRss, build_services, index_examples

MiB = 2**20
JSON_LIMIT = MiB
AUTH = {"X-API-Key": API_KEY}
JSON = AUTH | {"content-type": "application/json"}


def png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (valid CRCs) over one tiny compressed row."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


HUGE_PNG = png(100_000, 100_000)  # 10 gigapixels claimed
WIDE_PNG = png(2**31 - 1, 1)
GIF_BOMB = b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00" + b";"
ODD_TEXT = {
    "rtl": "\u202erevenue\u202c \u200fgrowth\u200e",
    "zero-width": "\u200b" * 200 + "revenue",
    "combining": "a" + "\u0301" * 2000,
    "nul": "\x00revenue\x00growth\x00",
    "controls": "\x01\x02\x1b[31mred\x07\x08",
    "bom": "\ufeffrevenue",
    "noncharacters": "\uffff\ufffe\U0010ffff",
    "private-use": "\ue000\uf8ff",
    "line-separators": "a\u2028b\u2029c",
    "emoji": "📈" * 500,
    "mixed-scripts": "Ревеню 収益 الإيرادات",
    "whitespace-only": " \t\n\r ",
    "replacement": "\ufffd" * 50,
}
NESTED = "[" * 100_000 + "]" * 100_000  # deeper than any JSON parser's stack
NESTED_OBJECT = '{"a":' * 50_000 + "1" + "}" * 50_000


def raw(body: str | bytes, headers: dict[str, str] = JSON) -> dict[str, Any]:
    return {
        "content": body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body,
        "headers": headers,
    }


def js(body: Any) -> dict[str, Any]:
    return {"json": body, "headers": AUTH}


def json_route_cases(path: str, valid: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Body-level attacks that apply to every JSON route, around a ``valid`` body."""
    cases: list[dict[str, Any]] = [
        raw(""),
        raw("{}"),
        raw("null"),
        raw("[]"),
        raw('"just a string"'),
        raw("12345"),
        raw("{"),
        raw("{'query': 'single quotes'}"),
        raw('{"query": "x",}'),
        raw('{"query": "\\u12"}'),
        raw(b"\xff\xfe\x00{"),
        raw(b'{"query": "\xc3\x28"}'),  # invalid UTF-8
        raw(NESTED),
        raw(NESTED_OBJECT),
        raw('{"query": ' + "[" * 5000 + "]" * 5000 + "}"),
        raw(json.dumps(valid), AUTH | {"content-type": "text/plain"}),
        raw(json.dumps(valid), AUTH | {"content-type": "application/xml"}),
        raw(json.dumps(valid), AUTH | {"content-type": "multipart/form-data; boundary=zzz"}),
        raw(json.dumps(valid), AUTH | {"content-type": "application/x-www-form-urlencoded"}),
        raw(json.dumps(valid), AUTH | {"content-type": "application/json; charset=utf-16"}),
        raw(json.dumps(valid), AUTH),  # no content type at all
        raw('{"query": "x", "k": NaN, "top_n": Infinity}'),
        raw('{"query": "x", "top_n": -Infinity}'),
        raw('{"query": "x", "top_n": 1' + "0" * 5000 + "}"),  # more digits than int() takes
        raw(json.dumps(valid | {"padding": "x" * (JSON_LIMIT + 1)})),  # oversized
        raw(json.dumps(valid), AUTH | {"content-type": "application/json", "content-encoding": "gzip"}),
        js(valid | {"unknown_field": 1}),
        js(valid | {"__proto__": {"admin": True}}),
        js([valid, valid]),
    ]
    return [("POST", path, case) for case in cases]


def search_cases() -> list[tuple[str, str, dict[str, Any]]]:
    base = {"query": "revenue growth", "k": 5, "top_n": 3}
    bodies: list[Any] = [
        {"query": 123},
        {"query": None},
        {"query": []},
        {"query": ["revenue"]},
        {"query": True},
        {"query": {"text": 5}},
        {"query": {"text": ["a", "b"]}},
        {"query": {}},
        {"query": {"audio": "aGVsbG8="}},
        {"query": "x" * 10_000},
        {"query": "revenue " * 512},  # 4096 characters: at the limit, real work
        {"query": ""},
        *({"query": text, "k": 3, "top_n": 2} for text in ODD_TEXT.values()),
        base | {"k": -1},
        base | {"k": 0},
        base | {"k": 10**30},
        base | {"k": 1e308},
        base | {"k": "50"},
        base | {"k": 2.5},
        base | {"k": 100_000},
        base | {"top_n": 0},
        base | {"top_n": -5},
        base | {"top_n": 10**9},
        base | {"top_n": "ten"},
        base | {"top_n": None},
        base | {"group_by": "document", "group_size": 0},
        base | {"group_by": "document", "group_size": -1},
        base | {"group_by": "document", "group_size": 10**9},
        base | {"group_by": "document", "group_size": 100, "top_n": 1000},
        base | {"group_by": "page"},
        base | {"group_by": ["document"]},
        base | {"min_score": -1},
        base | {"min_score": 2},
        base | {"min_score": "high"},
        base | {"rerank": "maybe"},
        base | {"rerank": None},
        base | {"legs": []},
        base | {"legs": ["nope"]},
        base | {"legs": "bm25"},
        base | {"legs": ["bm25", "bm25", "bm25"]},
        base | {"reranker": "does-not-exist"},
        base | {"reranker": "../../etc/passwd"},
        base | {"reranker": "x" * 201},
        base | {"instruction": "y" * 1001},
        base | {"instruction": "\x00\u202e"},
        base | {"filters": None},
        base | {"filters": []},
        base | {"filters": {"modalities": ["../x"]}},
        base | {"filters": {"modalities": "page"}},
        base | {"filters": {"doc_ids": ["../../etc/passwd", "%00", "\x00"]}},
        base | {"filters": {"doc_ids": [f"id-{i}" for i in range(5000)]}},
        base | {"filters": {"source_prefix": "../../../../etc"}},
        base | {"filters": {"source_prefix": "/"}},
        base | {"filters": {"source_prefix": "\x00/etc"}},
        base | {"filters": {"tags": [""] * 1000}},
        base | {"filters": {"tags": [{"$ne": 1}]}},
        base | {"filters": {"ingested_after": "not a date"}},
        base | {"filters": {"ingested_after": "9999-99-99"}},
        base | {"filters": {"ingested_after": "2100-01-01", "ingested_before": "1900-01-01"}},
        base | {"filters": {"unknown": 1}},
        # Media that is not what it claims, or that must never be fetched or opened.
        {"query": {"image": "!!!not base64!!!"}},
        {"query": {"image": b64(b"hello, not an image")}},
        {"query": {"image": ""}},
        {"query": {"image": ["a", "b"]}},
        {"query": {"image": 12}},
        {"query": {"image": "data:image/png;base64,@@@@"}},
        {"query": {"image": "data:,hello"}},
        {"query": {"image": "data:text/html;base64,PGgxPmhpPC9oMT4="}},
        {"query": {"image": "data:image/png;base64," + b64(b"\x89PNG\r\n\x1a\n truncated")}},
        {"query": {"image": "data:"}},
        {"query": {"image": "file:///etc/passwd"}},
        {"query": {"image": "/etc/passwd"}},
        {"query": {"image": "../../../etc/passwd"}},
        {"query": {"image": "~/.ssh/id_rsa"}},
        {"query": {"image": "\\\\server\\share\\x.png"}},
        {"query": {"image": "http://169.254.169.254/latest/meta-data/"}},
        {"query": {"image": "http://127.0.0.1:1/x.png"}},
        {"query": {"image": "ftp://example.com/x.png"}},
        {"query": {"image": "gopher://127.0.0.1:11211/_stats"}},
        {"query": {"image": b64(HUGE_PNG)}},
        {"query": {"image": b64(WIDE_PNG)}},
        {"query": {"image": "data:image/gif;base64," + b64(GIF_BOMB)}},
        {"query": {"video": b64(b"not a video")}},
        {"query": {"video": "data:video/mp4;base64,AAAAIGZ0eXBpc29t"}},
        {"query": {"video": "file:///dev/zero"}},
        {"query": {"text": "chart", "image": b64(HUGE_PNG), "video": "x"}},
    ]
    cases = [("POST", "/v1/search", js(body)) for body in bodies]
    # Lone surrogates, sent as the raw JSON escapes a client would send.
    for body in (
        r'{"query": "\ud800abc"}',
        r'{"query": {"text": "\udfff"}}',
        r'{"query": "ok", "filters": {"tags": ["\ud800"]}}',
        r'{"query": "ok", "filters": {"source_prefix": "\udc00"}}',
        r'{"query": "ok", "instruction": "\ud800"}',
        r'{"query": "\ud800", "\udc00": 1}',
    ):
        cases.append(("POST", "/v1/search", raw(body)))
    return cases + json_route_cases("/v1/search", base)


def rerank_cases() -> list[tuple[str, str, dict[str, Any]]]:
    base = {"query": "revenue", "documents": ["Revenue grew.", "The cat sat."]}
    bodies: list[Any] = [
        {"query": "q"},
        {"documents": ["a"]},
        {"query": "q", "documents": "not a list"},
        {"query": "q", "documents": None},
        {"query": "q", "documents": [None]},
        {"query": "q", "documents": [1, 2.5, True]},
        {"query": "q", "documents": [["nested", ["list"]]]},
        {"query": "q", "documents": [{}]},
        {"query": "q", "documents": [{"text": []}]},
        {"query": "q", "documents": [{"text": [None]}]},
        {"query": "q", "documents": [{"video": ["a", "b"]}]},
        {"query": "q", "documents": [{"audio": "x"}]},
        {"query": "q", "documents": [""] * 3},
        {"query": "q", "documents": ["x"] * 1001},
        {"query": "q", "documents": ["x" * 10_000]},
        {"query": "x" * 10_000, "documents": ["a"]},
        {"query": "", "documents": ["a"]},
        {"query": None, "documents": ["a"]},
        {"query": {"text": ""}, "documents": ["a"]},
        {"query": "q", "documents": list(ODD_TEXT.values())},
        *({"query": text, "documents": ["revenue"]} for text in ODD_TEXT.values()),
        base | {"top_n": 0},
        base | {"top_n": -1},
        base | {"top_n": 10**20},
        base | {"top_n": "all"},
        base | {"return_documents": "yes"},
        base | {"model": "../../etc/passwd"},
        base | {"model": "x" * 10_000},
        base | {"model": 12},
        base | {"instruction": "i" * 5000},
        base | {"max_tokens_per_doc": -1, "rank_fields": ["x"], "priority": 9},
        {"query": "q", "documents": [{"image": "!!!"}]},
        {"query": "q", "documents": [{"image": b64(b"not an image")}]},
        {"query": "q", "documents": [{"image": b64(HUGE_PNG)}]},
        {"query": "q", "documents": [{"image": "file:///etc/shadow"}]},
        {"query": "q", "documents": [{"image": "http://10.0.0.1/x.png"}]},
        {"query": "q", "documents": [{"image": ["data:,x", "data:image/png;base64,"]}]},
        {"query": {"image": b64(WIDE_PNG)}, "documents": ["a"]},
    ]
    cases = []
    for path in ("/v1/rerank", "/v2/rerank"):
        cases += [("POST", path, js(body)) for body in bodies]
        cases += [
            ("POST", path, raw(r'{"query": "\ud800abc", "documents": ["a"]}')),
            ("POST", path, raw(r'{"query": "q", "documents": ["a", {"text": ["\udbff"]}]}')),
        ]
        cases += json_route_cases(path, base)
    return cases


def upload_cases() -> list[tuple[str, str, dict[str, Any]]]:
    """The multipart routes: bad forms, bad files, traversal in names. No case uploads a file the
    indexer reads, so none may change the index."""
    search = "/v1/search/upload"
    docs = "/v1/documents"
    oversized = raw(b"x" * (4 * MiB + 1), AUTH | {"content-type": "multipart/form-data; boundary=x"})

    def form(files: Any = None, data: Any = None) -> dict[str, Any]:
        return {"files": files, "data": data, "headers": AUTH}

    return [
        ("POST", search, form(files={"image": ("x.png", b"not an image")})),
        ("POST", search, form(files={"image": ("x.png", b"")})),
        ("POST", search, form(files={"image": ("huge.png", HUGE_PNG)})),
        ("POST", search, form(files={"image": ("gif.gif", GIF_BOMB)})),
        ("POST", search, form(files={"image": ("../../etc/passwd", png(2, 2))})),
        ("POST", search, form(data={"text": "x" * 10_000})),
        ("POST", search, form(data={"text": ODD_TEXT["nul"]})),
        ("POST", search, form(data={"text": "q", "k": "-1"})),
        ("POST", search, form(data={"text": "q", "k": "1" + "0" * 40})),
        ("POST", search, form(data={"text": "q", "top_n": "abc"})),
        ("POST", search, form(data={"text": "q", "group_by": "nope"})),
        ("POST", search, form(data={"text": "q", "group_size": "0"})),
        ("POST", search, form(data={"text": "q", "legs": "nope,bm25"})),
        ("POST", search, form(data={"text": "q", "modalities": "../../x"})),
        ("POST", search, form(data={"text": "q", "min_score": "nan"})),
        ("POST", search, form(data={"text": ""})),
        ("POST", search, form(data={})),
        ("POST", search, raw(b"--zz\r\nbroken", AUTH | {"content-type": "multipart/form-data; boundary=zz"})),
        ("POST", search, raw(b"text=q&k=5", AUTH | {"content-type": "application/x-www-form-urlencoded"})),
        ("POST", search, raw(b'{"text": "q"}')),
        (
            "POST",
            search,
            raw(b"x" * (4 * MiB + 1), AUTH | {"content-type": "multipart/form-data; boundary=x"}),
        ),
        ("POST", docs, form(files={"files": ("malware.exe", b"MZ\x90\x00")})),
        ("POST", docs, form(files={"files": ("../../../../tmp/evil", b"x")})),
        ("POST", docs, form(files={"files": ("..\\..\\windows\\evil.dll", b"x")})),
        ("POST", docs, form(files={"files": ("/etc/cron.d/evil", b"x")})),
        ("POST", docs, form(files={"files": ("a" * 10_000, b"x")})),
        ("POST", docs, form(files={"files": ("", b"x")})),
        ("POST", docs, form(files={"files": (".", b"x")})),
        ("POST", docs, form(files={"files": ("evil.exe", b"x")}, data={"tags": "\x00," * 100})),
        ("POST", docs, form(files={"other_field": ("a.bin", b"x")})),
        ("POST", docs, form(data={"tags": "a,b"})),
        ("POST", docs, raw(b'{"files": ["a.txt"]}')),
        ("POST", docs, raw(b"", AUTH)),
        ("POST", docs, raw(b"--x\r\n", AUTH | {"content-type": "multipart/form-data"})),  # no boundary
        ("POST", docs, raw(b"garbage", AUTH | {"content-type": "multipart/form-data; boundary=zz"})),
        ("POST", docs, oversized),
    ]


def path_cases(doc_id: str, unit_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    bad_ids = [
        "../../etc/passwd",
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e%2f%2e%2e%2f",
        "....//....//etc",
        "%00",
        "%ff%fe",
        "%ED%A0%80",  # a surrogate's UTF-8 bytes, percent-encoded
        "a" * 10_000,
        "00000000-0000-0000-0000-000000000000",
        "' OR 1=1 --",
        "%20",
        "null",
    ]
    cases: list[tuple[str, str, dict[str, Any]]] = []
    for bad in bad_ids:
        cases += [
            ("GET", f"/v1/jobs/{bad}", {"headers": AUTH}),
            ("DELETE", f"/v1/documents/{bad}", {"headers": AUTH}),
            ("GET", f"/v1/documents/{bad}/source", {"headers": AUTH}),
            ("GET", f"/v1/units/{bad}/image", {"headers": AUTH}),
            ("GET", f"/v1/units/{bad}/thumbnail", {"headers": AUTH}),
            ("GET", f"/v1/units/{bad}/frames/0", {"headers": AUTH}),
        ]
    for index in ("-1", "999", "1" + "0" * 40, "abc", "1e3", "%00"):
        cases.append(("GET", f"/v1/units/{unit_id}/frames/{index}", {"headers": AUTH}))
    cases.append(("GET", f"/v1/documents/{doc_id}/source", {"headers": AUTH | {"Range": "bytes=999999999-"}}))
    cases.append(("GET", f"/v1/documents/{doc_id}/source", {"headers": AUTH | {"Range": "bytes=5-1,x-y"}}))
    for params in (
        {"limit": "-1"},
        {"limit": "0"},
        {"limit": "1" + "0" * 40},
        {"limit": "abc"},
        {"offset": "-5"},
        {"offset": "1" + "0" * 30},
        {"limit": ["1", "2"]},
    ):
        cases.append(("GET", "/v1/documents", {"params": params, "headers": AUTH}))
    cases += [
        ("GET", "/docs/assets/../../../../etc/passwd", {"headers": AUTH}),
        ("GET", "/docs/assets/%2e%2e/%2e%2e/etc/passwd", {"headers": AUTH}),
        ("GET", "/docs/assets/", {"headers": AUTH}),
        ("GET", "/docs", {"params": {"api_key": "wrong"}}),
        ("GET", "/openapi.json", {"params": {"api_key": ""}}),
        ("GET", "/v1/documents", {"headers": AUTH, "content": b"x" * 100}),  # a GET with a body
        ("GET", "/health", {"params": {"q": "\x00" * 100}}),
        ("GET", "/health", {"content": b"x" * (JSON_LIMIT + 1)}),  # public, but still body-limited
        ("POST", "/health", {"json": {"a": 1}}),
        ("PUT", "/v1/search", {"headers": AUTH}),
        ("PATCH", "/v1/documents", {"headers": AUTH}),
        ("OPTIONS", "/v1/search", {"headers": AUTH}),
        ("TRACE", "/v1/rerank", {"headers": AUTH}),
    ]
    return cases


ROUTES = [
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("GET", "/v1/models"),
    ("POST", "/v1/search"),
    ("POST", "/v1/search/upload"),
    ("POST", "/v1/rerank"),
    ("POST", "/v2/rerank"),
    ("POST", "/v1/documents"),
    ("GET", "/v1/documents"),
    ("GET", "/v1/jobs/x"),
    ("DELETE", "/v1/documents/00000000-0000-0000-0000-000000000000"),
    ("GET", "/v1/units/x/image"),
    ("GET", "/v1/units/x/thumbnail"),
    ("GET", "/v1/units/x/frames/0"),
    ("GET", "/v1/documents/x/source"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/redoc"),
    ("GET", "/docs/assets/swagger-ui.css"),
]


def auth_cases() -> list[tuple[str, str, dict[str, Any]]]:
    """Every protected route without a key, with wrong ones, with the key where it does not count."""
    variants = [
        {},
        {"X-API-Key": "wrong"},
        {"X-API-Key": ""},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {b64(f'user:{API_KEY}'.encode())}"},
        {"Authorization": API_KEY},  # no scheme
        {"X-API-Key": API_KEY + "x"},
        {"X-API-Key": API_KEY[:-1]},
        {"Cookie": f"mmsearch_api_key={API_KEY}x"},
    ]
    cases = []
    for method, path in ROUTES:
        body = {"content": b'{"query": "q", "documents": ["a"]}'} if method == "POST" else {}
        cases += [(method, path, body | {"headers": headers}) for headers in variants]
        if not path.startswith(("/docs", "/redoc", "/openapi")):
            # The query parameter and the cookie are for the docs routes only.
            cases.append((method, path, body | {"params": {"api_key": API_KEY}}))
            cases.append((method, path, body | {"headers": {"Cookie": f"mmsearch_api_key={API_KEY}"}}))
    return cases


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, tiny_reranker_dir, tiny_embedder_dir, tiny_embedder, tiny_reranker):
    """A keyed app over an indexed copy of examples/, its services and its data folder."""
    from core.settings import Settings

    root = tmp_path_factory.mktemp("hostile")
    settings = Settings(
        _env_file=None,
        data_dir=index_examples(root, tiny_embedder),
        reranker_model=str(tiny_reranker_dir),
        embedder_model=str(tiny_embedder_dir),
        device="cpu",
        dtype="float32",
        api_key=API_KEY,
        remote_media_hosts=None,
        max_json_body_bytes=JSON_LIMIT,
        max_upload_bytes=4 * MiB,
    )
    services = build_services(settings, tiny_embedder, tiny_reranker)
    # raise_server_exceptions=False: a 500 is answered and asserted on, never raised in the test.
    with TestClient(create_app(services=services), raise_server_exceptions=False) as client:
        yield client, services, root
    services.close()


def snapshot(services: Any, root: Path) -> dict[str, Any]:
    """What no hostile request may change: documents, units, and every file (the engine's own WAL and
    segments aside); uploads are listed on their own."""
    files = [p for p in root.rglob("*") if p.is_file() and "qdrant" not in p.parts]
    return {
        "documents": sorted(r.doc_id for r in services.store.documents()),
        "units": services.store.count(),
        "files": sorted(str(p.relative_to(root)) for p in files if "uploads" not in p.parts),
        "uploads": sorted(str(p.relative_to(root)) for p in files if "uploads" in p.parts),
    }


GROUPS = {
    "auth": lambda ids: auth_cases(),
    "search": lambda ids: search_cases(),
    "rerank": lambda ids: rerank_cases(),
    "uploads": lambda ids: upload_cases(),
    "paths": lambda ids: path_cases(*ids),
}


def test_the_hostile_set_is_large_and_covers_every_route(hostile):
    client, services, _ = hostile
    ids = (next(iter(services.store.documents())).doc_id, next(iter(services.store.units())).id)
    cases = [case for build in GROUPS.values() for case in build(ids)]
    assert len(cases) >= 500, len(cases)
    schema = client.get("/openapi.json", headers=AUTH).json()
    served = {(path, method.upper()) for path, operations in schema["paths"].items() for method in operations}
    assert len(served) >= 15, served
    served |= {("/openapi.json", "GET"), ("/docs", "GET"), ("/redoc", "GET"), ("/docs/assets/{file}", "GET")}
    touched = {(path.split("?")[0], method) for method, path, _ in cases}
    templated = {(p, m) for p, m in served if "{" in p}
    for path, method in served - templated:
        assert (path, method) in touched, (method, path)
    for path, method in templated:  # every route with parameters is hit through some concrete path
        prefix = path.split("{")[0]
        assert any(t[1] == method and t[0].startswith(prefix) for t in touched), (method, path)


@pytest.mark.parametrize("group", list(GROUPS))
def test_hostile_requests_never_break_the_server(hostile, group):
    client, services, root = hostile
    ids = (next(iter(services.store.documents())).doc_id, next(iter(services.store.units())).id)
    # One ordinary search and rerank first, so first-use allocations are not counted as growth.
    assert client.post("/v1/search", json={"query": "revenue", "k": 5}, headers=AUTH).status_code == 200
    before = snapshot(services, root)
    failures, statuses = [], Counter()
    with PeakRss() as rss:
        for method, path, kwargs in GROUPS[group](ids):
            response = client.request(method, path, **kwargs)
            statuses[response.status_code] += 1
            text = response.text
            problem = None
            if response.status_code >= 500:
                problem = f"status {response.status_code}"
            elif group == "auth" and response.status_code not in (401, 403):
                problem = f"status {response.status_code} without a valid key"
            elif "Traceback (most recent call last)" in text or 'File "/' in text:
                problem = "a traceback in the body"
            elif response.status_code in (400, 416) and "Range" in kwargs.get("headers", {}):
                pass  # Starlette's FileResponse answers a bad Range itself, in plain HTTP terms
            elif response.status_code >= 400:
                try:
                    error = response.json()["error"]
                    assert error["status"] == response.status_code and error["type"] and error["message"]
                except Exception:
                    problem = "not the API's JSON error shape"
            if problem:
                shown = {k: (v[:200] if isinstance(v, (str, bytes)) else v) for k, v in kwargs.items()}
                failures.append(f"{method} {path[:120]} {shown}: {problem}: {text[:300]}")
    assert not failures, "\n".join(failures)
    if group in ("search", "rerank"):  # odd but valid input reaches the models and is answered
        assert statuses[200] >= 10, statuses
    assert snapshot(services, root) == before
    # A body read whole, a leak per request or an image decoded at its claimed size would show here;
    # the bound leaves room for the test client's own copies of the largest bodies (a few MiB).
    assert rss.growth < 200 * MiB, f"peak RSS grew by {rss.growth / MiB:.0f} MiB"
