"""Stored images: media-store pictures keyed by their identity, sized from the header, decoded lazily.

A cached page is neither hashed nor decoded, and still scores exactly as a fresh computation; a
changed file gets a new identity and is never served stale features.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from core.content import StoredImage, parse_content
from core.errors import MediaDecodeError, MediaNotFoundError
from core.media import MediaPolicy, check_stored_image, load_image, stored_image_size
from indexer.media_store import MediaStore
from reranker import Qwen3VLReranker
from retriever.search import Retriever
from tests.conftest import make_chart

QUERY = "How much did revenue grow this quarter?"


def _write_pages(folder: Path, count: int, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"page{i}.png"
        make_chart(150 + 30 * (i % 3), 110 + 20 * (i % 2), seed=seed + i).save(path, compress_level=1)
        paths.append(path)
    return paths


def _stored(path: Path, unit_id: str) -> StoredImage:
    info = os.stat(path)
    return StoredImage(str(path), f"{unit_id}:{info.st_size}:{info.st_mtime_ns}")


@pytest.fixture(scope="module")
def cached_reranker(tiny_reranker_dir):
    return Qwen3VLReranker(str(tiny_reranker_dir), device="cpu", dtype="float32", vision_cache_mb=64)


def test_header_size_matches_the_decoded_image_even_when_exif_rotates_it(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # a quarter turn: width and height swap
    make_chart(90, 40, seed=1).save(path, exif=exif.tobytes())
    png = tmp_path / "plain.png"
    make_chart(70, 50, seed=2).save(png)
    for file in (path, png):
        source = _stored(file, "u")
        assert stored_image_size(source) == load_image(source).size
    assert stored_image_size(_stored(path, "u")) == (40, 90)


def test_a_stored_image_is_an_image_source_read_whatever_the_local_file_policy(tmp_path):
    (path,) = _write_pages(tmp_path, 1)
    source = _stored(path, "u")
    assert parse_content({"image": source}).images == (source,)
    strict = MediaPolicy(allow_local_files=False)
    assert load_image(source, policy=strict).tobytes() == load_image(str(path)).tobytes()


def test_check_stored_image_catches_missing_unreadable_and_truncated_files(tmp_path):
    (path,) = _write_pages(tmp_path, 1)
    check_stored_image(path)  # a complete file passes
    with pytest.raises(FileNotFoundError):
        check_stored_image(tmp_path / "gone.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(MediaDecodeError):
        check_stored_image(junk)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(MediaDecodeError, match="truncated"):
        check_stored_image(path)
    with pytest.raises(MediaNotFoundError):
        stored_image_size(StoredImage(str(tmp_path / "gone.png"), "u:0:0"))


def test_hydration_gives_pages_their_identity_and_keeps_the_degraded_path(tmp_path):
    media = MediaStore(tmp_path / "media")
    retriever = Retriever(store=None, media=media, embedder=None)  # hydration reads only the media store
    folder = media.unit_dir("abc123")
    (path,) = _write_pages(folder, 1)
    ref = path.relative_to(media.root).as_posix()
    payload = {"modality": "page", "image": ref, "text": "a page"}
    (image,) = retriever.document(payload, unit_id="abc123").images
    info = path.stat()
    assert image == StoredImage(str(path.resolve()), f"abc123:{info.st_size}:{info.st_mtime_ns}")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(MediaDecodeError):
        retriever.document(payload, unit_id="abc123")
    path.unlink()
    with pytest.raises(FileNotFoundError):
        retriever.document(payload, unit_id="abc123")


def test_cached_stored_pages_score_exactly_as_fresh_ones_without_being_decoded(
    tmp_path, tiny_reranker, cached_reranker
):
    paths = _write_pages(tmp_path, 5)
    docs = [{"image": _stored(p, f"unit{i}"), "text": f"page {i}"} for i, p in enumerate(paths)]
    fresh = tiny_reranker.score(QUERY, docs)  # cache off: decoded every time
    plain = tiny_reranker.score(QUERY, [{"image": str(p), "text": f"page {i}"} for i, p in enumerate(paths)])
    assert fresh == pytest.approx(plain, abs=1e-6)

    cache = cached_reranker.backbone.feature_cache
    cache.clear()
    first = cached_reranker.score(QUERY, docs)
    hits = cache.hits
    contents = [parse_content(d) for d in docs]
    prepared = cached_reranker.backbone.vision.prepare_all(contents, [str(i) for i in range(len(docs))])
    # Every page is in the cache: nothing was decoded (no pixels held), only a lazy loader is kept.
    assert all(m.images[0].frames is None and m.images[0].loader is not None for m in prepared)
    second = cached_reranker.score(QUERY, docs)
    assert cache.hits - hits == len(docs)
    assert first == pytest.approx(fresh, abs=1e-5)
    assert second == pytest.approx(fresh, abs=1e-5)

    # Evicted between preprocessing and the forward pass: the loader decodes, scores do not change.
    pairs = cached_reranker.encode(parse_content(QUERY), contents)
    cache.clear()
    assert cached_reranker.forward(pairs) == pytest.approx(fresh, abs=1e-5)


def test_a_changed_file_is_never_served_stale_features(tmp_path, tiny_reranker, cached_reranker):
    (path,) = _write_pages(tmp_path, 1, seed=40)
    old = _stored(path, "unit0")
    before = cached_reranker.score(QUERY, [{"image": old}])
    make_chart(170, 120, seed=99).save(path, compress_level=1)  # rewritten in place: new size and mtime
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    new = _stored(path, "unit0")
    assert new.identity != old.identity
    after = cached_reranker.score(QUERY, [{"image": new}])
    assert after == pytest.approx(tiny_reranker.score(QUERY, [{"image": str(path)}]), abs=1e-5)
    assert after != pytest.approx(before, abs=1e-5)


def test_a_miss_on_a_broken_stored_file_raises_a_located_media_error(tmp_path, cached_reranker):
    (path,) = _write_pages(tmp_path, 1, seed=70)
    source = _stored(path, "unit0")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # header intact, pixels cut
    with pytest.raises(MediaDecodeError, match="document 0"):
        cached_reranker.score(QUERY, [{"image": source}])
    path.unlink()
    with pytest.raises(MediaNotFoundError, match="document 0"):
        cached_reranker.score(QUERY, [{"image": source}])
