"""PDF pages rendered in worker processes: real PDFs (reportlab), real spawned processes, real kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from core.errors import MMSearchError
from indexer import ocr
from indexer.ingest import ADDED, FAILED, UNCHANGED, Ingestor
from indexer.loaders.base import LoadOptions
from indexer.loaders.pdf import load_pdf
from indexer.media_store import MediaStore, encode_page
from indexer.render_pool import RenderPool, RenderWorkerDied
from indexer.store import VectorStore
from tests.corpus import write_empty_pdf, write_encrypted_pdf, write_report_pdf

ROOT = Path(__file__).resolve().parents[2]
SMALL = LoadOptions(image_min_pixels=4 * 32 * 32, image_max_pixels=48 * 32 * 32)


def write_long_pdf(path: Path, pages: int) -> Path:
    """``pages`` letter pages, each with its number in the text layer and a bar of its own height."""
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=letter)
    c.setTitle("Long report")
    for n in range(1, pages + 1):
        c.setFont("Helvetica", 14)
        c.drawString(72, 720, f"Long report page {n}: figures for region {n % 7}")
        c.rect(100, 100, 60, 20 + 9 * n, fill=1, stroke=0)
        c.showPage()
    c.save()
    return path


def gone(pids: list[int], within_s: float = 10.0) -> bool:
    """Whether all these processes have exited (zombies count as exited)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def pool():
    with RenderPool(2, chunk_pages=2, lookahead_pages=6) as pool:
        yield pool
    # (no process is left: see test_workers_stop_with_the_pool)


def assert_same_units(pooled, in_thread):
    assert len(pooled) == len(in_thread)
    for a, b in zip(pooled, in_thread, strict=True):
        assert a == b  # index, page, title, text, words: every compared field
        assert (a.image.mode, a.image.size) == (b.image.mode, b.image.size)
        assert a.image.tobytes() == b.image.tobytes()
        assert (a.image_png, a.thumbnail_jpg) == encode_page(b.image)


def test_units_are_those_of_the_in_thread_loader(tmp_path, pool):
    for path in (write_report_pdf(tmp_path / "report.pdf"), write_long_pdf(tmp_path / "long.pdf", 11)):
        pooled = list(pool.load(path, SMALL))
        assert [u.page for u in pooled] == list(range(1, len(pooled) + 1))
        assert_same_units(pooled, list(load_pdf(path, SMALL)))


@pytest.mark.skipif(not ocr.available(), reason="rapidocr is not installed")
def test_a_scan_is_read_by_ocr_in_the_worker_as_in_thread(tmp_path, pool):
    from tests.indexer.test_ocr import _scan_image, _write_scan_pdf

    path = _write_scan_pdf(tmp_path / "scan.pdf", _scan_image()[0])
    pooled = list(pool.load(path, SMALL))
    assert pooled[0].words and "zebrafish" in pooled[0].text.lower()  # OCR ran in the worker
    assert_same_units(pooled, list(load_pdf(path, SMALL)))


def test_stored_media_are_byte_for_byte_those_of_the_in_thread_path(tmp_path, pool):
    path = write_report_pdf(tmp_path / "report.pdf")
    uid = "3f2a0c1e-0000-4000-8000-000000000001"
    for name, units in (("pool", pool.load(path, SMALL)), ("thread", load_pdf(path, SMALL))):
        store = MediaStore(tmp_path / name)
        for unit in units:
            store.put(uid[:-1] + str(unit.index), unit)
    files = {p.relative_to(tmp_path / "pool"): p.read_bytes() for p in (tmp_path / "pool").rglob("*.*")}
    assert len(files) == 9  # image.png, thumb.jpg and words.json of three pages
    assert files == {
        p.relative_to(tmp_path / "thread"): p.read_bytes() for p in (tmp_path / "thread").rglob("*.*")
    }


def test_errors_are_those_of_the_loader(tmp_path, pool):
    garbage = tmp_path / "garbage.pdf"
    garbage.write_bytes(b"%PDF-1.7\nthis is not a PDF at all\n")
    bad = (
        write_encrypted_pdf(tmp_path / "locked.pdf"),
        write_empty_pdf(tmp_path / "empty.pdf"),
        garbage,
        tmp_path / "missing.pdf",
    )
    for path in bad:
        with pytest.raises(MMSearchError) as in_thread:
            list(load_pdf(path, SMALL))
        with pytest.raises(type(in_thread.value)) as pooled:
            list(pool.load(path, SMALL))
        assert type(pooled.value) is type(in_thread.value)
        assert str(pooled.value) == str(in_thread.value)
    # The pool still works after them.
    assert len(list(pool.load(write_report_pdf(tmp_path / "report.pdf"), SMALL))) == 3


