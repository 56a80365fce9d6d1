"""Hostile text, broken media and unsafe sources: lone surrogates are a 422 naming the field, a
candidate whose media file is gone or corrupt never fails a search, and the source route serves only
the file that was indexed, where it was indexed."""

from __future__ import annotations

import itertools
import logging
import os
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from indexer.ingest import Ingestor
from indexer.media_store import MediaStore
from tests.app.servers import index_examples

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def examples_data(tmp_path_factory, tiny_embedder):
    """examples/ indexed once for the module (tests work on copies)."""
    return index_examples(tmp_path_factory.mktemp("examples-indexed"), tiny_embedder)


@pytest.fixture
def examples_services(tmp_path, services_factory, examples_data):
    copies = itertools.count()

    def build(**overrides):
        data = shutil.copytree(examples_data, tmp_path / f"copy-{next(copies)}")
        return services_factory(data_dir=data, **overrides)

    return build


# -- lone surrogates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/search", r'{"query": "\ud800abc"}', "query"),
        ("/v1/search", r'{"query": {"text": "ok \udfff"}}', "query.text"),
        ("/v1/search", r'{"query": "ok", "instruction": "\ud83d"}', "instruction"),
        ("/v1/search", r'{"query": "ok", "filters": {"tags": ["a", "\ud800"]}}', "filters.tags.1"),
        ("/v1/search", r'{"query": "ok", "filters": {"doc_ids": ["\udc00"]}}', "filters.doc_ids.0"),
        ("/v1/search", r'{"query": "ok", "filters": {"source_prefix": "/x\ud800"}}', "filters.source_prefix"),
        ("/v1/search", r'{"query": "ok", "reranker": "\ud800"}', "reranker"),
        ("/v1/rerank", r'{"query": "\ud800abc", "documents": ["a"]}', "query"),
        ("/v1/rerank", r'{"query": "q", "documents": ["a", "b", "c\ud800"]}', "documents.2"),
        (
            "/v2/rerank",
            r'{"query": "q", "documents": ["a", {"text": ["ok", "\ud800"]}]}',
            "documents.1.text.1",
        ),
        ("/v2/rerank", r'{"query": {"text": "q\ud800"}, "documents": ["a"]}', "query.text"),
        ("/v1/rerank", r'{"query": "q", "documents": ["a"], "instruction": "\udbff"}', "instruction"),
        ("/v1/rerank", r'{"query": "q", "documents": ["a"], "model": "\ud800"}', "model"),
    ],
)
def test_a_lone_surrogate_is_a_422_naming_the_field(client, path, body, field):
    response = client.post(path, content=body.encode(), headers=JSON)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == "ValidationError"
    assert f"{field} holds a lone UTF-16 surrogate" in error["message"]


def test_surrogates_as_raw_utf8_bytes_and_in_keys_are_refused_too(client):
    # Python's JSON decoder turns the UTF-8 bytes of a surrogate (ED A0 80) into one as well.
    raw = b'{"query": "abc\xed\xa0\x80"}'
    assert client.post("/v1/search", content=raw, headers=JSON).status_code == 422
    keyed = client.post(
        "/v1/rerank", content=rb'{"query": "q", "documents": ["a"], "\ud800": 1}', headers=JSON
    )
    assert keyed.status_code == 422
    assert "\\ud800" in keyed.json()["error"]["message"]  # quoted, escaped: the answer is valid UTF-8
    # Paired surrogates are one real character (an emoji): accepted.
    emoji = client.post("/v1/rerank", content=rb'{"query": "\ud83d\ude00", "documents": ["a"]}', headers=JSON)
    assert emoji.status_code == 200, emoji.text


# -- hydration: missing and corrupt media ------------------------------------------------------------


def _media_units(services):
    """(unit id, payload) of every unit with a picture in the media store."""
    return [
        (u.id, u.payload) for u in services.store.units() if u.payload.get("image") or u.payload.get("frames")
    ]


