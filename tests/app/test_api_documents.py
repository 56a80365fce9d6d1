"""The document routes over HTTP: uploads, jobs, listing, deleting, unit pictures, limits and auth.

Real app, real embedded store under ``tmp_path``, the tiny session embedder; jobs really run on the
services' model thread and the tests poll them like a client does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.jobs import jobs_for, safe_filename
from tests.app.conftest import API_KEY

# Small pictures and chunks keep the tiny embedder fast; the routes do not care about sizes.
SMALL = {"image_max_pixels": 48 * 32 * 32, "chunk_tokens": 64, "chunk_overlap": 8}


@pytest.fixture
def make_client(services_factory):
    """A client (lifespan entered) of an app over fresh services built with these setting overrides."""
    from app.api.main import create_app

    opened: list[TestClient] = []

    def make(**overrides: Any) -> tuple[TestClient, Any]:
        services = services_factory(**{**SMALL, **overrides})
        client = TestClient(create_app(services=services))
        client.__enter__()
        opened.append(client)
        return client, services

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def upload(client: TestClient, *files: Path | tuple[str, bytes], tags: str | None = None, **kw: Any):
    parts = []
    for item in files:
        name, data = (item.name, item.read_bytes()) if isinstance(item, Path) else item
        parts.append(("files", (name, data, "application/octet-stream")))
    return client.post("/v1/documents", files=parts, data={"tags": tags} if tags else None, **kw)


def wait_for(client: TestClient, location: str, timeout: float = 120.0, **kw: Any) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(location, **kw)
        assert response.status_code == 200, response.text
        job = response.json()
        if job["state"] in ("done", "failed"):
            return job
        assert time.monotonic() < deadline, f"job still {job['state']}"
        time.sleep(0.05)


def ingest(client: TestClient, *files: Path | tuple[str, bytes], **kw: Any) -> dict[str, Any]:
    response = upload(client, *files, **kw)
    assert response.status_code == 202, response.text
    return wait_for(client, response.headers["location"])


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_upload_index_list_serve_pictures_and_delete(make_client, corpus):
    client, services = make_client()
    response = upload(client, corpus.report_pdf, corpus.photo_jpg, corpus.notes_txt, tags="demo, api")
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert response.headers["location"] == accepted["location"] == f"/v1/jobs/{accepted['job_id']}"
    assert accepted["files"] == ["report.pdf", "photo.jpg", "notes.txt"]
    assert accepted["state"] in ("queued", "running")

    job = wait_for(client, accepted["location"])
    assert job["state"] == "done", job
    assert [f["status"] for f in job["files"]] == ["added"] * 3, job
    assert job["tags"] == ["api", "demo"]
    assert job["files"][0]["units"] == 3  # one unit per page
    assert job["finished_at"] is not None and job["error"] is None
    # The sources stay on the server, in the job's uploads folder.
    upload_dir = services.settings.data_dir / "uploads" / accepted["job_id"]
    assert sorted(p.name for p in upload_dir.iterdir()) == ["notes.txt", "photo.jpg", "report.pdf"]

    listing = client.get("/v1/documents").json()
    assert listing["total"] == 3
    by_name = {Path(d["source"]).name: d for d in listing["documents"]}
    assert set(by_name) == {"report.pdf", "photo.jpg", "notes.txt"}
    for f in job["files"]:
        doc = by_name[f["file_name"]]
        assert doc["doc_id"] == f["doc_id"]
        assert doc["units"] == f["units"] == services.store.count(f["doc_id"]) > 0
        assert doc["complete"] and doc["tags"] == ["api", "demo"]
    paged = client.get("/v1/documents", params={"limit": 2, "offset": 2}).json()
    assert paged["total"] == 3 and len(paged["documents"]) == 1
    assert paged["documents"][0] == listing["documents"][2]

    pdf = by_name["report.pdf"]
    points = [p for p in services.store.units() if p.payload["doc_id"] == pdf["doc_id"]]
    page = points[0]
    image = client.get(f"/v1/units/{page.id}/image")
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"  # pages are stored lossless
    assert image.content == services.media.resolve(page.payload["image"]).read_bytes()
    thumb = client.get(f"/v1/units/{page.id}/thumbnail")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.content == services.media.resolve(page.payload["thumbnail"]).read_bytes()
    photo_unit = next(
        p for p in services.store.units() if p.payload["doc_id"] == by_name["photo.jpg"]["doc_id"]
    )
    photo = client.get(f"/v1/units/{photo_unit.id}/image")
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    assert photo.content == services.media.resolve(photo_unit.payload["image"]).read_bytes()
    text_unit = next(
        p for p in services.store.units() if p.payload["doc_id"] == by_name["notes.txt"]["doc_id"]
    )
    assert client.get(f"/v1/units/{text_unit.id}/image").status_code == 404  # text has no picture
    assert client.get(f"/v1/units/{text_unit.id}/thumbnail").status_code == 404

    deleted = client.delete(f"/v1/documents/{pdf['doc_id']}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"doc_id": pdf["doc_id"], "deleted_units": 3, "source_removed": True}
    assert client.delete(f"/v1/documents/{pdf['doc_id']}").status_code == 404
    assert services.store.count(pdf["doc_id"]) == 0
    assert not (upload_dir / "report.pdf").exists()
    assert not any(services.media.unit_dir(str(p.id)).exists() for p in points)
    assert client.get(f"/v1/units/{page.id}/image").status_code == 404
    remaining = client.get("/v1/documents").json()
    assert sorted(Path(d["source"]).name for d in remaining["documents"]) == ["notes.txt", "photo.jpg"]


def test_unknown_and_malformed_ids_are_404(make_client):
    client, _ = make_client()
    random_id = str(uuid.uuid4())
    assert client.get("/v1/jobs/nope").status_code == 404
    assert client.get(f"/v1/jobs/{uuid.uuid4().hex}").json()["error"]["type"] == "NotFound"
    assert client.delete(f"/v1/documents/{random_id}").status_code == 404
    assert client.delete("/v1/documents/not-a-uuid").status_code == 404
    for kind in ("image", "thumbnail"):
        assert client.get(f"/v1/units/{random_id}/{kind}").status_code == 404
        assert client.get(f"/v1/units/not-a-uuid/{kind}").status_code == 404
    for attack in ("..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "..%5C..%5Cwindows"):
        response = client.get(f"/v1/units/{attack}/image")
        assert response.status_code in (404, 422), response.text
        assert b"root:" not in response.content


def test_upload_file_names_are_sanitised_and_stay_inside_the_uploads_folder(make_client, corpus, tmp_path):
    client, services = make_client()
    before = files_under(tmp_path) - files_under(services.settings.data_dir)
    text = corpus.notes_txt.read_bytes()
    names = ["../../x.txt", "..\\..\\y.md", "/etc/z.txt", ".hidden.txt", "x.txt", "a" * 300 + ".txt"]
    response = upload(client, *[(name, text) for name in names])
    assert response.status_code == 202, response.text
    saved = response.json()["files"]
    assert saved[:5] == ["x.txt", "y.md", "z.txt", "hidden.txt", "x-1.txt"]
    assert len(saved[5]) <= 120 and saved[5].endswith(".txt")
    job = wait_for(client, response.headers["location"])
    assert [f["status"] for f in job["files"]] == ["added"] * 6, job
    uploads = (services.settings.data_dir / "uploads").resolve()
    for doc in client.get("/v1/documents").json()["documents"]:
        assert Path(doc["source"]).resolve().parent.parent == uploads
    # Nothing appeared outside the data folder.
    assert files_under(tmp_path) - files_under(services.settings.data_dir) == before


def test_oversize_upload_is_413_and_leaves_the_index_unchanged(make_client, corpus):
    client, services = make_client(max_upload_bytes=8192)
    first = ingest(client, corpus.notes_txt)
    assert first["state"] == "done"
    listing = client.get("/v1/documents").json()
    uploads = services.settings.data_dir / "uploads"
    saved = files_under(uploads)
    big = corpus.notes_txt.read_bytes() * (20_000 // corpus.notes_txt.stat().st_size + 1)

    # Refused from the Content-Length header.
    response = upload(client, ("big.txt", big))
    assert response.status_code == 413, response.text
    assert response.json()["error"]["status"] == 413

    # No Content-Length (a chunked body): refused while streaming, and the partial file removed.
    boundary = "mmsearch-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.txt"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        + big
        + f"\r\n--{boundary}--\r\n".encode()
    )
    chunks = (body[i : i + 1024] for i in range(0, len(body), 1024))
    response = client.post(
        "/v1/documents", content=chunks, headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 413, response.text

    assert files_under(uploads) == saved
    assert len(list(uploads.iterdir())) == 1  # only the first job's folder
    assert client.get("/v1/documents").json() == listing


def test_unsupported_type_is_415_and_nothing_is_saved(make_client, corpus):
    client, services = make_client()
    response = upload(client, corpus.notes_txt, ("tool.exe", b"MZ\x90\x00"))
    assert response.status_code == 415, response.text
    assert ".exe" in response.json()["error"]["message"]
    assert upload(client, ("README", b"no extension")).status_code == 415
    not_multipart = client.post("/v1/documents", content=b"hello", headers={"content-type": "text/plain"})
    assert not_multipart.status_code == 415
    uploads = services.settings.data_dir / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())
    assert client.get("/v1/documents").json()["total"] == 0


def test_an_upload_without_files_is_422(make_client):
    client, _ = make_client()
    response = client.post("/v1/documents", data={"tags": "x"}, files={"other": ("", b"")})
    assert response.status_code == 422, response.text


def test_broken_files_fail_with_a_reason_while_others_index(make_client, corpus):
    client, services = make_client()
    earlier = ingest(client, corpus.notes_txt)
    assert earlier["files"][0]["status"] == "added"

    job = ingest(client, corpus.corrupt_pdf, corpus.encrypted_pdf, corpus.screenshot_png)
    assert job["state"] == "done", job
    corrupt, encrypted, screenshot = job["files"]
    assert corrupt["status"] == "failed" and "corrupt.pdf" in corrupt["error"] and corrupt["doc_id"] is None
    assert encrypted["status"] == "failed" and "password" in encrypted["error"]
    assert screenshot["status"] == "added" and screenshot["units"] == 1 and screenshot["error"] is None
    # A failed upload is the source of nothing, so it is not kept.
    folder = services.settings.data_dir / "uploads" / job["id"]
    assert sorted(p.name for p in folder.iterdir()) == ["screenshot.png"]

    listing = client.get("/v1/documents").json()
    assert sorted(Path(d["source"]).name for d in listing["documents"]) == ["notes.txt", "screenshot.png"]
    assert sum(d["units"] for d in listing["documents"]) == services.store.count()


def test_only_the_newest_finished_jobs_are_remembered(make_client, corpus):
    client, services = make_client()
    jobs_for(services).max_finished = 1
    first = upload(client, corpus.notes_txt).headers["location"]
    wait_for(client, first)
    second = upload(client, corpus.guide_md).headers["location"]
    wait_for(client, second)
    assert client.get(first).status_code == 404
    assert client.get(second).status_code == 200


def test_the_routes_need_the_api_key(auth_client, corpus):
    key = {"X-API-Key": API_KEY}
    unit = f"/v1/units/{uuid.uuid4()}"
    calls = [
        ("POST", "/v1/documents"),
        ("GET", "/v1/documents"),
        ("GET", "/v1/jobs/abc"),
        ("DELETE", f"/v1/documents/{uuid.uuid4()}"),
        ("GET", f"{unit}/image"),
        ("GET", f"{unit}/thumbnail"),
    ]
    for method, path in calls:
        assert auth_client.request(method, path).status_code == 401, path
        assert auth_client.request(method, path, headers={"X-API-Key": "wrong"}).status_code == 403, path
    assert auth_client.get("/v1/documents", headers=key).status_code == 200
    assert auth_client.get(f"{unit}/image", headers=key).status_code == 404
    # An upload without the key is refused before anything is saved.
    response = upload(auth_client, corpus.notes_txt)
    assert response.status_code == 401
    job = wait_for(
        auth_client, upload(auth_client, corpus.notes_txt, headers=key).headers["location"], headers=key
    )
    assert job["state"] == "done"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../x.pdf", "x.pdf"),
        ("C:\\Users\\me\\scan.PNG", "scan.PNG"),
        ("..", "upload"),
        (".bashrc", "bashrc"),
        ("a/b/../.env.md", "env.md"),
        ("résumé v2.pdf", "résumé v2.pdf"),
        ("in\x00val\nid;$(rm).txt", "invalid_rm.txt"),
    ],
)
def test_safe_filename(given, expected):
    assert safe_filename(given) == expected


def test_safe_filename_caps_the_length_and_keeps_the_extension():
    name = safe_filename("x" * 500 + ".jpeg")
    assert len(name) == 120 and name.endswith(".jpeg")


def test_serve_exits_2_with_a_clear_message_when_the_store_is_locked(tmp_path):
    from indexer.store import VectorStore

    data = tmp_path / "data"
    (data / "qdrant").mkdir(parents=True)
    env = {**os.environ, "MMSEARCH_DATA_DIR": str(data), "HF_HUB_OFFLINE": "1"}
    env.pop("MMSEARCH_QDRANT_URL", None)
    with VectorStore.open(path=data / "qdrant"):
        run = subprocess.run(
            [sys.executable, "-m", "app", "serve", "--port", "1"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    assert run.returncode == 2, run.stderr
    assert "open in another process" in run.stderr
    assert "Traceback" not in run.stderr