def test_look_ahead_is_bounded_and_overlaps_the_caller(tmp_path):
    path = write_long_pdf(tmp_path / "long.pdf", 30)
    with RenderPool(1, chunk_pages=2, lookahead_pages=6) as pool:
        units = pool.load(path, SMALL)
        first = next(units)
        # While the caller holds page 1, the worker renders ahead, and never more than 6 pages.
        deadline = time.monotonic() + 30
        while pool.pages_ready() < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.pages_ready() >= 4
        time.sleep(0.5)
        assert len(pool._pending) * pool.chunk_pages <= 6
        assert [first.page, *(u.page for u in units)] == list(range(1, 31))


class SpyEmbedder:
    """The real tiny embedder, plus a hook run at the start of every batch."""

    def __init__(self, inner, hook):
        self.inner, self.hook, self.calls = inner, hook, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed_documents(self, contents):
        self.calls += 1
        self.hook(self.calls)
        return self.inner.embed_documents(contents)


def ingest_killing_workers(store, media: Path, embedder, folder: Path):
    """Ingest `folder` with one render worker, SIGKILLing the workers during the embedder's second call;
    returns the report and the pids killed."""
    killed: list[int] = []

    def hook(call):
        if call != 1:
            return
        deadline = time.monotonic() + 30  # a worker may still be starting
        while not ingestor.render_pool.pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        killed.extend(ingestor.render_pool.pids())
        for pid in killed:
            os.kill(pid, signal.SIGKILL)

    ingestor = Ingestor(
        store, MediaStore(media), SpyEmbedder(embedder, hook), options=SMALL, render_workers=1
    )
    return ingestor.ingest([folder]), killed


def test_the_next_batch_renders_while_this_one_is_embedded(tmp_path, tiny_embedder):
    path = write_long_pdf(tmp_path / "long.pdf", 24)
    waited = []

    def hook(call):
        if call < 3:  # batch `call` is being embedded: batch call + 1 must render meanwhile
            deadline = time.monotonic() + 30
            while ingestor.render_pool.pages_ready() < 8 and time.monotonic() < deadline:
                time.sleep(0.05)
            waited.append(ingestor.render_pool.pages_ready())

    with VectorStore.open(path=tmp_path / "store", collection="units") as store:
        spy = SpyEmbedder(tiny_embedder, hook)
        ingestor = Ingestor(store, MediaStore(tmp_path / "media"), spy, options=SMALL, render_workers=1)
        report = ingestor.ingest([path])
    assert report.files[0].status == ADDED and report.files[0].units == 24
    assert len(waited) == 2 and all(ready >= 8 for ready in waited)  # a whole next batch, at least