def test_missing_or_corrupt_media_never_fails_a_search(examples_services, caplog):
    services = examples_services()
    units = _media_units(services)
    pages = [(i, p) for i, p in units if p["modality"] == "page" and (p.get("text") or "").strip()]
    pictures = [(i, p) for i, p in units if p["modality"] in ("image", "video") and not p.get("text")]
    assert pages and pictures, [p["modality"] for _, p in units]
    media = MediaStore(services.settings.media_dir)
    # One page's render is truncated (a corrupt PNG), every other picture is deleted.
    corrupt_id, corrupt = pages[0]
    png = media.resolve(corrupt["image"])
    png.write_bytes(png.read_bytes()[: png.stat().st_size // 3])
    for unit_id, payload in units:
        if unit_id != corrupt_id:
            for ref in [payload.get("image"), *(payload.get("frames") or [])]:
                if ref:
                    media.resolve(ref).unlink()

    with TestClient(create_app(services=services)) as client, caplog.at_level(logging.WARNING):
        response = client.post("/v1/search", json={"query": "revenue growth", "k": 50, "top_n": 50})
    assert response.status_code == 200, response.text
    body = response.json()
    hits = {h["unit_id"]: h for h in body["hits"]}
    # Pages with a text layer are reranked by their text, and say so.
    for unit_id, _ in pages:
        assert hits[unit_id]["degraded"] is True
        assert hits[unit_id]["rerank_score"] is not None
    # Pictures with no text are left out; text chunks are untouched.
    assert not {i for i, _ in pictures} & set(hits)
    assert all(not h["degraded"] for h in hits.values() if h["modality"] == "text")
    assert any(h["modality"] == "text" for h in hits.values())
    # Every affected unit is named in the warnings and in the log.
    warnings = "\n".join(body["warnings"])
    for unit_id, _ in [*pages, *pictures]:
        assert unit_id in warnings
    assert f"unit {corrupt_id}" in warnings and "cannot be read; ranked by its text" in warnings
    assert "is missing; left out" in warnings
    assert any("media file" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_a_search_whose_every_candidate_lost_its_media_still_answers(examples_services):
    services = examples_services()
    units = _media_units(services)
    for _, payload in units:
        for ref in [payload.get("image"), *(payload.get("frames") or [])]:
            if ref:
                MediaStore(services.settings.media_dir).resolve(ref).unlink()
    with TestClient(create_app(services=services)) as client:
        body = {"query": "chart", "k": 50, "top_n": 50, "filters": {"modalities": ["page", "image", "video"]}}
        response = client.post("/v1/search", json=body)
    assert response.status_code == 200, response.text
    hits = response.json()["hits"]
    # What is left is exactly the units with text to rank them by, each marked degraded.
    with_text = {unit_id for unit_id, p in units if (p.get("text") or "").strip()}
    assert {h["unit_id"] for h in hits} == with_text
    assert all(h["degraded"] for h in hits)
    assert len(response.json()["warnings"]) == len(units)


# -- the source route --------------------------------------------------------------------------------


@pytest.fixture
def sources(tmp_path, services_factory, tiny_embedder):
    """Services with three indexed text files: one in the uploads folder, one in an allowed root, one
    elsewhere; returns (build_client, {name: doc_id}, {name: path})."""
    data = tmp_path / "src-data"
    files = {
        "upload": data / "uploads" / "job1" / "up.txt",
        "rooted": tmp_path / "allowed" / "in-root.txt",
        "outside": tmp_path / "elsewhere" / "out.txt",
    }
    for name, path in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"The {name} file says revenue grew by twelve percent.")
    secret = tmp_path / "secret.txt"
    secret.write_text("not for clients")
    built = []

    def build(**overrides):
        services = services_factory(data_dir=data, **overrides)
        if not built:
            Ingestor(services.store, services.media, tiny_embedder).ingest(list(files.values()))
        built.append(services)
        return TestClient(create_app(services=services))

    from indexer.ingest import document_id

    ids = {name: document_id(path) for name, path in files.items()}
    return build, ids, files, secret


def test_sources_are_served_while_they_are_the_indexed_file(sources):
    build, ids, files, secret = sources
    with build() as client:
        for name in ("upload", "rooted", "outside"):  # no source_roots: any file still at its path
            response = client.get(f"/v1/documents/{ids[name]}/source")
            assert response.status_code == 200, (name, response.text)
            assert response.content == files[name].read_bytes()
        # Range requests still work.
        part = client.get(f"/v1/documents/{ids['outside']}/source", headers={"Range": "bytes=0-2"})
        assert (part.status_code, part.content) == (206, b"The")

        # The file replaced by a symlink to another file: refused, whatever it points to.
        files["outside"].unlink()
        os.symlink(secret, files["outside"])
        refused = client.get(f"/v1/documents/{ids['outside']}/source")
        assert refused.status_code == 404
        assert "no longer the file that was indexed" in refused.json()["error"]["message"]
        assert b"not for clients" not in refused.content

        # A folder on the way swapped for a symlink: refused too.
        moved = files["rooted"].parent.with_name("moved")
        files["rooted"].parent.rename(moved)
        os.symlink(moved, files["rooted"].parent)
        assert client.get(f"/v1/documents/{ids['rooted']}/source").status_code == 404

        # Gone, or a folder where the file was: 404 with the reason, never 500.
        files["upload"].unlink()
        gone = client.get(f"/v1/documents/{ids['upload']}/source")
        assert gone.status_code == 404
        assert "is no longer at" in gone.json()["error"]["message"]
        files["upload"].mkdir()
        assert client.get(f"/v1/documents/{ids['upload']}/source").status_code == 404
        # A symlink loop where the file was.
        files["upload"].rmdir()
        os.symlink(files["upload"], files["upload"])
        assert client.get(f"/v1/documents/{ids['upload']}/source").status_code == 404


def test_source_roots_limit_what_is_served(sources, tmp_path):
    build, ids, _, _ = sources
    with build(source_roots=[tmp_path / "allowed"]) as client:
        assert client.get(f"/v1/documents/{ids['upload']}/source").status_code == 200  # uploads always
        assert client.get(f"/v1/documents/{ids['rooted']}/source").status_code == 200
        outside = client.get(f"/v1/documents/{ids['outside']}/source")
        assert outside.status_code == 404
        assert "outside the folders this server serves" in outside.json()["error"]["message"]


def test_source_roots_setting_reads_a_list_from_the_environment(monkeypatch):
    from core.settings import Settings

    monkeypatch.setenv("MMSEARCH_SOURCE_ROOTS", "/srv/docs, /mnt/corpus")
    assert Settings(_env_file=None).source_roots == [Path("/srv/docs"), Path("/mnt/corpus")]
    monkeypatch.setenv("MMSEARCH_SOURCE_ROOTS", '["/a,b"]')
    assert Settings(_env_file=None).source_roots == [Path("/a,b")]