def test_ingest_with_the_pool_writes_what_the_in_thread_path_writes(tmp_path, tiny_embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    write_report_pdf(docs / "report.pdf")
    write_long_pdf(docs / "long.pdf", 9)
    write_encrypted_pdf(docs / "locked.pdf")
    (docs / "notes.txt").write_text("Plain notes are loaded in the ingesting thread as before.")
    seen = {}
    for workers in (0, 1):
        with VectorStore.open(path=tmp_path / f"store{workers}", collection="units") as store:
            media = MediaStore(tmp_path / f"media{workers}")
            ingestor = Ingestor(store, media, tiny_embedder, options=SMALL, render_workers=workers)
            report = ingestor.ingest([docs])
            results = {Path(f.source).name: (f.status, f.units, f.error) for f in report.files}
            points = {}
            for p in store.units(with_vectors=True):
                payload = {k: v for k, v in p.payload.items() if k != "ingested_at"}
                points[str(p.id)] = (repr(sorted(payload.items())), repr(sorted(p.vectors.items())))
            files = {f.relative_to(media.root): f.read_bytes() for f in media.root.rglob("*") if f.is_file()}
            seen[workers] = (results, points, files)
        if workers:
            assert ingestor.render_pool.started is False  # ingest() closed it
    assert seen[0][0]["locked.pdf"][0] == FAILED and seen[0][0]["long.pdf"] == (ADDED, 9, None)
    assert seen[1] == seen[0]


def test_a_killed_worker_fails_only_its_file_and_the_pool_is_rebuilt(tmp_path, tiny_embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    write_long_pdf(docs / "a-long.pdf", 40)
    write_report_pdf(docs / "b-report.pdf")
    with VectorStore.open(path=tmp_path / "store", collection="units") as store:
        # Mid-document: the workers die while the first batch of a-long.pdf is being embedded.
        report, killed = ingest_killing_workers(store, tmp_path / "media", tiny_embedder, docs)
        results = {Path(f.source).name: f for f in report.files}
        assert killed and gone(killed)
        assert results["a-long.pdf"].status == FAILED
        assert "a-long.pdf" in results["a-long.pdf"].error and "died" in results["a-long.pdf"].error
        assert results["b-report.pdf"].status == ADDED and results["b-report.pdf"].units == 3
        assert {p.payload["file_name"] for p in store.units()} == {"b-report.pdf"}  # rolled back


def test_a_dead_worker_is_a_document_error(tmp_path):
    path = write_long_pdf(tmp_path / "long.pdf", 30)
    with RenderPool(1, chunk_pages=2, lookahead_pages=4) as pool:
        units = pool.load(path, SMALL)
        next(units)
        (pid,) = pool.pids()
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(RenderWorkerDied, match=r"long\.pdf: the worker process rendering this PDF died"):
            list(units)
        assert len(list(pool.load(path, SMALL))) == 30  # a new pool
        assert pool.pids() and pid not in pool.pids()


def test_workers_stop_with_the_pool_and_ingest_file_alone_uses_it(tmp_path, tiny_embedder):
    path = write_report_pdf(tmp_path / "report.pdf")
    with VectorStore.open(path=tmp_path / "store", collection="units") as store:
        ingestor = Ingestor(
            store, MediaStore(tmp_path / "media"), tiny_embedder, options=SMALL, render_workers=1
        )
        result = ingestor.ingest_file(path)  # the API server's job thread calls only this
        assert result.status == ADDED and result.units == 3
        pids = ingestor.render_pool.pids()
        assert pids and not gone(pids, within_s=0.2)  # kept for the next file
        ingestor.close()
        assert gone(pids)


def test_workers_do_not_outlive_the_interpreter(tmp_path):
    path = write_report_pdf(tmp_path / "report.pdf")
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from indexer.loaders.base import LoadOptions
        from indexer.render_pool import RenderPool

        if __name__ == "__main__":
            pool = RenderPool(2)
            units = list(pool.load(Path({str(path)!r}), LoadOptions(image_max_pixels=48 * 32 * 32)))
            print(len(units), *pool.pids())
            # exits without closing the pool
        """
    )
    (tmp_path / "script.py").write_text(script)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, str(tmp_path / "script.py")], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    count, *pids = (int(word) for word in out.stdout.split())
    assert count == 3 and pids  # workers start on demand: one may have done it all
    assert gone(pids)


# -- images and video keyframes read by OCR in the workers -----------------------------------------------


def write_text_screenshot(path: Path, lines: list[str]) -> Path:
    """A small 'app window' with a title bar and lines of text, as a screenshot of it (square: the
    OCR detector reads a picture with its shorter side at 736 px at least, so a wide one costs more)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (300, 300), (245, 245, 250))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, 299, 24], fill=(40, 60, 120))
    for row, line in enumerate(lines):
        draw.text((14, 34 + row * 34), line, font=ImageFont.load_default(size=22), fill=(30, 30, 30))
    image.save(path)
    return path


SHOT_LINES = {
    "shot-a.png": ["Enable nightly backups"],
    "shot-b.png": ["Quota for pelicans"],
    "shot-c.png": ["Retention of otters"],
}


def write_shots(folder: Path) -> list[Path]:
    folder.mkdir(exist_ok=True)
    return [write_text_screenshot(folder / name, lines) for name, lines in SHOT_LINES.items()]


@pytest.mark.skipif(not ocr.available(), reason="rapidocr is not installed")
def test_images_read_in_the_workers_are_those_of_the_in_thread_loader(tmp_path, pool):
    from indexer.loaders.image import load_image_file
    from indexer.media_store import encode, thumbnail

    (shot, *_) = write_shots(tmp_path / "shots")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(shot.read_bytes()[:200])
    for path in (shot, corpus_photo(tmp_path)):
        (pooled,) = list(pool.load_image(path, SMALL))
        (in_thread,) = list(load_image_file(path, SMALL))
        assert pooled == in_thread  # text and words (OCR ran in the worker), title, index
        assert pooled.image.tobytes() == in_thread.image.tobytes()
        assert pooled.thumbnail_jpg == encode(thumbnail(in_thread.image), ".jpg")
    assert "backups" in next(iter(pool.load_image(shot, SMALL))).text.lower()
    for path in (corrupt, tmp_path / "missing.png"):
        with pytest.raises(MMSearchError) as in_thread:
            list(load_image_file(path, SMALL))
        with pytest.raises(type(in_thread.value)) as pooled:
            list(pool.load_image(path, SMALL))
        assert str(pooled.value) == str(in_thread.value)


def corpus_photo(folder: Path) -> Path:
    from tests.corpus import write_photo

    return write_photo(folder / "photo.jpg")


@pytest.mark.skipif(not ocr.available(), reason="rapidocr is not installed")
def test_an_image_read_ahead_is_read_again_when_it_changed(tmp_path, pool):
    (shot, other, _) = write_shots(tmp_path / "shots")
    assert pool.prefetch_image(shot, SMALL) and pool.prefetching(shot)
    shot.write_bytes(other.read_bytes())  # changed after it was read ahead
    os.utime(shot, ns=(time.time_ns(), time.time_ns() + 10**9))
    (unit,) = list(pool.load_image(shot, SMALL))
    assert "pelicans" in unit.text.lower() and not pool.prefetching(shot)


@pytest.mark.skipif(not ocr.available(), reason="rapidocr is not installed")
def test_video_keyframes_read_in_the_workers_give_the_in_thread_units(tmp_path, pool):
    from indexer.loaders.video import load_video_file
    from tests.indexer.test_loaders_video_text import slides_frames, write_video

    path = write_video(tmp_path / "slides.mp4", slides_frames())
    options = replace(SMALL, segment_seconds=1.0, frame_max_pixels=8 * 32 * 32)
    pooled = list(pool.load_video(path, options))
    in_thread = list(load_video_file(path, options))
    assert pooled == in_thread and len(pooled) == 6
    assert [u.text for u in pooled] == ["Pangolin census"] * 3 + ["Pangolin census\nFlamingo budget"] + [
        "Walrus tariffs"
    ] * 2
    for a, b in zip(pooled, in_thread, strict=True):
        assert [f.tobytes() for f in a.frames] == [f.tobytes() for f in b.frames]


def snapshot_run(store: VectorStore, media: MediaStore, report) -> tuple[dict, dict, dict]:
    """A run's results, its points (payloads without the time, vectors) and its media files' bytes."""
    results = {Path(f.source).name: (f.status, f.units) for f in report.files}
    points = {}
    for p in store.units(with_vectors=True):
        payload = {k: v for k, v in p.payload.items() if k != "ingested_at"}
        points[str(p.id)] = (repr(sorted(payload.items())), repr(sorted(p.vectors.items())))
    files = {f.relative_to(media.root): f.read_bytes() for f in media.root.rglob("*") if f.is_file()}
    return results, points, files


@pytest.mark.skipif(not ocr.available(), reason="rapidocr is not installed")
def test_screenshots_are_read_ahead_while_earlier_ones_embed(tmp_path, tiny_embedder):
    shots = write_shots(tmp_path / "shots")
    (tmp_path / "shots" / "notes.txt").write_text("Plain notes between the screenshots.")
    read_ahead: list[str] = []

    def hook(call):
        if call == 1:  # notes.txt is being embedded: the next images are read meanwhile
            read_ahead.extend(p.name for p in shots if pooled.render_pool.prefetching(p))

    with VectorStore.open(path=tmp_path / "store0", collection="units") as store:
        media = MediaStore(tmp_path / "media0")
        in_thread = Ingestor(store, media, tiny_embedder, options=SMALL, render_workers=0)
        expected = snapshot_run(store, media, in_thread.ingest([tmp_path / "shots"]))
    with VectorStore.open(path=tmp_path / "store1", collection="units") as store:
        media = MediaStore(tmp_path / "media1")
        pooled = Ingestor(store, media, SpyEmbedder(tiny_embedder, hook), options=SMALL, render_workers=1)
        assert snapshot_run(store, media, pooled.ingest([tmp_path / "shots"])) == expected
        assert read_ahead == ["shot-a.png", "shot-b.png"]  # two ahead for one worker; shot-c next
        # Again: every file is unchanged, and no image is read ahead (its OCR would be wasted).
        asked = []
        prefetch = pooled.render_pool.prefetch_image
        pooled.render_pool.prefetch_image = lambda *args: asked.append(args) or prefetch(*args)
        again = pooled.ingest([tmp_path / "shots"])
        assert {f.status for f in again.files} == {UNCHANGED} and asked == []
    assert expected[0] == {name: (ADDED, 1) for name in [*SHOT_LINES, "notes.txt"]}


@pytest.mark.skipif(not ocr.available(), reason="rapidocr is not installed")
def test_images_read_ahead_when_a_worker_dies_are_read_again(tmp_path, tiny_embedder):
    write_shots(tmp_path / "shots")
    with VectorStore.open(path=tmp_path / "store", collection="units") as store:
        # shot-a is embedded and shot-b read ahead when their worker dies.
        report, killed = ingest_killing_workers(store, tmp_path / "media", tiny_embedder, tmp_path / "shots")
        assert killed and gone(killed)
        assert {Path(f.source).name: f.status for f in report.files} == dict.fromkeys(SHOT_LINES, ADDED)
        texts = {p.payload["file_name"]: p.payload["text"].lower() for p in store.units()}
    assert "pelicans" in texts["shot-b.png"] and "otters" in texts["shot-c.png"]
